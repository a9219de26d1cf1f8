"""Recognising another DHCP server's reply in an Ethernet frame (services.preflight.rival_in)."""

from __future__ import annotations

from ipaddress import IPv4Address

from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.protocols.dhcp.message import ACK, DISCOVER, NAK, OFFER, build, reply_to, request_message
from labkit.services.dhcp import ethernet_frame
from labkit.services.preflight import rival_in

CLIENT = bytes.fromhex("00562b00033c")
RIVAL_MAC = bytes.fromhex("020000000099")
OURS = IPv4Address("10.42.0.1")


def frame(kind: int, server: IPv4Address, *, xid: int = 7, dst_port: int = 68,
          op_reply: bool = True) -> bytes:
    request = request_message(DISCOVER, CLIENT, xid, {})
    message = reply_to(request, kind, yiaddr=IPv4Address("10.42.0.150"), options=[(54, server.packed)])
    payload = build(message if op_reply else request)
    everyone = IPv4Address("255.255.255.255")
    return ethernet_frame(b"\xff" * 6, RIVAL_MAC, server, everyone, 67, dst_port, payload)


def test_another_servers_offer_and_ack_are_rivals() -> None:
    rival = rival_in(frame(OFFER, IPv4Address("10.42.0.250")), kinds=(OFFER, ACK), ours=OURS)
    assert rival is not None
    assert (rival.server_id, rival.mac, rival.offered, rival.kind, rival.client) == (
        "10.42.0.250", "02:00:00:00:00:99", "10.42.0.150", "OFFER", "00:56:2b:00:03:3c")
    ack = rival_in(frame(ACK, IPv4Address("10.42.0.250")), kinds=(OFFER, ACK), ours=OURS)
    assert ack is not None and ack.kind == "ACK"


def test_our_own_replies_requests_other_ports_and_other_kinds_are_not() -> None:
    assert rival_in(frame(OFFER, OURS), kinds=(OFFER, ACK), ours=OURS) is None
    assert rival_in(frame(OFFER, IPv4Address("10.42.0.250"), dst_port=67), ours=OURS) is None
    assert rival_in(frame(OFFER, IPv4Address("10.42.0.250"), op_reply=False), ours=OURS) is None
    assert rival_in(frame(NAK, IPv4Address("10.42.0.250")), kinds=(OFFER, ACK), ours=OURS) is None
    # the preflight wants answers to its own probe only
    assert rival_in(frame(OFFER, IPv4Address("10.42.0.250"), xid=8), xid=7) is None
    assert rival_in(frame(NAK, IPv4Address("10.42.0.250"), xid=7), xid=7) is not None


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_arbitrary_frames_never_raise(data: bytes) -> None:
    prefix = frame(OFFER, IPv4Address("10.42.0.250"))[:42]  # Ethernet + IP + UDP of a real reply
    for blob in (data, prefix + data):
        assert rival_in(blob) is None or rival_in(blob).server_id
