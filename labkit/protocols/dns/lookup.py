"""Resolution: which records answer a question, by the rules of an authoritative-only server.

Runs when the resolver is built (for every name and common type in the zones) and for names
that were not prebuilt; the bytes of the reply are assembled elsewhere (answers.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from labkit.protocols.dns.index import Rec, ZoneIndex
from labkit.protocols.dns.wire import (
    CLASS_IN,
    MAX_CNAME_CHAIN,
    NOERROR,
    NXDOMAIN,
    REFUSED,
    T_A,
    T_AAAA,
    T_ANY,
    T_AXFR,
    T_CNAME,
    T_IXFR,
    T_MX,
    T_NS,
    T_SRV,
)

ADDITIONAL_FOR = (T_NS, T_MX, T_SRV)  # types whose target names get A/AAAA in the additional section

Section = list[tuple[bytes, Rec]]  # (owner name in wire form, record)


@dataclass(slots=True)
class Answer:
    rcode: int
    authoritative: bool
    answer: Section
    authority: Section
    additional: Section
    result: str


def resolve(index: ZoneIndex, qname: bytes, qtype: int, qclass: int) -> Answer:
    """The answer to one question (qname lowercase, in wire form)."""
    zone = index.zone_for(qname) if qclass == CLASS_IN else None
    if zone is None or qtype in (T_AXFR, T_IXFR):  # not ours, or a zone transfer: we refuse
        return Answer(REFUSED, False, [], [], [], "refused")
    answer: Section = []
    name = qname
    for _ in range(MAX_CNAME_CHAIN + 1):
        node = None if zone.nxdomain_everywhere else index.node(zone, name)
        if node is None:
            return Answer(NXDOMAIN, True, answer, [(zone.apex, zone.soa)], [], "nxdomain")
        if qtype == T_ANY and node:
            rrset = next(iter(node.values()))  # RFC 8482: one RRset, the zone file's first
        else:
            rrset = node.get(qtype, [])
        if rrset:
            answer.extend((name, rec) for rec in rrset)
            return Answer(NOERROR, True, answer, [], additional(index, answer), "ok")
        cname = node.get(T_CNAME)
        if not cname or qtype == T_CNAME:
            return Answer(NOERROR, True, answer, [] if answer else [(zone.apex, zone.soa)], [],
                          "ok" if answer else "nodata")
        answer.append((name, cname[0]))
        name = cname[0].target or b"\x00"  # always set for a CNAME; the root is never ours
        next_zone = index.zone_for(name)
        if next_zone is None:  # the chain leaves our data: the client follows it elsewhere
            return Answer(NOERROR, True, answer, [], [], "ok")
        zone = next_zone
    return Answer(NOERROR, True, answer, [], [], "ok")  # a CNAME loop: give what we have


def additional(index: ZoneIndex, answer: Section) -> Section:
    """A/AAAA records of the targets of SRV, MX and NS records in `answer`, when we hold them."""
    have = {(owner, rec.rtype) for owner, rec in answer}
    extra: Section = []
    for _, rec in answer:
        if rec.rtype not in ADDITIONAL_FOR or rec.target is None:
            continue
        zone = index.zone_for(rec.target)
        if zone is None or zone.nxdomain_everywhere:
            continue
        node = index.node(zone, rec.target)
        if not node:
            continue
        for rtype in (T_A, T_AAAA):
            if (rec.target, rtype) not in have:
                have.add((rec.target, rtype))
                extra.extend((rec.target, r) for r in node.get(rtype, []))
    return extra
