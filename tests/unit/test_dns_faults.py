"""DNS fault actions (labkit.protocols.dns.faults): our answer rewritten as a rule asks, pure."""

from __future__ import annotations

from dnslib import QTYPE, RCODE, DNSRecord

from labkit.protocols.dns import AuthoritativeResolver
from labkit.protocols.dns.faults import DnsFaultAction, apply_dns_fault, negative_probe
from tests.unit.test_dns_resolver import lab_zones


def test_dns_faults_rewrite_our_answer() -> None:
    resolver = AuthoritativeResolver(lab_zones())
    query = DNSRecord.question("_ciscoprov-https._tls.lab.example", "SRV").pack()
    wire = resolver.answer(query).send[0].data

    negative = resolver.answer(negative_probe(query) or b"").send[0].data

    def changed(**fault: object) -> DNSRecord:
        out = apply_dns_fault(query, wire, DnsFaultAction(**fault), negative)  # type: ignore[arg-type]
        assert out is not None
        return DNSRecord.parse(out)

    assert changed(rcode="SERVFAIL").header.rcode == RCODE.SERVFAIL
    nx = changed(rcode="NXDOMAIN")
    assert nx.header.rcode == RCODE.NXDOMAIN and not nx.rr
    assert [QTYPE[r.rtype] for r in nx.auth] == ["SOA"]  # as a genuine NXDOMAIN carries
    srv = changed(srv_port=8443, srv_target="other.lab.example")
    assert [(r.rdata.port, str(r.rdata.target)) for r in srv.rr if r.rtype == QTYPE.SRV] == [
        (8443, "other.lab.example.")]
    assert all(r.ttl == 0 for r in changed(ttl0=True).rr)
    truncated = changed(truncate=True)
    assert truncated.header.tc == 1 and not truncated.rr
    assert apply_dns_fault(query, wire, DnsFaultAction(drop=True)) is None


def test_negative_probe_asks_below_the_name() -> None:
    query = DNSRecord.question("prov.lab.example", "A").pack()
    probe = negative_probe(query)
    assert probe is not None
    assert str(DNSRecord.parse(probe).q.qname) == "labkit-no-such-name.prov.lab.example."
    assert negative_probe(b"\x00") is None
