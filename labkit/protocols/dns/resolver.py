"""The authoritative DNS core: query bytes in, reply bytes out. No sockets, no clock.

dnslib is the codec for the zone data (its zone reader built `DnsZone.records`, its RD classes
pack the RDATA) and for unusual queries; the resolver logic is ours, because dnslib's
ZoneResolver sets RA, answers NXDOMAIN where NODATA is due, omits the SOA from negative
answers and adds no A records for SRV targets.

Speed comes from doing the work once: every answer for the lab's names is assembled when the
resolver is built (per qname/qtype/class), so a typical query costs a hand-parse of the fixed
header and question, a dict lookup and a join that splices in the query's ID, its RD/CD bits
and its question *as sent* (0x20 letter case is echoed, RFC 5452 §9.3 resolvers check it).
Answers computed on demand for other names (NXDOMAIN, REFUSED, NODATA for rare types) go to a
bounded cache with the same shape. Anything the fast parser does not like (compression
pointers in the question, trailing bytes, several additional records, EDNS version > 0, odd
flags) falls back to dnslib's parser; bytes nobody can parse get FORMERR when the header can
be read and are dropped when it cannot.

Choices worth knowing:
- AA is set on every answer from our zones (data, NODATA, NXDOMAIN, sinkholes) and RA never.
  REFUSED/FORMERR/NOTIMP/BADVERS/SERVFAIL carry no AA: RFC 1035 ties AA to authority for the
  question's name, which we do not claim for a name we refuse or a query we cannot read.
- ANY (RFC 8482 §4.1): one RRset, the first the zone file gives for the name (with the usual
  additional records), over UDP and TCP alike.
- EDNS: our OPT advertises `max_udp` (default 1232, the DNS Flag Day 2020 figure that fits
  an IPv6 minimum-MTU path without fragmentation); a reply is sized to the client's buffer
  clamped to [512, max_udp]. The DO bit is copied (RFC 3225); options are ignored (no cookies).
- When an answer does not fit: first the additional section is dropped (RFC 2181 §9, no TC);
  if it still does not fit, TC is set and only the header, the question (and OPT) go back.
- Negative answers carry the zone's SOA with TTL min(SOA TTL, SOA minimum) (RFC 2308 §3).
- Wildcards (RFC 4592 closest-encloser rule) and in-zone CNAME chains (at most 8 links) are
  followed; there are no delegations (NS below an apex is served as plain data).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import NamedTuple

from dnslib import QTYPE, RR, DNSBuffer, DNSLabel, DNSRecord

from labkit.errors import LabkitError
from labkit.protocols.dns.zone import DnsZone

# RR types and codes used by name (ints, to keep the hot path free of enum look-ups)
T_A, T_NS, T_CNAME, T_SOA, T_MX, T_TXT, T_AAAA, T_SRV = 1, 2, 5, 6, 15, 16, 28, 33
T_OPT, T_IXFR, T_AXFR, T_ANY = 41, 251, 252, 255
CLASS_IN = 1
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED, BADVERS = 0, 1, 2, 3, 4, 5, 16
RCODE_NAMES = {NOERROR: "NOERROR", FORMERR: "FORMERR", SERVFAIL: "SERVFAIL", NXDOMAIN: "NXDOMAIN",
               NOTIMP: "NOTIMP", REFUSED: "REFUSED", BADVERS: "BADVERS"}

MAX_UDP_DEFAULT = 1232
MAX_CNAME_CHAIN = 8
CACHE_SIZE_DEFAULT = 4096
TCP_LIMIT = 65535

_QR, _AA, _TC, _RD = 0x8000, 0x0400, 0x0200, 0x0100
_CD = 0x0010
_QUERY_COUNTS_PLAIN = b"\x00\x01\x00\x00\x00\x00\x00\x00"
_QUERY_COUNTS_EDNS = b"\x00\x01\x00\x00\x00\x00\x00\x01"
_OPT_HEAD = b"\x00\x00\x29"  # root owner, type OPT
_ADDITIONAL_FOR = (T_NS, T_MX, T_SRV)  # types whose target names get A/AAAA in the additional section
_PREBUILT_TYPES = (T_A, T_AAAA, T_SRV, T_TXT, T_ANY)  # besides the types each name holds


class DnsConfigError(LabkitError):
    """Zones the resolver cannot serve (no SOA at the apex, ...) or a bad setting."""


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


_new_reply = tuple.__new__  # Reply(...) minus its Python-level __new__: the hot path makes one per query


def _outcome(qname: str, qtype: str, rcode: int, summary: str, result: str) -> Outcome:
    return Outcome(qname, qtype, rcode, summary, result, f"{qtype} {qname}".strip())


DROPPED_SHORT = _outcome("", "", -1, "dropped: shorter than a DNS header", "dropped")
DROPPED_RESPONSE = _outcome("", "", -1, "dropped: a response (QR=1), not a query", "dropped")


# ---------------------------------------------------------------------------------------------
# names in wire form (lowercase, uncompressed, ending in the root label)


def name_wire(name: str | DNSLabel) -> bytes:
    """`Lab.Example.` -> b'\\x03lab\\x07example\\x00' (lowercased; DNS case-folds ASCII only)."""
    label = name if isinstance(name, DNSLabel) else DNSLabel(name)
    return b"".join(bytes((len(part),)) + part.lower() for part in label.label) + b"\x00"


_PLAIN_LABEL = re.compile(rb"[A-Za-z0-9_*-]+")


def name_text(wire: bytes) -> str:
    """Presentation form without the trailing dot, escaping as dig does (\\. and \\DDD)."""
    parts = []
    i = 0
    while i < len(wire) and (length := wire[i]):
        label = wire[i + 1 : i + 1 + length]
        if _PLAIN_LABEL.fullmatch(label):
            parts.append(label.decode("ascii"))
        else:
            parts.append("".join(
                ("\\" + chr(b)) if b in b".\\" else chr(b) if 0x21 <= b <= 0x7E else f"\\{b:03d}"
                for b in label))
        i += 1 + length
    return ".".join(parts) or "."


def _well_formed_name(query: bytes, name_end: int) -> bool:
    """Do the labels from offset 12 end exactly at name_end, each 1..63 bytes, <= 255 in all?"""
    if name_end - 12 > 255:
        return False
    i = 12
    while i < name_end - 1:
        length = query[i]
        if length > 63 or not length:
            return False
        i += length + 1
    return i == name_end - 1


def _parent(wire: bytes) -> bytes:
    return wire[wire[0] + 1 :]


def type_text(qtype: int) -> str:
    name = QTYPE.get(qtype, None)
    return name if isinstance(name, str) and not name.isdigit() else f"TYPE{qtype}"


class _FlatBuffer(DNSBuffer):
    """A DNSBuffer that never compresses: each RDATA is packed alone, then placed anywhere."""

    def encode_name(self, name: str | DNSLabel) -> None:
        self.encode_name_nocompress(name)


# ---------------------------------------------------------------------------------------------
# zone data


@dataclass(frozen=True, slots=True)
class _Rec:
    rtype: int
    tail: bytes  # type, class, TTL, RDLENGTH and RDATA: everything after the owner name
    target: bytes | None  # the name additional-section processing follows (SRV/MX/NS), or CNAME's


def _pack_record(rtype: int, ttl: int, rdata: bytes) -> bytes:
    return struct.pack("!HHIH", rtype, CLASS_IN, ttl, len(rdata)) + rdata


def _rec_from_rr(rr: RR, ttl: int | None = None) -> _Rec:
    buffer = _FlatBuffer()
    rr.rdata.pack(buffer)
    rdata = bytes(buffer.data)
    target = None
    if rr.rtype == T_SRV:
        target = name_wire(rr.rdata.target)
    elif rr.rtype in (T_MX, T_NS, T_CNAME):
        target = name_wire(rr.rdata.label)
    return _Rec(rr.rtype, _pack_record(rr.rtype, rr.ttl if ttl is None else ttl, rdata), target)


@dataclass(slots=True)
class _ZoneData:
    apex: bytes
    name: str
    soa: _Rec  # with the negative-answer TTL, for the authority section of negative answers
    nxdomain_everywhere: bool  # a sinkhole without an address
    nodes: dict[bytes, dict[int, list[_Rec]]]  # every existing name, empty non-terminals as {}


def _zone_data(zone: DnsZone) -> _ZoneData:
    apex = name_wire(zone.origin)
    records = [rr for rr in zone.records if rr.rclass == CLASS_IN and rr.rtype != T_OPT]
    soas = [rr for rr in records if rr.rtype == T_SOA and name_wire(rr.rname) == apex]
    if not soas:
        raise DnsConfigError(f"zone {zone.origin} has no SOA record at its apex")
    soa = soas[0]
    negative_ttl = min(soa.ttl, soa.rdata.times[4])  # RFC 2308 §3: min(SOA TTL, SOA MINIMUM)
    nodes: dict[bytes, dict[int, list[_Rec]]] = {apex: {}}
    for rr in records:
        owner = name_wire(rr.rname)
        if not _is_at_or_below(owner, apex):
            raise DnsConfigError(f"zone {zone.origin}: record {rr.rname} is outside the zone")
        node = nodes.setdefault(owner, {})
        node.setdefault(rr.rtype, []).append(_rec_from_rr(rr))
        # the names between the owner and the apex exist too: empty non-terminals answer NODATA,
        # never NXDOMAIN, which would deny everything below them (RFC 8020)
        name = owner
        while name != apex:
            name = _parent(name)
            nodes.setdefault(name, {})
    if zone.sinkhole and zone.sinkhole_address is not None:
        _ensure_sinkhole_address(nodes, apex, zone.sinkhole_address, soa.ttl)
    return _ZoneData(apex, zone.origin, _rec_from_rr(soa, negative_ttl),
                     zone.sinkhole and zone.sinkhole_address is None, nodes)


def _is_at_or_below(name: bytes, apex: bytes) -> bool:
    while True:
        if name == apex:
            return True
        if name == b"\x00":
            return False
        name = _parent(name)


def _ensure_sinkhole_address(nodes: dict[bytes, dict[int, list[_Rec]]], apex: bytes,
                             address: IPv4Address, ttl: int) -> None:
    # the zone template writes `@ A` and `* A`; a DnsZone built by hand may not, and the
    # sinkhole's promise (the name and everything below it answer the address) must hold
    record = _Rec(T_A, _pack_record(T_A, ttl, address.packed), None)
    for owner in (apex, b"\x01*" + apex):
        node = nodes.setdefault(owner, {})
        node.setdefault(T_A, [record])


# ---------------------------------------------------------------------------------------------
# answers


@dataclass(slots=True)
class _Answer:
    rcode: int
    authoritative: bool
    answer: list[tuple[bytes, _Rec]]
    authority: list[tuple[bytes, _Rec]]
    additional: list[tuple[bytes, _Rec]]
    result: str


# One way to send an answer: (size of `body`, the 2-byte flags + 8-byte counts for each
# combination of the query's RD and CD bits, body = everything after the question, outcome).
_Shape = tuple[int, tuple[bytes, bytes, bytes, bytes], bytes, Outcome]


class _Entry:
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

        def shape(extra_ar: int, a: int, n: int, r: int, data: bytes, bits: int, said: Outcome) -> _Shape:
            counts = struct.pack("!HHHH", 1, a, n, r + extra_ar)
            heads = tuple((flags | bits | rd | cd).to_bytes(2, "big") + counts
                          for rd, cd in ((0, 0), (_RD, 0), (0, _CD), (_RD, _CD)))
            return len(data), heads, data, said  # type: ignore[return-value]

        forms = []
        for opt in (b"", *opts):
            extra = 1 if opt else 0
            shapes = [shape(extra, an, ns, ar, body + opt, 0, outcome)]
            if body_short is not None:
                shapes.append(shape(extra, an, ns, 0, body_short + opt, 0, outcome_short))
            shapes.append(shape(extra, 0, 0, 0, opt, _TC, outcome_tc))
            forms.append(tuple(shapes))
        self.forms: tuple[tuple[_Shape, ...], ...] = tuple(forms)


def _summary_counts(records: list[tuple[bytes, _Rec]]) -> str:
    counts: dict[int, int] = {}
    for _, rec in records:
        counts[rec.rtype] = counts.get(rec.rtype, 0) + 1
    return ", ".join(f"{n} {type_text(t)}" for t, n in counts.items())


def _owner_bytes(owner: bytes, suffixes: dict[bytes, int]) -> bytes:
    # compress against the question only (the question sits at offset 12 in every reply)
    offset = suffixes.get(owner)
    if offset is None:
        return owner
    return struct.pack("!H", 0xC000 | (12 + offset))


def _question_suffixes(qname: bytes) -> dict[bytes, int]:
    suffixes: dict[bytes, int] = {}
    i = 0
    while qname[i]:
        suffixes[qname[i:]] = i
        i += qname[i] + 1
    return suffixes


def _entry(qname: bytes, qtype: int, answer: _Answer, opts: tuple[bytes, bytes]) -> _Entry:
    suffixes = _question_suffixes(qname)

    def pack(section: list[tuple[bytes, _Rec]]) -> bytes:
        return b"".join(_owner_bytes(owner, suffixes) + rec.tail for owner, rec in section)

    main = pack(answer.answer) + pack(answer.authority)
    extra = pack(answer.additional)
    flags = _QR | (_AA if answer.authoritative else 0) | (answer.rcode & 0xF)
    rcode_name = RCODE_NAMES.get(answer.rcode, str(answer.rcode))
    qname_s, qtype_s = name_text(qname), type_text(qtype)
    if answer.rcode != NOERROR:
        summary = rcode_name
    elif not answer.answer:
        summary = "NOERROR NODATA"
    else:
        summary = f"NOERROR {_summary_counts(answer.answer)}"
    short = summary
    if answer.additional:
        summary += f" + {_summary_counts(answer.additional)}"
        short += " (additional section did not fit)"
    outcome = _outcome(qname_s, qtype_s, answer.rcode, summary, answer.result)
    outcome_short = _outcome(qname_s, qtype_s, answer.rcode, short, answer.result)
    outcome_tc = _outcome(qname_s, qtype_s, answer.rcode, f"{rcode_name} TC (truncated: {summary})",
                          answer.result)
    counts = (len(answer.answer), len(answer.authority), len(answer.additional))
    return _Entry(flags, counts, main + extra, main if extra else None, (outcome, outcome_short, outcome_tc),
                  opts)


class AuthoritativeResolver:
    """Authoritative-only answers for a set of zones; see the module docstring for the rules.

    `answer(query, tcp=...)` never raises: every input gives a Reply (wire None = drop).
    """

    def __init__(self, zones: Mapping[str, DnsZone] | Iterable[DnsZone], *, max_udp: int = MAX_UDP_DEFAULT,
                 cache_size: int = CACHE_SIZE_DEFAULT) -> None:
        if not 512 <= max_udp <= 4096:
            raise DnsConfigError(f"max_udp must be within 512..4096, not {max_udp}")
        if cache_size < 1:
            raise DnsConfigError("cache_size must be at least 1")
        values = zones.values() if isinstance(zones, Mapping) else zones
        self.max_udp = max_udp
        self._zones: dict[bytes, _ZoneData] = {}
        for zone in values:
            data = _zone_data(zone)
            if data.apex in self._zones:
                raise DnsConfigError(f"zone {zone.origin} is given twice")
            self._zones[data.apex] = data
        # OPT we send: our UDP size; TTL field = extended rcode, version 0, DO flag (copied)
        self._opt = (_OPT_HEAD + struct.pack("!HIH", max_udp, 0, 0),
                     _OPT_HEAD + struct.pack("!HIH", max_udp, 0x8000, 0))
        self._opt_badvers = _OPT_HEAD + struct.pack("!HIH", max_udp, (BADVERS >> 4) << 24, 0)
        self._cache_size = cache_size
        self._cache: dict[bytes, _Entry] = {}
        self._static: dict[bytes, _Entry] = {}
        self.queries = 0
        self.dropped = 0
        self._rcodes = [0] * 24
        for data in self._zones.values():
            for owner, node in data.nodes.items():
                for qtype in (*node, *_PREBUILT_TYPES):
                    key = owner + struct.pack("!HH", qtype, CLASS_IN)
                    if key not in self._static:
                        self._static[key] = self._compute(key)

    # -- counters -----------------------------------------------------------------------------

    @property
    def counters(self) -> dict[str, object]:
        """queries (every packet handed in), answers by rcode name, dropped, formerr."""
        answers = {RCODE_NAMES.get(code, str(code)): n for code, n in enumerate(self._rcodes) if n}
        return {"queries": self.queries, "answers": answers, "dropped": self.dropped,
                "formerr": self._rcodes[FORMERR]}

    @property
    def prebuilt(self) -> int:
        """How many answers were assembled when the resolver was built."""
        return len(self._static)

    # -- the query path -----------------------------------------------------------------------

    def answer(self, query: bytes, *, tcp: bool = False) -> Reply:
        """The reply to one DNS message (UDP datagram, or TCP message without its length)."""
        self.queries += 1
        try:
            if type(query) is not bytes:  # bytearray/memoryview from a caller: keys must be hashable
                query = bytes(query)
            # fast path: QUERY with QR/AA/TC clear, one question, nothing else but maybe one OPT
            n = len(query)
            if n < 17 or query[2] & 0xFE:
                return self._slow(query, tcp)
            # The name ends at the first zero byte. A key found in the tables equals a valid
            # name (lower() maps no byte onto a label length <= 63), so only misses need the
            # label-by-label walk.
            name_end = query.find(0, 12) + 1
            qend = name_end + 4
            counts = query[4:12]
            if counts == _QUERY_COUNTS_PLAIN:
                if qend != n or not name_end:
                    return self._slow(query, tcp)
                form = 0
                limit = TCP_LIMIT if tcp else 512
            elif counts == _QUERY_COUNTS_EDNS:
                # the OPT record: root owner, type 41, version 0; options are skipped unread
                if (not name_end or qend + 11 > n or query[qend] or query[qend + 1 : qend + 3] != b"\x00\x29"
                        or query[qend + 6] or qend + 11 + ((query[qend + 9] << 8) | query[qend + 10]) != n):
                    return self._slow(query, tcp)
                form = 2 if query[qend + 7] & 0x80 else 1  # DO is copied (RFC 3225)
                bufsize = (query[qend + 3] << 8) | query[qend + 4]
                limit = TCP_LIMIT if tcp else 512 if bufsize < 512 else min(bufsize, self.max_udp)
            else:
                return self._slow(query, tcp)
            key = query[12:name_end].lower() + query[name_end:qend]
            entry = self._static.get(key)
            if entry is None:
                entry = self._cache.get(key)
                if entry is None:
                    if not _well_formed_name(query, name_end):
                        return self._slow(query, tcp)
                    entry = self._remember(key)
            shapes = entry.forms[form]
            shape = shapes[0]
            if qend + shape[0] > limit:  # the last shape (TC, no records) always fits
                shape = next(s for s in shapes if qend + s[0] <= limit)
            _, heads, body, outcome = shape
            self._rcodes[outcome.rcode] += 1
            return _new_reply(Reply, (b"".join(
                (query[:2], heads[(query[2] & 1) | ((query[3] >> 3) & 2)], query[12:qend], body)), outcome))
        except Exception:  # a bug must not take the server down: answer SERVFAIL, count it
            return self._servfail(query)

    def _serve(self, entry: _Entry, ident: bytes, flags: int, question: bytes, form: int,
               limit: int) -> Reply:
        end = 12 + len(question)
        _, heads, body, outcome = next(s for s in entry.forms[form] if end + s[0] <= limit)
        self._rcodes[outcome.rcode] += 1
        head = heads[(1 if flags & _RD else 0) | (2 if flags & _CD else 0)]
        return Reply(b"".join((ident, head, question, body)), outcome)

    def _remember(self, key: bytes) -> _Entry:
        entry = self._compute(key)
        if len(self._cache) >= self._cache_size:
            self._cache.clear()  # bounded: a flood of random names cannot grow memory
        self._cache[key] = entry
        return entry

    def _compute(self, key: bytes) -> _Entry:
        qname = key[:-4]
        qtype, qclass = struct.unpack("!HH", key[-4:])
        return _entry(qname, qtype, self._resolve(qname, qtype, qclass), self._opt)

    # -- resolution (runs at build time, and for names not prebuilt) -----------------------------

    def _zone_for(self, name: bytes) -> _ZoneData | None:
        while True:
            zone = self._zones.get(name)
            if zone is not None:
                return zone
            if name == b"\x00":
                return None
            name = _parent(name)

    def _node(self, zone: _ZoneData, name: bytes) -> dict[int, list[_Rec]] | None:
        node = zone.nodes.get(name)
        if node is not None:
            return node
        # RFC 4592: a wildcard at the closest encloser stands in for a name that does not exist
        encloser = _parent(name)
        while encloser not in zone.nodes:
            encloser = _parent(encloser)
        return zone.nodes.get(b"\x01*" + encloser)

    def _resolve(self, qname: bytes, qtype: int, qclass: int) -> _Answer:
        zone = self._zone_for(qname) if qclass == CLASS_IN else None
        if zone is None or qtype in (T_AXFR, T_IXFR):  # not ours, or a zone transfer: we refuse
            return _Answer(REFUSED, False, [], [], [], "refused")
        answer: list[tuple[bytes, _Rec]] = []
        name = qname
        for _ in range(MAX_CNAME_CHAIN + 1):
            node = None if zone.nxdomain_everywhere else self._node(zone, name)
            if node is None:
                return _Answer(NXDOMAIN, True, answer, [(zone.apex, zone.soa)], [], "nxdomain")
            if qtype == T_ANY and node:
                rrset = next(iter(node.values()))  # RFC 8482: one RRset, the zone file's first
            else:
                rrset = node.get(qtype, [])
            if rrset:
                answer.extend((name, rec) for rec in rrset)
                return _Answer(NOERROR, True, answer, [], self._additional(answer), "ok")
            cname = node.get(T_CNAME)
            if not cname or qtype == T_CNAME:
                return _Answer(NOERROR, True, answer, [] if answer else [(zone.apex, zone.soa)], [],
                               "ok" if answer else "nodata")
            answer.append((name, cname[0]))
            name = cname[0].target or b"\x00"  # always set for a CNAME; the root is never ours
            next_zone = self._zone_for(name)
            if next_zone is None:  # the chain leaves our data: the client follows it elsewhere
                return _Answer(NOERROR, True, answer, [], [], "ok")
            zone = next_zone
        return _Answer(NOERROR, True, answer, [], [], "ok")  # a CNAME loop: give what we have

    def _additional(self, answer: list[tuple[bytes, _Rec]]) -> list[tuple[bytes, _Rec]]:
        have = {(owner, rec.rtype) for owner, rec in answer}
        extra: list[tuple[bytes, _Rec]] = []
        for _, rec in answer:
            if rec.rtype not in _ADDITIONAL_FOR or rec.target is None:
                continue
            zone = self._zone_for(rec.target)
            if zone is None or zone.nxdomain_everywhere:
                continue
            node = self._node(zone, rec.target)
            if not node:
                continue
            for rtype in (T_A, T_AAAA):
                if (rec.target, rtype) not in have:
                    have.add((rec.target, rtype))
                    extra.extend((rec.target, r) for r in node.get(rtype, []))
        return extra

    # -- the uncommon path: dnslib parses ---------------------------------------------------------

    def _slow(self, query: bytes, tcp: bool) -> Reply:
        if len(query) < 12:
            self.dropped += 1
            return Reply(None, DROPPED_SHORT)
        flags = (query[2] << 8) | query[3]
        if flags & _QR:
            self.dropped += 1
            return Reply(None, DROPPED_RESPONSE)
        opcode = (flags >> 11) & 0xF
        if opcode:
            return self._header_only(query, NOTIMP, f"NOTIMP (opcode {opcode})", "notimp")
        try:
            record = DNSRecord.parse(query)
        except Exception:  # dnslib raises DNSError, BufferError, RecursionError, ...
            return self._header_only(query, FORMERR, "FORMERR (unparsable)", "formerr")
        if len(record.questions) != 1:
            return self._header_only(query, FORMERR, f"FORMERR ({len(record.questions)} questions)",
                                     "formerr")
        opts = [rr for rr in record.ar if rr.rtype == T_OPT]
        if len(opts) > 1 or (opts and opts[0].rname.label):  # RFC 6891 §6.1.1
            return self._header_only(query, FORMERR, "FORMERR (bad OPT record)", "formerr")
        question = record.questions[0]
        labels = question.qname.label
        if any(not 0 < len(label) <= 63 for label in labels):
            return self._header_only(query, FORMERR, "FORMERR (bad name)", "formerr")
        wire = b"".join(bytes((len(label),)) + label for label in labels) + b"\x00"
        if len(wire) > 255:
            return self._header_only(query, FORMERR, "FORMERR (name too long)", "formerr")
        qtail = struct.pack("!HH", question.qtype, question.qclass)
        copied = flags & (_RD | _CD)
        if opts:
            opt = opts[0]
            version = (opt.ttl >> 16) & 0xFF
            if version:
                return self._badvers(query[:2], copied, wire + qtail, question.qtype, version)
            limit = TCP_LIMIT if tcp else max(512, min(opt.rclass, self.max_udp))
            form = 2 if opt.ttl & 0x8000 else 1
        else:
            limit = TCP_LIMIT if tcp else 512
            form = 0
        key = wire.lower() + qtail
        entry = self._static.get(key) or self._cache.get(key) or self._remember(key)
        return self._serve(entry, query[:2], copied, wire + qtail, form, limit)

    def _header_only(self, query: bytes, rcode: int, summary: str, result: str) -> Reply:
        flags = (((query[2] & 0x79) | 0x80) << 8) | (query[3] & 0x10) | rcode  # keep opcode, RD, CD
        self._rcodes[rcode] += 1
        outcome = _outcome("", "", rcode, summary, result)
        return Reply(query[:2] + flags.to_bytes(2, "big") + bytes(8), outcome)

    def _badvers(self, ident: bytes, copied: int, question: bytes, qtype: int, version: int) -> Reply:
        self._rcodes[BADVERS] += 1
        flags = (_QR | copied).to_bytes(2, "big")  # low 4 bits of BADVERS (16) are 0; the rest is in OPT
        outcome = _outcome(name_text(question[:-4]), type_text(qtype), BADVERS,
                           f"BADVERS (EDNS version {version})", "badvers")
        return Reply(ident + flags + _QUERY_COUNTS_EDNS + question + self._opt_badvers, outcome)

    def _servfail(self, query: bytes) -> Reply:
        if len(query) < 12:
            self.dropped += 1
            return Reply(None, DROPPED_SHORT)
        self._rcodes[SERVFAIL] += 1
        flags = (((query[2] & 0x79) | 0x80) << 8) | SERVFAIL
        return Reply(query[:2] + flags.to_bytes(2, "big") + bytes(8),
                     _outcome("", "", SERVFAIL, "SERVFAIL (internal error)", "servfail"))
