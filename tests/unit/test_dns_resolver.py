"""The authoritative DNS core (labkit.protocols.dns), with no sockets.

Every answer is decoded with dnslib as an independent decoder (our replies are assembled from
prebuilt bytes, not by dnslib's packer), plus a few byte-level checks written by hand.
Hypothesis feeds arbitrary bytes (a Result always comes back, never an exception, never our
internal-error SERVFAIL) and random valid queries (the reply's ID and question match).
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address
from typing import NamedTuple

import pytest
from dnslib import CLASS, EDNS0, QTYPE, RR, TXT, DNSHeader, DNSQuestion, DNSRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.protocols.dns import AuthoritativeResolver, DnsConfigError, DnsFact, DnsZone, name_text, name_wire
from labkit.protocols.dns.answers import quick_reply, reply_of
from labkit.protocols.result import Datagram, Result

SRV_HTTPS = "_ciscoprov-https._tls.lab.example"
SRV_HTTP = "_ciscoprov-http._tcp.lab.example"
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5


def make_zone(name: str, body: str, *, ttl: int = 300, minimum: int = 60, sinkhole: bool = False,
              address: str | None = None, lab_ns: bool = False) -> DnsZone:
    home = "lab.example" if lab_ns else name  # the lab's sinkholes name the lab's server and admin
    ns, admin = f"ns.{home}.", f"hostmaster.{home}."
    text = (f"$ORIGIN {name}.\n$TTL {ttl}\n"
            f"@ IN SOA {ns} {admin} 7 3600 600 86400 {minimum}\n@ IN NS {ns}\n{body}")
    return DnsZone(name, tuple(RR.fromZone(text)), sinkhole, IPv4Address(address) if address else None)


# The default lab's zones as `labkit render` writes them (the plan's own test checks that the
# default inventory still plans these records): the core is tested on its own input, no inventory.
LAB_BODY = """acs IN A 10.42.0.1
ns IN A 10.42.0.1
pbx IN A 10.42.0.1
prov IN A 10.42.0.1
_ciscoprov-https._tls IN SRV 10 10 443 prov.lab.example.
_ciscoprov-http._tcp IN SRV 20 10 80 prov.lab.example.
"""
SINKHOLES = ("activate.cisco.com", "webapps.cisco.com", "activation.webex.com")


def lab_zones() -> list[DnsZone]:
    return [make_zone("lab.example", LAB_BODY, minimum=300, lab_ns=True),
            *(make_zone(name, "", minimum=300, lab_ns=True, sinkhole=True) for name in SINKHOLES)]


@pytest.fixture(scope="module")
def lab() -> AuthoritativeResolver:
    return AuthoritativeResolver(lab_zones())


BIG_BODY = "\n".join(f"big IN A 10.1.{i // 250}.{i % 250 + 1}" for i in range(40))  # 40 A: 700 bytes
HUGE_BODY = "\n".join(f"huge IN A 10.2.{i // 250}.{i % 250 + 1}" for i in range(100))  # 100 A: 1,660
# ten SRV records whose targets' A records (the additional section) push the reply past 512
FAT_SRV = "\n".join(
    [f"_sip._udp IN SRV 10 10 5060 h{i}.test.example." for i in range(10)]
    + [f"h{i} IN A 10.3.0.{i + 1}" for i in range(10)])


@pytest.fixture(scope="module")
def custom() -> AuthoritativeResolver:
    test = make_zone("test.example", "\n".join([
        "ns IN A 10.0.0.53", BIG_BODY, HUGE_BODY, FAT_SRV,
        "www IN CNAME web", "web IN A 10.0.0.80", "out IN CNAME elsewhere.example.org.",
        "dangling IN CNAME nothing", "*.wild IN A 10.0.0.99", "host.wild IN TXT \"real\"",
        "deep.a.b.c IN A 10.0.0.7",
    ]), ttl=3600, minimum=60)
    long_minimum = make_zone("slow.example", "x IN A 10.9.9.9", ttl=120, minimum=86400)
    hole = make_zone("cloud.example", "@ IN A 10.42.0.9\n* IN A 10.42.0.9", sinkhole=True,
                     address="10.42.0.9")
    bare_hole = make_zone("bare.example", "", sinkhole=True, address="10.42.0.10")  # no A records written
    return AuthoritativeResolver({z.origin: z for z in (test, long_minimum, hole, bare_hole)})


def query(name: str, qtype: str = "A", *, edns: int | None = None, do: bool = False, version: int = 0,
          rd: bool = True, cd: bool = False, ident: int = 0x1234, qclass: str = "IN") -> bytes:
    question = DNSQuestion(name, getattr(QTYPE, qtype), getattr(CLASS, qclass))
    q = DNSRecord(DNSHeader(id=ident, rd=int(rd)), q=question)
    q.header.cd = int(cd)
    if edns is not None or do:
        q.add_ar(EDNS0(udp_len=edns or 1232, flags="do" if do else "", version=version))
    return bytes(q.pack())


class Reply(NamedTuple):
    """A resolver's Result seen as the bytes sent back and the one fact for the event log."""

    wire: bytes | None
    fact: DnsFact

    @property
    def summary(self) -> str:
        return self.fact.answer

    @property
    def result(self) -> str:
        return self.fact.result

    @property
    def rcode(self) -> int:
        return self.fact.rcode

    @property
    def qname(self) -> str:
        return self.fact.qname

    @property
    def qtype(self) -> str:
        return self.fact.qtype


def answer(resolver: AuthoritativeResolver, raw: bytes, *, tcp: bool = False) -> Reply:
    """Every query gets a Result of the shared vocabulary: at most one datagram, exactly one fact."""
    result = resolver.answer(raw, tcp=tcp)
    assert isinstance(result, Result) and result.timers == () and not result.done
    assert len(result.send) <= 1 and len(result.facts) == 1
    fact = result.facts[0]
    assert isinstance(fact, DnsFact) and fact.action == "query"
    if result.send:
        assert result.send[0].to is None and not result.send[0].l2_unicast  # back to the peer
        # the fast path fills the slots itself: the very Result the constructors build
        assert result == reply_of(result.send[0].data, result.facts) and repr(result) == repr(reply_of(
            result.send[0].data, result.facts))
    return Reply(result.send[0].data if result.send else None, fact)


def ask(resolver: AuthoritativeResolver, name: str, qtype: str = "A", *, tcp: bool = False,
        **kwargs: object) -> tuple[DNSRecord, Reply]:
    reply = answer(resolver, query(name, qtype, **kwargs), tcp=tcp)  # type: ignore[arg-type]
    assert reply.wire is not None
    return DNSRecord.parse(reply.wire), reply


def rrs(section: list[RR], rtype: str | None = None) -> list[RR]:
    return [rr for rr in section if rr.rtype != QTYPE.OPT and (rtype is None or QTYPE[rr.rtype] == rtype)]


def opt_of(record: DNSRecord) -> RR | None:
    opts = [rr for rr in record.ar if rr.rtype == QTYPE.OPT]
    assert len(opts) <= 1
    return opts[0] if opts else None


def assert_authoritative(record: DNSRecord) -> None:
    assert record.header.qr == 1
    assert record.header.aa == 1, "AA must be set on every answer from our zones"
    assert record.header.ra == 0, "RA must never be set: we do not recurse"


def assert_soa_authority(record: DNSRecord, zone: str, ttl: int) -> None:
    soa = rrs(record.auth)
    assert len(soa) == 1 and QTYPE[soa[0].rtype] == "SOA"
    assert str(soa[0].rname) == zone + "."
    assert soa[0].ttl == ttl


# ---------------------------------------------------------------------------------------------
# positive answers


def test_srv_answer_carries_target_a_in_additional(lab: AuthoritativeResolver) -> None:
    for name, port in ((SRV_HTTPS, 443), (SRV_HTTP, 80)):
        record, reply = ask(lab, name, "SRV")
        assert_authoritative(record)
        assert record.header.rcode == NOERROR
        (srv,) = rrs(record.rr)
        assert QTYPE[srv.rtype] == "SRV" and srv.rdata.port == port
        assert str(srv.rdata.target) == "prov.lab.example."
        (extra,) = rrs(record.ar)
        assert (str(extra.rname), QTYPE[extra.rtype]) == ("prov.lab.example.", "A")
        assert str(extra.rdata) == "10.42.0.1"
        assert rrs(record.auth) == []
        assert reply.summary == "NOERROR 1 SRV + 1 A"
        assert (reply.result, reply.rcode, reply.qname, reply.qtype) == ("ok", NOERROR, name, "SRV")
        assert reply.fact.request == f"SRV {name}"


def test_a_answer(lab: AuthoritativeResolver) -> None:
    record, reply = ask(lab, "prov.lab.example")
    assert_authoritative(record)
    assert [str(rr.rdata) for rr in rrs(record.rr, "A")] == ["10.42.0.1"]
    assert rrs(record.rr)[0].ttl == 300
    assert reply.summary == "NOERROR 1 A"


def test_answer_bytes_by_hand(lab: AuthoritativeResolver) -> None:
    # A prov.lab.example, RD set, no EDNS: header, question as sent, one A with a pointer to it
    question = b"\x04prov\x03lab\x07example\x00\x00\x01\x00\x01"
    wire = answer(lab, b"\xbe\xef\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + question).wire
    assert wire == (b"\xbe\xef\x85\x00\x00\x01\x00\x01\x00\x00\x00\x00" + question
                    + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04\x0a\x2a\x00\x01")


def test_names_are_case_insensitive_and_the_question_is_echoed_as_sent(lab: AuthoritativeResolver) -> None:
    mixed = "_CiscoProv-HTTPS._TLS.Lab.EXAMPLE"
    record, reply = ask(lab, mixed, "SRV")
    assert record.header.rcode == NOERROR and len(rrs(record.rr, "SRV")) == 1
    assert record.q.qname.label == tuple(part.encode() for part in mixed.split("."))  # case kept (0x20)
    assert reply.qname == SRV_HTTPS  # events name it in lowercase
    record, _ = ask(lab, "NOPE.LAB.EXAMPLE")
    assert record.header.rcode == NXDOMAIN


def test_header_bits_copied_from_the_query(lab: AuthoritativeResolver) -> None:
    for rd in (False, True):
        for cd in (False, True):
            record, _ = ask(lab, "prov.lab.example", rd=rd, cd=cd, ident=0xABCD)
            assert record.header.id == 0xABCD
            assert (record.header.rd, record.header.cd, record.header.ad) == (int(rd), int(cd), 0)
            assert record.header.opcode == 0 and record.header.tc == 0


# ---------------------------------------------------------------------------------------------
# negative answers


def test_nodata_for_existing_name_other_type(lab: AuthoritativeResolver) -> None:
    record, reply = ask(lab, "prov.lab.example", "AAAA")
    assert_authoritative(record)
    assert record.header.rcode == NOERROR and rrs(record.rr) == []
    assert_soa_authority(record, "lab.example", 300)
    assert (reply.summary, reply.result) == ("NOERROR NODATA", "nodata")


def test_nxdomain_for_missing_name(lab: AuthoritativeResolver) -> None:
    record, reply = ask(lab, "nope.lab.example", "SRV")
    assert_authoritative(record)
    assert record.header.rcode == NXDOMAIN and rrs(record.rr) == []
    assert_soa_authority(record, "lab.example", 300)
    assert (reply.summary, reply.result) == ("NXDOMAIN", "nxdomain")


def test_empty_non_terminal_is_nodata_not_nxdomain(lab: AuthoritativeResolver) -> None:
    for name in ("_tls.lab.example", "_tcp.lab.example"):
        for qtype in ("A", "SRV", "TXT"):
            record, reply = ask(lab, name, qtype)
            assert record.header.rcode == NOERROR, name
            assert rrs(record.rr) == [] and reply.result == "nodata"
            assert_soa_authority(record, "lab.example", 300)
    record, _ = ask(lab, "_udp.lab.example", "SRV")  # no SRV below it: really missing
    assert record.header.rcode == NXDOMAIN


def test_deep_empty_non_terminals(custom: AuthoritativeResolver) -> None:
    for name in ("a.b.c.test.example", "b.c.test.example", "c.test.example"):
        record, _ = ask(custom, name)
        assert record.header.rcode == NOERROR and rrs(record.rr) == [], name
    record, _ = ask(custom, "x.c.test.example")
    assert record.header.rcode == NXDOMAIN


def test_negative_ttl_is_min_of_soa_ttl_and_minimum(custom: AuthoritativeResolver) -> None:
    record, _ = ask(custom, "nope.test.example")  # SOA TTL 3600, minimum 60
    assert_soa_authority(record, "test.example", 60)
    record, _ = ask(custom, "nope.slow.example")  # SOA TTL 120, minimum 86400
    assert_soa_authority(record, "slow.example", 120)
    record, _ = ask(custom, "x.slow.example", "MX")
    assert_soa_authority(record, "slow.example", 120)


def test_refused_outside_our_zones(lab: AuthoritativeResolver) -> None:
    for name in ("example.com", "lab.example.org", "cisco.com", "example", "."):
        record, reply = ask(lab, name)
        assert record.header.rcode == REFUSED, name
        assert record.header.aa == 0 and record.header.ra == 0
        assert rrs(record.rr) == rrs(record.auth) == rrs(record.ar) == []
        assert reply.result == "refused"


def test_refused_for_other_classes_and_zone_transfers(lab: AuthoritativeResolver) -> None:
    record, _ = ask(lab, "version.bind", "TXT", qclass="CH")
    assert record.header.rcode == REFUSED
    record, _ = ask(lab, "prov.lab.example", "A", qclass="CH")
    assert record.header.rcode == REFUSED
    record, _ = ask(lab, "lab.example", "AXFR", tcp=True)
    assert record.header.rcode == REFUSED


# ---------------------------------------------------------------------------------------------
# sinkholes


def test_sinkhole_without_address_is_nxdomain_everywhere(lab: AuthoritativeResolver) -> None:
    for zone in ("activate.cisco.com", "webapps.cisco.com", "activation.webex.com"):
        for name in (zone, "x." + zone, "a.b.c." + zone):
            for qtype in ("A", "AAAA", "SOA", "NS"):
                record, reply = ask(lab, name, qtype)
                assert_authoritative(record)
                assert record.header.rcode == NXDOMAIN, (name, qtype)
                assert_soa_authority(record, zone, 300)
                assert reply.result == "nxdomain"


def test_sinkhole_with_address_answers_a_for_the_name_and_below(custom: AuthoritativeResolver) -> None:
    for zone, address in (("cloud.example", "10.42.0.9"), ("bare.example", "10.42.0.10")):
        for name in (zone, "x." + zone, "a.b.c." + zone):
            record, _ = ask(custom, name)
            assert_authoritative(record)
            assert record.header.rcode == NOERROR
            (a,) = rrs(record.rr)
            assert (str(a.rname), str(a.rdata)) == (name + ".", address)
            record, reply = ask(custom, name, "AAAA")
            assert record.header.rcode == NOERROR and rrs(record.rr) == []
            assert_soa_authority(record, zone, 60)
            assert reply.result == "nodata"


# ---------------------------------------------------------------------------------------------
# ANY, CNAME, wildcards


def test_any_is_answered_with_one_rrset(lab: AuthoritativeResolver) -> None:
    record, reply = ask(lab, SRV_HTTPS, "ANY")
    assert_authoritative(record)
    assert [QTYPE[rr.rtype] for rr in rrs(record.rr)] == ["SRV"]
    assert len(rrs(record.ar, "A")) == 1  # the SRV target's address, as for an SRV query
    record, reply = ask(lab, "lab.example", "ANY")  # apex: SOA and NS exist; only the first RRset
    assert [QTYPE[rr.rtype] for rr in rrs(record.rr)] == ["SOA"]
    assert reply.summary == "NOERROR 1 SOA"
    record, _ = ask(lab, "_tls.lab.example", "ANY")
    assert record.header.rcode == NOERROR and rrs(record.rr) == []
    record, _ = ask(lab, "nope.lab.example", "ANY")
    assert record.header.rcode == NXDOMAIN


def test_cname_chains_inside_our_data(custom: AuthoritativeResolver) -> None:
    record, reply = ask(custom, "www.test.example")
    assert [QTYPE[rr.rtype] for rr in rrs(record.rr)] == ["CNAME", "A"]
    assert str(rrs(record.rr)[1].rname) == "web.test.example."
    assert reply.summary == "NOERROR 1 CNAME, 1 A"
    record, _ = ask(custom, "www.test.example", "CNAME")
    assert [QTYPE[rr.rtype] for rr in rrs(record.rr)] == ["CNAME"]
    record, _ = ask(custom, "out.test.example")  # leaves our zones: the CNAME only
    assert record.header.rcode == NOERROR and [QTYPE[rr.rtype] for rr in rrs(record.rr)] == ["CNAME"]
    record, _ = ask(custom, "dangling.test.example")  # RFC 6604: rcode of the last link
    assert record.header.rcode == NXDOMAIN and len(rrs(record.rr, "CNAME")) == 1
    assert_soa_authority(record, "test.example", 60)


def test_wildcards_follow_the_closest_encloser_rule(custom: AuthoritativeResolver) -> None:
    record, _ = ask(custom, "anything.wild.test.example")
    (a,) = rrs(record.rr)
    assert (str(a.rname), str(a.rdata)) == ("anything.wild.test.example.", "10.0.0.99")
    record, _ = ask(custom, "host.wild.test.example")  # exists: the wildcard does not apply
    assert record.header.rcode == NOERROR and rrs(record.rr) == []
    record, _ = ask(custom, "wild.test.example")  # an empty non-terminal above the wildcard
    assert record.header.rcode == NOERROR and rrs(record.rr) == []


# ---------------------------------------------------------------------------------------------
# sizes: truncation, EDNS


def test_udp_answer_over_512_without_edns_is_truncated(custom: AuthoritativeResolver) -> None:
    raw = query("big.test.example", ident=0x0101)
    reply = answer(custom, raw)
    assert reply.wire is not None and len(reply.wire) <= 512
    record = DNSRecord.parse(reply.wire)
    assert record.header.tc == 1 and record.header.aa == 1 and record.header.id == 0x0101
    assert rrs(record.rr) == rrs(record.auth) == [] and opt_of(record) is None
    assert str(record.q.qname) == "big.test.example."
    assert reply.wire == raw[:2] + b"\x87\x00" + b"\x00\x01" + bytes(6) + raw[12:]  # header + question
    assert "TC" in reply.summary and reply.result == "ok"


def test_truncated_answer_is_complete_over_tcp_and_with_edns(custom: AuthoritativeResolver) -> None:
    record, _ = ask(custom, "big.test.example", tcp=True)
    assert record.header.tc == 0 and len(rrs(record.rr, "A")) == 40
    record, _ = ask(custom, "big.test.example", edns=4096)
    assert record.header.tc == 0 and len(rrs(record.rr, "A")) == 40
    record, _ = ask(custom, "huge.test.example", tcp=True)
    assert record.header.tc == 0 and len(rrs(record.rr, "A")) == 100


def test_edns_buffer_size_is_honoured_within_bounds(custom: AuthoritativeResolver) -> None:
    record, reply = ask(custom, "big.test.example", edns=600)  # 700-byte answer, 600-byte buffer
    assert reply.wire is not None and len(reply.wire) <= 600
    assert record.header.tc == 1 and rrs(record.rr) == [] and opt_of(record) is not None
    record, reply = ask(custom, "big.test.example", edns=100)  # below 512 counts as 512
    assert record.header.tc == 1
    record, reply = ask(custom, "ns.test.example", edns=100)
    assert record.header.tc == 0 and len(rrs(record.rr)) == 1
    record, reply = ask(custom, "huge.test.example", edns=4096)  # 1,660 bytes: over our 1232 cap
    assert reply.wire is not None and len(reply.wire) <= 1232 and record.header.tc == 1


def test_additional_section_is_dropped_before_truncating(custom: AuthoritativeResolver) -> None:
    record, reply = ask(custom, "_sip._udp.test.example", "SRV", tcp=True)
    assert len(rrs(record.rr, "SRV")) == 10 and len(rrs(record.ar, "A")) == 10
    record, reply = ask(custom, "_sip._udp.test.example", "SRV")
    assert record.header.tc == 0  # RFC 2181 §9: a missing additional section needs no TC
    assert len(rrs(record.rr, "SRV")) == 10 and rrs(record.ar) == []
    assert reply.wire is not None and len(reply.wire) <= 512
    assert "additional" in reply.summary


def test_opt_is_echoed_with_our_size_and_the_do_bit(lab: AuthoritativeResolver) -> None:
    record, _ = ask(lab, "prov.lab.example")
    assert opt_of(record) is None  # no EDNS asked, none given
    for do in (False, True):
        record, _ = ask(lab, "prov.lab.example", edns=4096, do=do)
        opt = opt_of(record)
        assert opt is not None
        assert (opt.edns_len, opt.edns_ver, opt.edns_rcode, opt.edns_do) == (1232, 0, 0, int(do))
        assert len(rrs(record.rr)) == 1
    bigger = AuthoritativeResolver(lab_zones(), max_udp=4096)
    record, _ = ask(bigger, "prov.lab.example", edns=4096)
    assert opt_of(record).edns_len == 4096  # type: ignore[union-attr]


def test_edns_options_are_ignored(lab: AuthoritativeResolver) -> None:
    q = DNSRecord.question(SRV_HTTPS, "SRV")
    q.add_ar(EDNS0(udp_len=1232, opts=[]))
    raw = bytearray(q.pack())
    cookie = struct.pack("!HH", 10, 8) + b"\x01" * 8  # a client COOKIE option (RFC 7873)
    raw[-2:] = struct.pack("!H", len(cookie))
    reply = answer(lab, bytes(raw) + cookie)
    record = DNSRecord.parse(reply.wire)
    assert record.header.rcode == NOERROR and len(rrs(record.rr, "SRV")) == 1
    assert opt_of(record) is not None


def test_badvers_for_edns_version_above_zero(lab: AuthoritativeResolver) -> None:
    record, reply = ask(lab, "prov.lab.example", edns=1232, version=1)
    opt = opt_of(record)
    assert opt is not None and opt.edns_rcode == 1 and opt.edns_ver == 0  # 16 = 1 << 4 | 0
    assert record.header.rcode == 0 and rrs(record.rr) == []
    assert (reply.rcode, reply.result) == (16, "badvers")


# ---------------------------------------------------------------------------------------------
# malformed input


def header(ident: int = 0x4242, flags: int = 0x0100, qd: int = 1, an: int = 0, ns: int = 0,
           ar: int = 0) -> bytes:
    return struct.pack("!HHHHHH", ident, flags, qd, an, ns, ar)


def test_formerr_echoes_the_id_when_the_header_can_be_read(lab: AuthoritativeResolver) -> None:
    cases = [
        header() + b"\x04prov\x03lab",  # question cut off
        header() + b"\x04prov\x03lab\x07example\x00\x00",  # type/class cut off
        header(qd=0),  # no question
        header(qd=2) + (b"\x04prov\x03lab\x07example\x00\x00\x01\x00\x01" * 2),  # two questions
        header() + b"\xc0\x0c\x00\x01\x00\x01",  # pointer loop onto itself
        header(ar=2) + b"\x04prov\x03lab\x07example\x00\x00\x01\x00\x01"
        + 2 * b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00",  # two OPT records
    ]
    for raw in cases:
        reply = answer(lab, raw)
        assert reply.wire is not None, raw
        record = DNSRecord.parse(reply.wire)
        assert record.header.id == 0x4242 and record.header.qr == 1
        assert record.header.rcode == FORMERR, raw
        assert reply.result == "formerr"


def test_dropped_and_counted(lab: AuthoritativeResolver) -> None:
    resolver = AuthoritativeResolver(lab_zones())
    for raw in (b"", b"\x00", bytes(11), header(flags=0x8180) + b"\x00\x00\x01\x00\x01"):
        reply = answer(resolver, raw)
        assert reply.wire is None and reply.result == "dropped"
    counters = resolver.counters
    assert counters["queries"] == 4 and counters["dropped"] == 4 and counters["answers"] == {}


def test_other_opcodes_get_notimp(lab: AuthoritativeResolver) -> None:
    for opcode in (1, 2, 4, 5):
        raw = header(flags=(opcode << 11) | 0x0100) + b"\x04prov\x03lab\x07example\x00\x00\x01\x00\x01"
        record = DNSRecord.parse(answer(lab, raw).wire)
        assert (record.header.id, record.header.rcode, record.header.opcode) == (0x4242, NOTIMP, opcode)


def test_unusual_but_valid_queries_take_the_slow_path(lab: AuthoritativeResolver) -> None:
    raw = header() + b"\x04prov\x03lab\x07example\x00\x00\x01\x00\x01"
    # an OPT plus another additional record (here a TXT): the OPT still counts
    q = DNSRecord.question("prov.lab.example")
    q.add_ar(RR("note.example", QTYPE.TXT, rdata=TXT("hi")))
    q.add_ar(EDNS0(udp_len=1400, flags="do"))
    record = DNSRecord.parse(answer(lab, bytes(q.pack())).wire)
    assert record.header.rcode == NOERROR and str(rrs(record.rr)[0].rdata) == "10.42.0.1"
    assert opt_of(record) is not None and opt_of(record).edns_do == 1  # type: ignore[union-attr]
    # AA set in the query (meaningless) and trailing bytes: still answered
    record = DNSRecord.parse(answer(lab, header(flags=0x0500) + raw[12:]).wire)
    assert record.header.rcode == NOERROR and len(rrs(record.rr)) == 1
    reply = answer(lab, raw + b"junk")
    assert reply.wire is not None and DNSRecord.parse(reply.wire).header.id == 0x4242


def test_counters(lab: AuthoritativeResolver) -> None:
    resolver = AuthoritativeResolver(lab_zones())
    for name, qtype in ((SRV_HTTPS, "SRV"), ("nope.lab.example", "A"), ("example.com", "A"),
                        ("prov.lab.example", "AAAA")):
        answer(resolver, query(name, qtype))
    answer(resolver, header(qd=0))
    answer(resolver, b"\x00")
    assert resolver.counters == {"queries": 6, "dropped": 1, "formerr": 1,
                                 "answers": {"NOERROR": 2, "NXDOMAIN": 1, "REFUSED": 1, "FORMERR": 1}}


# ---------------------------------------------------------------------------------------------
# built once


def test_lab_answers_are_prebuilt(monkeypatch: pytest.MonkeyPatch) -> None:
    zones = lab_zones()
    resolver = AuthoritativeResolver(zones)
    assert resolver.prebuilt > 0

    def no_more(*_: object) -> None:
        raise AssertionError("computed at query time")

    monkeypatch.setattr(resolver, "_compute", no_more)
    names = {str(rr.rname).rstrip(".") for zone in zones if not zone.sinkhole for rr in zone.records}
    for name in [*names, "_tls.lab.example", "_tcp.lab.example"]:
        for qtype in ("A", "AAAA", "SRV", "TXT", "ANY"):
            for edns in (None, 1232):
                reply = answer(resolver, query(name.upper(), qtype, edns=edns))
                assert reply.result in ("ok", "nodata"), (name, qtype)


def test_bad_configuration() -> None:
    no_soa = DnsZone("x.example", tuple(RR.fromZone("$ORIGIN x.example.\nwww 60 IN A 10.0.0.1\n")))
    with pytest.raises(DnsConfigError, match="no SOA"):
        AuthoritativeResolver({"x.example": no_soa})
    zone = make_zone("y.example", "")
    with pytest.raises(DnsConfigError, match="twice"):
        AuthoritativeResolver([zone, zone])
    with pytest.raises(DnsConfigError, match="max_udp"):
        AuthoritativeResolver([zone], max_udp=100)


def test_quick_reply_is_the_same_result() -> None:
    facts = (DnsFact("query", "A prov.lab.example", "NOERROR 1 A", "ok", qname="prov.lab.example",
                     qtype="A"),)
    quick, plain = quick_reply(b"\x12\x34", facts), reply_of(b"\x12\x34", facts)
    assert type(quick) is Result and quick == plain == Result((Datagram(b"\x12\x34"),), (), facts, False)
    assert repr(quick) == repr(plain) and type(quick.send[0]) is Datagram


def test_request_names_the_question() -> None:
    resolver = AuthoritativeResolver(lab_zones())
    reply = answer(resolver, query(SRV_HTTPS, "SRV"))
    fact = reply.fact
    assert (fact.request, fact.answer, fact.result) == (f"SRV {SRV_HTTPS}", "NOERROR 1 SRV + 1 A", "ok")
    reply = answer(resolver, header(qd=0))
    assert reply.fact.request == "(no question)" and reply.fact.result == "formerr"


def test_name_helpers() -> None:
    assert name_wire("Lab.Example.") == b"\x03lab\x07example\x00"
    assert name_text(b"\x03lab\x07example\x00") == "lab.example"
    assert name_text(b"\x03a.b\x02\x00\xff\x00") == "a\\.b.\\000\\255"
    assert name_text(b"\x00") == "."


# ---------------------------------------------------------------------------------------------
# properties


def _no_internal_error(reply: Reply, raw: bytes) -> None:
    assert reply.result != "servfail", f"internal error on {raw.hex()}"
    if reply.wire is not None:
        assert reply.wire[:2] == raw[:2]
        assert reply.wire[2] & 0x80  # QR
        assert not reply.wire[3] & 0x80  # never RA


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=600), st.booleans())
def test_arbitrary_bytes_always_get_a_reply(lab: AuthoritativeResolver, raw: bytes, tcp: bool) -> None:
    _no_internal_error(answer(lab, raw, tcp=tcp), raw)


LAB_NAMES = [SRV_HTTPS, SRV_HTTP, "prov.lab.example", "ns.lab.example", "lab.example", "_tls.lab.example",
             "activate.cisco.com", "x.webapps.cisco.com", "example.com"]
label = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1,
                max_size=20)
names = st.one_of(
    st.sampled_from(LAB_NAMES),
    st.builds(lambda labels, zone: ".".join([*labels, zone]), st.lists(label, max_size=4),
              st.sampled_from(["lab.example", "activate.cisco.com", "example.org"])),
    st.sampled_from(LAB_NAMES).map(lambda n: "".join(c.upper() if i % 3 else c for i, c in enumerate(n))),
)
qtypes = st.one_of(st.sampled_from(["A", "AAAA", "SRV", "TXT", "NS", "SOA", "ANY", "MX", "CNAME", "PTR"]),
                   st.integers(1, 65535).filter(lambda t: t not in (41, 251, 252)).map(int))


@settings(max_examples=400, deadline=None)
@given(names, qtypes, st.one_of(st.none(), st.integers(0, 65535)), st.booleans(), st.booleans(),
       st.integers(0, 65535))
def test_random_valid_queries_get_well_formed_replies(lab: AuthoritativeResolver, name: str,
                                                      qtype: str | int, edns: int | None, do: bool, tcp: bool,
                                                      ident: int) -> None:
    code = qtype if isinstance(qtype, int) else getattr(QTYPE, qtype)
    q = DNSRecord(DNSHeader(id=ident), q=DNSQuestion(name, code))
    if edns is not None:
        q.add_ar(EDNS0(udp_len=edns, flags="do" if do else ""))
    raw = bytes(q.pack())
    reply = answer(lab, raw, tcp=tcp)
    _no_internal_error(reply, raw)
    assert reply.wire is not None
    record = DNSRecord.parse(reply.wire)
    assert record.header.id == ident
    assert record.q.qname.label == q.q.qname.label and record.q.qtype == q.q.qtype
    assert record.header.ra == 0
    assert (opt_of(record) is not None) == (edns is not None)
    if not tcp:
        assert len(reply.wire) <= (512 if edns is None else max(512, min(edns, 1232)))
    if record.header.rcode in (NOERROR, NXDOMAIN):
        assert record.header.aa == 1
        if not rrs(record.rr) and not record.header.tc:
            assert [QTYPE[rr.rtype] for rr in rrs(record.auth)] == ["SOA"]
    else:
        assert record.header.rcode == REFUSED and record.header.aa == 0


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([query(SRV_HTTPS, "SRV"), query("prov.lab.example", edns=1232, do=True),
                        query("nope.lab.example", "AAAA")]),
       st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=4),
       st.integers(0, 80))
def test_mutated_queries_never_break_the_resolver(lab: AuthoritativeResolver, raw: bytes,
                                                  edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(raw)
    for at, value in edits:
        if at < len(data):
            data[at] = value
    mutated = bytes(data[: max(len(data) - cut, 0)])
    _no_internal_error(answer(lab, mutated), mutated)
