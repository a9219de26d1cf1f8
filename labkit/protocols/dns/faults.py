"""DNS answers changed on purpose (fault rules), pure: the query, our answer, the fault → new bytes."""

from __future__ import annotations

from dnslib import QTYPE, RCODE, DNSLabel, DNSRecord

from labkit.faults import DnsFault


def apply_dns_fault(query: bytes, wire: bytes | None, fault: DnsFault) -> bytes | None:
    """The answer to send instead of `wire`; None to send nothing."""
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
        if fault.rcode != "NXDOMAIN":
            reply.auth = []
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
