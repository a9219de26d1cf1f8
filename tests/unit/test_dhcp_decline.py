"""DHCPDECLINE (issue 10 item 2): only the client that holds an address the server manages may
put it in quarantine, never the server's own; the quarantine table is bounded, oldest first."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network
from types import MappingProxyType

import pytest

from labkit.protocols.dhcp.leases import MAX_QUARANTINE, LeaseTable
from labkit.protocols.dhcp.message import ACK, DECLINE, DISCOVER, REQUEST, build, parse, request_message
from labkit.protocols.dhcp.server import DhcpServerCore
from labkit.protocols.result import Result
from tests.unit.dhcp_configs import POOL_PHONE, POOL_SERVER, pool_lab

NOW = 1_800_000_000.0
PRL = {55: bytes([1, 3, 6, 15, 66, 150])}


def mac_bytes(n: int) -> bytes:
    return bytes([2, 0, 0, 0, n >> 8, n & 0xFF])


def send(core: DhcpServerCore, kind: int, mac: bytes, options: dict[int, bytes], now: float = NOW,
         **fields) -> Result:
    message = request_message(kind, mac, 0x99, {**PRL, **options}, **fields)
    return core.handle(build(message), ("0.0.0.0", 68), now)


def lease(core: DhcpServerCore, mac: bytes, now: float = NOW) -> IPv4Address:
    offer = send(core, DISCOVER, mac, {}, now)
    ip = parse(offer.send[0].data).yiaddr
    ack = send(core, REQUEST, mac, {50: ip.packed, 54: core.config.server_id.packed}, now)
    assert parse(ack.send[0].data).message_type == ACK
    return ip


def decline(core: DhcpServerCore, mac: bytes, ip: IPv4Address, now: float = NOW) -> Result:
    result = send(core, DECLINE, mac, {50: ip.packed, 54: core.config.server_id.packed}, now)
    assert result.send == ()  # a DECLINE is never answered
    return result


@pytest.fixture
def core() -> DhcpServerCore:
    return DhcpServerCore(pool_lab(), LeaseTable())


def test_a_client_cannot_decline_another_clients_address(core: DhcpServerCore) -> None:
    mine, theirs = lease(core, mac_bytes(1)), lease(core, mac_bytes(2))
    core.table.take_pending()
    result = decline(core, mac_bytes(1), theirs)
    assert result.facts[0].result == "refused" and "does not hold it" in result.facts[0].answer
    assert theirs not in core.table.declined and core.table.by_mac["02:00:00:00:00:02"].ip == theirs
    assert core.table.take_pending() == []
    # its own address it may decline
    assert decline(core, mac_bytes(1), mine).facts[0].result == "declined"
    assert mine in core.table.declined


@pytest.mark.parametrize("address", ["192.0.2.1", "8.8.8.8", "192.0.2.50", "192.0.2.255", "192.0.2.0"])
def test_addresses_the_server_does_not_hand_out_are_refused(core: DhcpServerCore, address: str) -> None:
    lease(core, mac_bytes(1))
    fact = decline(core, mac_bytes(1), IPv4Address(address)).facts[0]
    assert fact.result == "refused" and "not an address this server hands out" in fact.answer
    assert core.table.declined == {}


def test_own_address_is_refused_even_when_a_client_claims_it() -> None:
    # a phone whose reservation is the server's own address (a broken inventory) still cannot
    # quarantine it
    config = pool_lab()
    entry = config.phones[POOL_PHONE]
    bad = replace(config, phones=MappingProxyType({POOL_PHONE: replace(entry, ip=POOL_SERVER)}))
    core = DhcpServerCore(bad, LeaseTable())
    result = decline(core, bytes.fromhex(POOL_PHONE.replace(":", "")), POOL_SERVER)
    assert result.facts[0].result == "refused" and core.table.declined == {}


def test_a_phone_may_decline_its_reservation(core: DhcpServerCore) -> None:
    fixed = core.config.phones[POOL_PHONE].ip
    assert fixed is not None
    other = decline(core, mac_bytes(3), fixed)
    assert other.facts[0].result == "refused"
    mine = decline(core, bytes.fromhex(POOL_PHONE.replace(":", "")), fixed)
    assert mine.facts[0].result == "declined" and fixed in core.table.declined


def test_an_expired_lease_is_no_longer_held(core: DhcpServerCore) -> None:
    ip = lease(core, mac_bytes(1))
    later = NOW + core.config.lease_time + 1
    assert decline(core, mac_bytes(1), ip, later).facts[0].result == "refused"


def test_the_quarantine_is_bounded_oldest_first() -> None:
    config = pool_lab(network=IPv4Network("10.0.0.0/16"), server_id=IPv4Address("10.0.0.1"),
                      own=frozenset({IPv4Address("10.0.0.1")}), reserved=frozenset({IPv4Address("10.0.0.1")}),
                      pool=(IPv4Address("10.0.1.0"), IPv4Address("10.0.3.255")), phones={})
    core = DhcpServerCore(config, LeaseTable())
    declined = []
    for n in range(MAX_QUARANTINE + 5):
        ip = lease(core, mac_bytes(n), NOW + n)
        assert decline(core, mac_bytes(n), ip, NOW + n).facts[0].result == "declined"
        declined.append(ip)
    assert len(core.table.declined) == MAX_QUARANTINE
    assert list(core.table.declined) == declined[5:]  # the five oldest quarantines ended
    ended = [c.lease.ip for c in core.table.take_pending() if c.lease.state == "declined" and c.delete]
    assert ended == declined[:5]
