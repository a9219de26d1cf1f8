"""DNS answers changed on purpose (fault rules), pure: the query, our answer, the fault → new bytes."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from dnslib import QTYPE, RCODE, DNSLabel, DNSRecord


@dataclass(frozen=True, slots=True)
class DnsFaultAction:
    """What a DNS fault rule does to an answer (plain values; the plan converts the inventory's rule)."""

    rcode: str | None = None  # "SERVFAIL", "NXDOMAIN" or "REFUSED"
    drop: bool = False  # no answer at all
    srv_port: int | None = None
    srv_target: str | None = None
    ttl0: bool = False
    truncate: bool = False


def negative_probe(query: bytes) -> bytes | None:
    """A query for a name that cannot exist below the asked one: its answer's authority section
    is the SOA a forced NXDOMAIN carries, as a real one does (RFC 2308)."""
    try:
        record = DNSRecord.parse(query)
        name = f"labkit-no-such-name.{record.q.qname}"
    except Exception:
        return None
    return DNSRecord.question(name, "A").pack()


def apply_dns_fault(query: bytes, wire: bytes | None, fault: DnsFaultAction,
                    negative: bytes | None = None) -> bytes | None:
    """The answer to send instead of `wire`; None to send nothing. `negative`: our answer to
    `negative_probe(query)`, whose SOA goes into a forced NXDOMAIN."""
    if fault.drop or wire is None:
        return None
    try:
        reply = DNSRecord.parse(wire)
    except Exception:  # not ours to repair: send what the resolver said
        return wire
    if fault.rcode is not None:
        reply.header.rcode = getattr(RCODE, fault.rcode)
        reply.rr = []
        reply.ar = [rr for rr in reply.ar if rr.rtype == QTYPE.OPT]
        reply.auth = []
        if fault.rcode == "NXDOMAIN" and negative is not None:
            with contextlib.suppress(Exception):  # no SOA to lend: the NXDOMAIN goes without one
                reply.auth = [rr for rr in DNSRecord.parse(negative).auth if rr.rtype == QTYPE.SOA]
    for rr in reply.rr:
        if rr.rtype == QTYPE.SRV:
            if fault.srv_port is not None:
                rr.rdata.port = fault.srv_port
            if fault.srv_target is not None:
                rr.rdata.target = DNSLabel(fault.srv_target)
    if fault.ttl0:
        for rr in (*reply.rr, *reply.auth, *reply.ar):
            if rr.rtype != QTYPE.OPT:
                rr.ttl = 0
    if fault.truncate:
        reply.header.tc = 1
        reply.rr, reply.auth = [], []
        reply.ar = [rr for rr in reply.ar if rr.rtype == QTYPE.OPT]
    return reply.pack()
