"""The core's quick reply (a relayed request whose cached option block fits and needs no general
build: labkit.native._dhcp's reply straight from DhcpServerCore._reply) answers exactly what the
pure core answers through message.reply_wire: the same Results, datagrams byte for byte, events
and leases, for relayed DORAs with any request list, vendor class, maximum size, flags, option 82
and ciaddr, and for the long lists whose block does not take the quick path."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit import native
from labkit.protocols.dhcp.leases import LeaseTable
from labkit.protocols.dhcp.message import DISCOVER, REQUEST, build, dotted, request_message
from labkit.protocols.dhcp.server import DhcpServerCore
from tests.unit.dhcp_configs import POOL_PHONE, POOL_SERVER, pool_lab

MODULE = native.load("_dhcp")
RELAY = IPv4Address("192.0.2.254")


@st.composite
def dora(draw: st.DrawFn) -> tuple[bytes, dict[int, bytes], int, IPv4Address]:
    mac = draw(st.sampled_from([bytes.fromhex(POOL_PHONE.replace(":", "")), bytes([2, 0, 0, 0, 0, 7])]))
    options: dict[int, bytes] = {55: bytes(draw(st.lists(st.integers(1, 254), max_size=60)))}
    vendor = draw(st.sampled_from([None, b"Cisco CP-8851-3PCC", b"other", b"CP-7841-3PCC\x00"]))
    if vendor is not None:
        options[60] = vendor
    if draw(st.booleans()):
        options[57] = draw(st.integers(0, 1500)).to_bytes(2, "big")
    if draw(st.booleans()):
        options[82] = draw(st.binary(min_size=1, max_size=20))
    ciaddr = draw(st.sampled_from([IPv4Address(0), IPv4Address("192.0.2.100")]))
    return mac, options, draw(st.integers(0, 65535)), ciaddr


@pytest.mark.skipif(MODULE is None, reason="labkit.native._dhcp not built here")
@settings(max_examples=300, deadline=None)
@given(dora())
def test_the_quick_reply_is_the_pure_reply(case: tuple[bytes, dict[int, bytes], int, IPv4Address]) -> None:
    mac, options, flags, ciaddr = case
    results = []
    for compiled in (False, True):
        core = DhcpServerCore(pool_lab(), LeaseTable())
        if compiled:
            core.use_native(MODULE)
        discover = build(request_message(DISCOVER, mac, 5, options, giaddr=RELAY, flags=flags, ciaddr=ciaddr))
        offered = core.handle(discover, (str(RELAY), 67), 1000.0)
        asked = {**options, 54: POOL_SERVER.packed}
        if offered.send:
            asked[50] = offered.send[0].data[16:20]  # the OFFER's yiaddr
        request = build(request_message(REQUEST, mac, 6, asked, giaddr=RELAY, flags=flags, ciaddr=ciaddr))
        acked = core.handle(request, (str(RELAY), 67), 1000.0)
        results.append((offered, acked, core.table.take_pending()))
    assert results[0] == results[1]
    wires = [[d.data for r in found[:2] for d in r.send] for found in results]  # type: ignore[union-attr]
    assert wires[0] == wires[1]


def test_a_relayed_dora_takes_the_quick_path_when_compiled() -> None:
    """The case the property compares is the one that matters: a plain relayed DORA is quick."""
    if MODULE is None:
        pytest.skip("labkit.native._dhcp not built here")
    core = DhcpServerCore(pool_lab(), LeaseTable())
    core.use_native(MODULE)
    calls: list[object] = []
    core._pack = lambda *args: calls.append(args) or MODULE.reply(*args)  # type: ignore[union-attr]
    data = build(request_message(DISCOVER, bytes([2, 0, 0, 0, 0, 9]), 5, {55: b"\x01\x03\x06"}, giaddr=RELAY))
    result = core.handle(data, (str(RELAY), 67), 1000.0)
    assert len(calls) == 1 and result.send[0].to == (str(RELAY), 67)


@given(st.integers(0, 2**32 - 1))
def test_an_address_text_is_str_of_the_address(number: int) -> None:
    assert dotted(number) == str(IPv4Address(number))
    assert dotted(0) == "0.0.0.0" and dotted(2**32 - 1) == "255.255.255.255"
