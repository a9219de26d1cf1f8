"""The plan's DNS part (labkit.plan.zones.plan_dns): the rendered zones as the DNS core's input."""

from __future__ import annotations

import dataclasses

import pytest
from dnslib import QTYPE

from labkit.inventory.load import load
from labkit.plan.build import build_plan
from labkit.plan.zones import DnsPlan, plan_dns
from labkit.protocols.dns import MAX_UDP_DEFAULT, DnsZone
from tests.unit.test_dns_resolver import lab_zones


def _records(zone: DnsZone) -> list[str]:
    # the SOA serial is a checksum of the zone's content: compare everything else
    out = []
    for rr in zone.records:
        if rr.rtype == QTYPE.SOA:
            times = list(rr.rdata.times)
            out.append(f"{rr.rname} {rr.ttl} SOA {rr.rdata.mname} {rr.rdata.rname} {times[1:]}")
        else:
            out.append(f"{rr.rname} {rr.ttl} {QTYPE[rr.rtype]} {rr.rdata}")
    return sorted(out)


def test_default_lab_plans_the_zones_the_core_tests_use() -> None:
    plan = build_plan(load(None))
    assert isinstance(plan.dns, DnsPlan) and plan.dns.max_udp == MAX_UDP_DEFAULT
    planned = {zone.origin: zone for zone in plan.dns.zones}
    written = {zone.origin: zone for zone in lab_zones()}
    assert planned.keys() == written.keys() == plan.zones.keys()
    for origin, zone in planned.items():
        hand = written[origin]
        assert (zone.sinkhole, zone.sinkhole_address) == (hand.sinkhole, hand.sinkhole_address)
        assert _records(zone) == _records(written[origin]), origin
        assert zone.records == plan.zones[origin].records  # the very records `labkit render` writes


def test_dns_plan_is_frozen_and_plain() -> None:
    dns = plan_dns(build_plan(load(None)).zones)
    assert all(type(zone) is DnsZone for zone in dns.zones)
    with pytest.raises(dataclasses.FrozenInstanceError):
        dns.max_udp = 512  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        dns.zones[0].origin = "x"  # type: ignore[misc]
