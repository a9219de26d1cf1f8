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

The core in modules: zone.py (the input), index.py (zones in wire form), lookup.py (which
records answer), answers.py (answers packed once, in every shape), this module (the query
path: the byte-level fast path, the bounded cache of answers computed on demand, dnslib's
parser for the rest), wire.py (constants, names), faults.py (answers changed on purpose).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping

from dnslib import DNSRecord

from labkit.protocols.dns.answers import (
    DROPPED_RESPONSE,
    DROPPED_SHORT,
    QUICK,
    SET_DATA,
    SET_DONE,
    SET_FACTS,
    SET_L2,
    SET_SEND,
    SET_TIMERS,
    SET_TO,
    Entry,
    entry,
    facts_of,
    new_object,
    reply_of,
)
from labkit.protocols.dns.index import ZoneIndex
from labkit.protocols.dns.lookup import resolve
from labkit.protocols.dns.wire import (
    BADVERS,
    CACHE_SIZE_DEFAULT,
    CD,
    CLASS_IN,
    FORMERR,
    MAX_UDP_DEFAULT,
    NOTIMP,
    OPT_HEAD,
    QR,
    QUERY_COUNTS_EDNS,
    QUERY_COUNTS_PLAIN,
    RCODE_NAMES,
    RD,
    SERVFAIL,
    T_A,
    T_AAAA,
    T_ANY,
    T_OPT,
    T_SRV,
    T_TXT,
    TCP_LIMIT,
    DnsConfigError,
    name_text,
    type_text,
    well_formed_name,
)
from labkit.protocols.dns.zone import DnsZone
from labkit.protocols.result import Datagram, Result

PREBUILT_TYPES = (T_A, T_AAAA, T_SRV, T_TXT, T_ANY)  # besides the types each name holds


class AuthoritativeResolver:
    """Authoritative-only answers for a set of zones; see the module docstring for the rules.

    `answer(query, tcp=...)` never raises: every input gives a Result (the shared vocabulary of
    labkit.protocols.result): one Datagram to send back (none when the query is dropped) and one
    Fact (a DnsFact: the event's request, answer and result, and the qname, qtype and rcode).
    """

    def __init__(self, zones: Mapping[str, DnsZone] | Iterable[DnsZone], *, max_udp: int = MAX_UDP_DEFAULT,
                 cache_size: int = CACHE_SIZE_DEFAULT) -> None:
        if not 512 <= max_udp <= 4096:
            raise DnsConfigError(f"max_udp must be within 512..4096, not {max_udp}")
        if cache_size < 1:
            raise DnsConfigError("cache_size must be at least 1")
        self.max_udp = max_udp
        self._index = ZoneIndex(zones.values() if isinstance(zones, Mapping) else zones)
        # OPT we send: our UDP size; TTL field = extended rcode, version 0, DO flag (copied)
        self._opt = (OPT_HEAD + struct.pack("!HIH", max_udp, 0, 0),
                     OPT_HEAD + struct.pack("!HIH", max_udp, 0x8000, 0))
        self._opt_badvers = OPT_HEAD + struct.pack("!HIH", max_udp, (BADVERS >> 4) << 24, 0)
        self._cache_size = cache_size
        self._cache: dict[bytes, Entry] = {}
        self._static: dict[bytes, Entry] = {}
        self.dropped = 0
        self._rcodes = [0] * 24
        for data in self._index.zones.values():
            for owner, node in data.nodes.items():
                for qtype in (*node, *PREBUILT_TYPES):
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
    def tally(self) -> list[int]:
        """Answers by rcode (index), the list itself: the UDP reply table counts its hits in it."""
        return self._rcodes

    @property
    def queries(self) -> int:
        """Every message handed in: each is either answered (counted by rcode) or dropped."""
        return sum(self._rcodes) + self.dropped

    @property
    def prebuilt(self) -> int:
        """How many answers were assembled when the resolver was built."""
        return len(self._static)

    # -- the query path -----------------------------------------------------------------------

    def answer(self, query: bytes, *, tcp: bool = False) -> Result:
        """The reply to one DNS message (UDP datagram, or TCP message without its length)."""
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
            if counts == QUERY_COUNTS_PLAIN:
                if qend != n or not name_end:
                    return self._slow(query, tcp)
                form = 0
                limit = TCP_LIMIT if tcp else 512
            elif counts == QUERY_COUNTS_EDNS:
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
                    if not well_formed_name(query, name_end):
                        return self._slow(query, tcp)
                    entry = self._remember(key)
            shapes = entry.forms[form]
            shape = shapes[0]
            if qend + shape[0] > limit:  # the last shape (TC, no records) always fits
                shape = next(s for s in shapes if qend + s[0] <= limit)
            _, heads, body, facts, rcode = shape
            self._rcodes[rcode] += 1
            wire = b"".join((query[:2], heads[(query[2] & 1) | ((query[3] >> 3) & 2)], query[12:qend], body))
            if not QUICK:
                return reply_of(wire, facts)
            # quick_reply, inlined: this runs once per query
            datagram = new_object(Datagram)
            SET_DATA(datagram, wire)
            SET_TO(datagram, None)
            SET_L2(datagram, False)
            result = new_object(Result)
            SET_SEND(result, (datagram,))
            SET_TIMERS(result, ())
            SET_FACTS(result, facts)
            SET_DONE(result, False)
            return result
        except Exception:  # a bug must not take the server down: answer SERVFAIL, count it
            return self._servfail(query)

    def _serve(self, entry: Entry, ident: bytes, flags: int, question: bytes, form: int,
               limit: int) -> Result:
        end = 12 + len(question)
        _, heads, body, facts, rcode = next(s for s in entry.forms[form] if end + s[0] <= limit)
        self._rcodes[rcode] += 1
        head = heads[(1 if flags & RD else 0) | (2 if flags & CD else 0)]
        return reply_of(b"".join((ident, head, question, body)), facts)

    def _remember(self, key: bytes) -> Entry:
        entry = self._compute(key)
        if len(self._cache) >= self._cache_size:
            self._cache.clear()  # bounded: a flood of random names cannot grow memory
        self._cache[key] = entry
        return entry

    def _compute(self, key: bytes) -> Entry:
        qname = key[:-4]
        qtype, qclass = struct.unpack("!HH", key[-4:])
        return entry(qname, qtype, resolve(self._index, qname, qtype, qclass), self._opt)

    # -- the uncommon path: dnslib parses ---------------------------------------------------------

    def _slow(self, query: bytes, tcp: bool) -> Result:
        if len(query) < 12:
            self.dropped += 1
            return DROPPED_SHORT
        flags = (query[2] << 8) | query[3]
        if flags & QR:
            self.dropped += 1
            return DROPPED_RESPONSE
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
        copied = flags & (RD | CD)
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

    def _header_only(self, query: bytes, rcode: int, summary: str, result: str) -> Result:
        flags = (((query[2] & 0x79) | 0x80) << 8) | (query[3] & 0x10) | rcode  # keep opcode, RD, CD
        self._rcodes[rcode] += 1
        return reply_of(query[:2] + flags.to_bytes(2, "big") + bytes(8),
                        facts_of("", "", rcode, summary, result))

    def _badvers(self, ident: bytes, copied: int, question: bytes, qtype: int, version: int) -> Result:
        self._rcodes[BADVERS] += 1
        flags = (QR | copied).to_bytes(2, "big")  # low 4 bits of BADVERS (16) are 0; the rest is in OPT
        facts = facts_of(name_text(question[:-4]), type_text(qtype), BADVERS,
                         f"BADVERS (EDNS version {version})", "badvers")
        return reply_of(ident + flags + QUERY_COUNTS_EDNS + question + self._opt_badvers, facts)

    def _servfail(self, query: bytes) -> Result:
        if len(query) < 12:
            self.dropped += 1
            return DROPPED_SHORT
        self._rcodes[SERVFAIL] += 1
        flags = (((query[2] & 0x79) | 0x80) << 8) | SERVFAIL
        return reply_of(query[:2] + flags.to_bytes(2, "big") + bytes(8),
                        facts_of("", "", SERVFAIL, "SERVFAIL (internal error)", "servfail"))
