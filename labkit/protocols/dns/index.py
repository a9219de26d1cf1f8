"""The zone index: every name of every zone in wire form, with its records packed once.

Records are kept as the bytes that follow the owner name in a reply (type, class, TTL,
RDLENGTH, RDATA), so answers are assembled by joining bytes. Names between an owner and its
zone's apex exist too (empty non-terminals, RFC 8020).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address

from dnslib import RR

from labkit.protocols.dns.wire import (
    CLASS_IN,
    T_A,
    T_CNAME,
    T_MX,
    T_NS,
    T_OPT,
    T_SOA,
    T_SRV,
    DnsConfigError,
    FlatBuffer,
    name_wire,
    parent,
)
from labkit.protocols.dns.zone import DnsZone


@dataclass(frozen=True, slots=True)
class Rec:
    rtype: int
    tail: bytes  # type, class, TTL, RDLENGTH and RDATA: everything after the owner name
    target: bytes | None  # the name additional-section processing follows (SRV/MX/NS), or CNAME's


def pack_record(rtype: int, ttl: int, rdata: bytes) -> bytes:
    return struct.pack("!HHIH", rtype, CLASS_IN, ttl, len(rdata)) + rdata


def rec_from_rr(rr: RR, ttl: int | None = None) -> Rec:
    buffer = FlatBuffer()
    rr.rdata.pack(buffer)
    rdata = bytes(buffer.data)
    target = None
    if rr.rtype == T_SRV:
        target = name_wire(rr.rdata.target)
    elif rr.rtype in (T_MX, T_NS, T_CNAME):
        target = name_wire(rr.rdata.label)
    return Rec(rr.rtype, pack_record(rr.rtype, rr.ttl if ttl is None else ttl, rdata), target)


@dataclass(slots=True)
class ZoneData:
    apex: bytes
    name: str
    soa: Rec  # with the negative-answer TTL, for the authority section of negative answers
    nxdomain_everywhere: bool  # a sinkhole without an address
    nodes: dict[bytes, dict[int, list[Rec]]]  # every existing name, empty non-terminals as {}


def zone_data(zone: DnsZone) -> ZoneData:
    apex = name_wire(zone.origin)
    records = [rr for rr in zone.records if rr.rclass == CLASS_IN and rr.rtype != T_OPT]
    soas = [rr for rr in records if rr.rtype == T_SOA and name_wire(rr.rname) == apex]
    if not soas:
        raise DnsConfigError(f"zone {zone.origin} has no SOA record at its apex")
    soa = soas[0]
    negative_ttl = min(soa.ttl, soa.rdata.times[4])  # RFC 2308 §3: min(SOA TTL, SOA MINIMUM)
    nodes: dict[bytes, dict[int, list[Rec]]] = {apex: {}}
    for rr in records:
        owner = name_wire(rr.rname)
        if not is_at_or_below(owner, apex):
            raise DnsConfigError(f"zone {zone.origin}: record {rr.rname} is outside the zone")
        node = nodes.setdefault(owner, {})
        node.setdefault(rr.rtype, []).append(rec_from_rr(rr))
        # the names between the owner and the apex exist too: empty non-terminals answer NODATA,
        # never NXDOMAIN, which would deny everything below them (RFC 8020)
        name = owner
        while name != apex:
            name = parent(name)
            nodes.setdefault(name, {})
    if zone.sinkhole and zone.sinkhole_address is not None:
        ensure_sinkhole_address(nodes, apex, zone.sinkhole_address, soa.ttl)
    return ZoneData(apex, zone.origin, rec_from_rr(soa, negative_ttl),
                     zone.sinkhole and zone.sinkhole_address is None, nodes)


def is_at_or_below(name: bytes, apex: bytes) -> bool:
    while True:
        if name == apex:
            return True
        if name == b"\x00":
            return False
        name = parent(name)


def ensure_sinkhole_address(nodes: dict[bytes, dict[int, list[Rec]]], apex: bytes,
                             address: IPv4Address, ttl: int) -> None:
    # the zone template writes `@ A` and `* A`; a DnsZone built by hand may not, and the
    # sinkhole's promise (the name and everything below it answer the address) must hold
    record = Rec(T_A, pack_record(T_A, ttl, address.packed), None)
    for owner in (apex, b"\x01*" + apex):
        node = nodes.setdefault(owner, {})
        node.setdefault(T_A, [record])



Node = dict[int, list[Rec]]


class ZoneIndex:
    """The zones by apex, and the two look-ups resolution needs."""

    def __init__(self, zones: Iterable[DnsZone]) -> None:
        self.zones: dict[bytes, ZoneData] = {}
        for zone in zones:
            data = zone_data(zone)
            if data.apex in self.zones:
                raise DnsConfigError(f"zone {zone.origin} is given twice")
            self.zones[data.apex] = data

    def zone_for(self, name: bytes) -> ZoneData | None:
        """The zone holding `name` (the longest apex at or above it); None when none does."""
        while True:
            zone = self.zones.get(name)
            if zone is not None:
                return zone
            if name == b"\x00":
                return None
            name = parent(name)

    def node(self, zone: ZoneData, name: bytes) -> Node | None:
        """The records at `name` in `zone`; a wildcard's when the name does not exist; None: NXDOMAIN."""
        node = zone.nodes.get(name)
        if node is not None:
            return node
        # RFC 4592: a wildcard at the closest encloser stands in for a name that does not exist
        encloser = parent(name)
        while encloser not in zone.nodes:
            encloser = parent(encloser)
        return zone.nodes.get(b"\x01*" + encloser)
