"""DHCP fault actions rewrite the core's datagram (pure: DhcpFaultAction in, datagram out)."""

from __future__ import annotations

from ipaddress import IPv4Address
from types import MappingProxyType

import pytest

from labkit.protocols.dhcp.faults import DhcpFaultAction, apply_dhcp_fault
from labkit.protocols.dhcp.leases import LeaseTable
from labkit.protocols.dhcp.message import DISCOVER, NAK, DhcpDecodeError, build, parse, request_message
from labkit.protocols.dhcp.server import DhcpServerCore
from tests.unit.dhcp_configs import default_lab


def test_dhcp_faults_rewrite_our_reply() -> None:
    core = DhcpServerCore(default_lab(), LeaseTable())
    mac = bytes.fromhex("00562b00033c")
    discover = request_message(DISCOVER, mac, 9, {60: b"CP-8851-3PCC", 55: bytes([1, 66, 150, 160])})
    sent = core.handle(build(discover), ("0.0.0.0", 68), 0.0).send
    assert len(sent) == 1
    offer = sent[0]
    server = IPv4Address("10.42.0.1").packed
    assert apply_dhcp_fault(offer, DhcpFaultAction(drop="offer"), server, 68) is None
    kept = apply_dhcp_fault(offer, DhcpFaultAction(drop="ack"), server, 68)
    assert kept is not None and kept.data == offer.data  # only ACKs are dropped
    nak = apply_dhcp_fault(offer, DhcpFaultAction(nak=True), server, 68)
    assert nak is not None and parse(nak.data).message_type == NAK and nak.to == ("255.255.255.255", 68)
    assert not nak.l2_unicast
    rewrite = DhcpFaultAction(omit=(150,), replace=MappingProxyType({66: b"10.9.9.9"}))
    edited = apply_dhcp_fault(offer, rewrite, server, 68)
    assert edited is not None and edited.to == offer.to
    options = parse(edited.data).options
    assert 150 not in options and options[66] == b"10.9.9.9" and 160 in options
    broken = apply_dhcp_fault(offer, DhcpFaultAction(malformed=66), server, 68)
    assert broken is not None
    with pytest.raises(DhcpDecodeError):
        parse(broken.data)
