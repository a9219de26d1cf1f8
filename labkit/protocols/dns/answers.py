"""Prebuilt answers: the bytes of a reply minus its ID and question, in every shape a client needs.

An answer (from lookup.py) is packed once per question into an `Entry`; the resolver then
serves a query by splicing the query's ID, RD/CD bits and question (as sent) into it. Owner
names are compressed against the question only, which sits at offset 12 in every reply.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from labkit.protocols.dns.lookup import Answer, Section
from labkit.protocols.dns.wire import AA, CD, NOERROR, QR, RCODE_NAMES, RD, TC, name_text, type_text
from labkit.protocols.result import Datagram, Fact, Result, only


@dataclass(frozen=True, slots=True)
class DnsFact(Fact):
    """The Fact of one query (action "query"), with what fault rules and counters need besides.

    Built once per answer shape and shared by every query that gets that answer.
    """

    qname: str = ""  # without the trailing dot, lowercase; "" when no question could be read
    qtype: str = ""  # "SRV", "TYPE65280", ""
    rcode: int = 0  # the full (extended) rcode: 16 for BADVERS; -1 when nothing is sent


def facts_of(qname: str, qtype: str, rcode: int, summary: str, result: str) -> tuple[Fact, ...]:
    """The facts of a reply: its request ("SRV _ciscoprov-https._tls.lab.example"), answer
    ("NOERROR 1 SRV + 1 A", "NXDOMAIN", ...) and result (ok, nodata, nxdomain, refused, formerr,
    notimp, badvers, servfail, dropped)."""
    request = f"{qtype} {qname}".strip() or "(no question)"
    return (DnsFact("query", request, summary, result, qname=qname, qtype=qtype, rcode=rcode),)


def reply_of(data: bytes, facts: tuple[Fact, ...]) -> Result:
    """The Result of a query we answer: one datagram back to the peer, its facts."""
    return Result((Datagram(data),), (), facts)


def _plain_slots(cls: type, names: tuple[str, ...]) -> bool:
    return (tuple(f.name for f in fields(cls)) == names and "__slots__" in vars(cls)
            and not hasattr(cls, "__post_init__"))


# The per-query hot path fills Datagram and Result through their slots' member descriptors:
# the frozen dataclasses' __init__ goes through object.__setattr__ per field, which costs as
# much as a third of answering a query. The objects are the same (equal, same repr, same type).
# When either class changes shape, QUICK is False and the resolver uses `reply_of`.
QUICK = (_plain_slots(Datagram, ("data", "to", "l2_unicast"))
         and _plain_slots(Result, ("send", "timers", "facts", "done")))
new_object = object.__new__


def _setter(cls: type, name: str) -> Callable[[Any, Any], None]:
    member = vars(cls).get(name)
    if not QUICK or member is None:
        return _unused
    setter: Callable[[Any, Any], None] = member.__set__
    return setter


def _unused(obj: Any, value: Any) -> None:
    raise AssertionError("the quick path is off when Datagram or Result changed shape")


SET_DATA, SET_TO, SET_L2 = (_setter(Datagram, name) for name in ("data", "to", "l2_unicast"))
SET_SEND, SET_TIMERS, SET_FACTS, SET_DONE = (_setter(Result, name)
                                             for name in ("send", "timers", "facts", "done"))


def quick_reply(data: bytes, facts: tuple[Fact, ...]) -> Result:
    """`reply_of`, built the quick way; the resolver's fast path inlines these same steps."""
    if not QUICK:
        return reply_of(data, facts)
    datagram = new_object(Datagram)
    SET_DATA(datagram, data)
    SET_TO(datagram, None)
    SET_L2(datagram, False)
    result = new_object(Result)
    SET_SEND(result, (datagram,))
    SET_TIMERS(result, ())
    SET_FACTS(result, facts)
    SET_DONE(result, False)
    return result


DROPPED_SHORT = only(facts_of("", "", -1, "dropped: shorter than a DNS header", "dropped")[0])
DROPPED_RESPONSE = only(facts_of("", "", -1, "dropped: a response (QR=1), not a query", "dropped")[0])


# One way to send an answer: (size of `body`, the 2-byte flags + 8-byte counts for each
# combination of the query's RD and CD bits, body = everything after the question, the facts
# of the reply, its rcode).
Shape = tuple[int, tuple[bytes, bytes, bytes, bytes], bytes, tuple[Fact, ...], int]


class Entry:
    """One prebuilt answer: everything but the ID and the question, in every shape a client may need.

    `forms[0]` serves queries without EDNS, `forms[1]` with EDNS, `forms[2]` with EDNS and DO.
    Each form lists its shapes from the fullest down: all sections; without the additional
    section (when there is one); truncated (TC, no records). The first that fits is sent.
    """

    __slots__ = ("forms",)

    def __init__(self, flags: int, counts: tuple[int, int, int], body: bytes, body_short: bytes | None,
                 said: tuple[tuple[Fact, ...], tuple[Fact, ...], tuple[Fact, ...]], rcode: int,
                 opts: tuple[bytes, bytes]) -> None:
        an, ns, ar = counts
        full, short, truncated = said

        def shape(extra_ar: int, a: int, n: int, r: int, data: bytes, bits: int,
                  facts: tuple[Fact, ...]) -> Shape:
            counts = struct.pack("!HHHH", 1, a, n, r + extra_ar)
            heads = tuple((flags | bits | rd | cd).to_bytes(2, "big") + counts
                          for rd, cd in ((0, 0), (RD, 0), (0, CD), (RD, CD)))
            return len(data), heads, data, facts, rcode  # type: ignore[return-value]

        forms = []
        for opt in (b"", *opts):
            extra = 1 if opt else 0
            shapes = [shape(extra, an, ns, ar, body + opt, 0, full)]
            if body_short is not None:
                shapes.append(shape(extra, an, ns, 0, body_short + opt, 0, short))
            shapes.append(shape(extra, 0, 0, 0, opt, TC, truncated))
            forms.append(tuple(shapes))
        self.forms: tuple[tuple[Shape, ...], ...] = tuple(forms)


def summary_counts(records: Section) -> str:
    counts: dict[int, int] = {}
    for _, rec in records:
        counts[rec.rtype] = counts.get(rec.rtype, 0) + 1
    return ", ".join(f"{n} {type_text(t)}" for t, n in counts.items())


def owner_bytes(owner: bytes, suffixes: dict[bytes, int]) -> bytes:
    # compress against the question only (the question sits at offset 12 in every reply)
    offset = suffixes.get(owner)
    if offset is None:
        return owner
    return struct.pack("!H", 0xC000 | (12 + offset))


def question_suffixes(qname: bytes) -> dict[bytes, int]:
    suffixes: dict[bytes, int] = {}
    i = 0
    while qname[i]:
        suffixes[qname[i:]] = i
        i += qname[i] + 1
    return suffixes


def entry(qname: bytes, qtype: int, answer: Answer, opts: tuple[bytes, bytes]) -> Entry:
    suffixes = question_suffixes(qname)

    def pack(section: Section) -> bytes:
        return b"".join(owner_bytes(owner, suffixes) + rec.tail for owner, rec in section)

    main = pack(answer.answer) + pack(answer.authority)
    extra = pack(answer.additional)
    flags = QR | (AA if answer.authoritative else 0) | (answer.rcode & 0xF)
    rcode_name = RCODE_NAMES.get(answer.rcode, str(answer.rcode))
    qname_s, qtype_s = name_text(qname), type_text(qtype)
    if answer.rcode != NOERROR:
        summary = rcode_name
    elif not answer.answer:
        summary = "NOERROR NODATA"
    else:
        summary = f"NOERROR {summary_counts(answer.answer)}"
    short = summary
    if answer.additional:
        summary += f" + {summary_counts(answer.additional)}"
        short += " (additional section did not fit)"
    said = (facts_of(qname_s, qtype_s, answer.rcode, summary, answer.result),
            facts_of(qname_s, qtype_s, answer.rcode, short, answer.result),
            facts_of(qname_s, qtype_s, answer.rcode, f"{rcode_name} TC (truncated: {summary})",
                     answer.result))
    counts = (len(answer.answer), len(answer.authority), len(answer.additional))
    return Entry(flags, counts, main + extra, main if extra else None, said, answer.rcode, opts)

