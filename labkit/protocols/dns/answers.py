"""Prebuilt answers: the bytes of a reply minus its ID and question, in every shape a client needs.

An answer (from lookup.py) is packed once per question into an `Entry`; the resolver then
serves a query by splicing the query's ID, RD/CD bits and question (as sent) into it. Owner
names are compressed against the question only, which sits at offset 12 in every reply.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

from labkit.protocols.dns.lookup import Answer, Section
from labkit.protocols.dns.wire import AA, CD, NOERROR, QR, RCODE_NAMES, RD, TC, name_text, type_text


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a query got, in words: shared by every reply with the same answer (built once)."""

    qname: str  # without the trailing dot; "" when no question could be read
    qtype: str  # "SRV", "TYPE65280", ""
    rcode: int  # the full (extended) rcode: 16 for BADVERS
    summary: str  # "NOERROR 1 SRV + 1 A", "NOERROR NODATA", "NXDOMAIN", "REFUSED", ...
    result: str  # for the event: ok, nodata, nxdomain, refused, formerr, notimp, badvers, servfail, dropped
    request: str  # "SRV _ciscoprov-https._tls.lab.example"


class Reply(NamedTuple):
    """The bytes to send back (None: send nothing) and what they say."""

    wire: bytes | None
    outcome: Outcome

    @property
    def qname(self) -> str:
        return self.outcome.qname

    @property
    def qtype(self) -> str:
        return self.outcome.qtype

    @property
    def rcode(self) -> int:
        return self.outcome.rcode

    @property
    def summary(self) -> str:
        return self.outcome.summary

    @property
    def result(self) -> str:
        return self.outcome.result


new_reply = tuple.__new__  # Reply(...) minus its Python-level __new__: the hot path makes one per query


def outcome_of(qname: str, qtype: str, rcode: int, summary: str, result: str) -> Outcome:
    return Outcome(qname, qtype, rcode, summary, result, f"{qtype} {qname}".strip())


DROPPED_SHORT = outcome_of("", "", -1, "dropped: shorter than a DNS header", "dropped")
DROPPED_RESPONSE = outcome_of("", "", -1, "dropped: a response (QR=1), not a query", "dropped")


# One way to send an answer: (size of `body`, the 2-byte flags + 8-byte counts for each
# combination of the query's RD and CD bits, body = everything after the question, outcome).
Shape = tuple[int, tuple[bytes, bytes, bytes, bytes], bytes, Outcome]


class Entry:
    """One prebuilt answer: everything but the ID and the question, in every shape a client may need.

    `forms[0]` serves queries without EDNS, `forms[1]` with EDNS, `forms[2]` with EDNS and DO.
    Each form lists its shapes from the fullest down: all sections; without the additional
    section (when there is one); truncated (TC, no records). The first that fits is sent.
    """

    __slots__ = ("forms",)

    def __init__(self, flags: int, counts: tuple[int, int, int], body: bytes, body_short: bytes | None,
                 outcomes: tuple[Outcome, Outcome, Outcome], opts: tuple[bytes, bytes]) -> None:
        an, ns, ar = counts
        outcome, outcome_short, outcome_tc = outcomes

        def shape(extra_ar: int, a: int, n: int, r: int, data: bytes, bits: int, said: Outcome) -> Shape:
            counts = struct.pack("!HHHH", 1, a, n, r + extra_ar)
            heads = tuple((flags | bits | rd | cd).to_bytes(2, "big") + counts
                          for rd, cd in ((0, 0), (RD, 0), (0, CD), (RD, CD)))
            return len(data), heads, data, said  # type: ignore[return-value]

        forms = []
        for opt in (b"", *opts):
            extra = 1 if opt else 0
            shapes = [shape(extra, an, ns, ar, body + opt, 0, outcome)]
            if body_short is not None:
                shapes.append(shape(extra, an, ns, 0, body_short + opt, 0, outcome_short))
            shapes.append(shape(extra, 0, 0, 0, opt, TC, outcome_tc))
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
    outcome = outcome_of(qname_s, qtype_s, answer.rcode, summary, answer.result)
    outcome_short = outcome_of(qname_s, qtype_s, answer.rcode, short, answer.result)
    outcome_tc = outcome_of(qname_s, qtype_s, answer.rcode, f"{rcode_name} TC (truncated: {summary})",
                          answer.result)
    counts = (len(answer.answer), len(answer.authority), len(answer.additional))
    return Entry(flags, counts, main + extra, main if extra else None, (outcome, outcome_short, outcome_tc),
                  opts)

