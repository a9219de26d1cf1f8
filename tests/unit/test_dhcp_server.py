"""The DHCP message codec and server core, pure: bytes in, decisions out; scapy as independent decoder.

The core is configured directly (tests/unit/dhcp_configs.py): no inventory, no plan, no SQLite."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.errors import CodecError
from labkit.protocols.dhcp.leases import LeaseTable
from labkit.protocols.dhcp.message import (
    ACK,
    BOOTREPLY,
    BROADCAST_FLAG,
    DECLINE,
    DISCOVER,
    INFORM,
    NAK,
    OFFER,
    RELEASE,
    REQUEST,
    DhcpDecodeError,
    Message,
    build,
    parse,
    request_message,
)
from labkit.protocols.dhcp.options import decode_value
from labkit.protocols.dhcp.server import DhcpServerCore
from labkit.protocols.result import Datagram, Fact, Result
from tests.conftest import require_module
from tests.unit.dhcp_configs import PHONE, SERVER, default_lab
from tests.unit.dhcp_configs import pool_lab as pool_config

MPP_PRL = bytes([1, 3, 6, 15, 35, 66, 150, 2, 7, 42, 43, 58, 59, 159, 160])
PHONE_MAC = bytes.fromhex("00562b00033c")
NOW = 1_800_000_000.0


@dataclass(frozen=True)
class Said:
    """One result of the core, read the way these tests ask: its one fact and its one datagram."""

    result: Result

    @property
    def fact(self) -> Fact:
        assert len(self.result.facts) == 1
        return self.result.facts[0]

    @property
    def reply(self) -> Datagram:
        assert len(self.result.send) == 1
        return self.result.send[0]

    @property
    def detail(self):
        return self.fact.detail

    @property
    def answer(self) -> str:
        return self.fact.answer

    @property
    def outcome(self) -> str:
        return self.fact.result


def mpp_options(extra: dict[int, bytes] | None = None) -> dict[int, bytes]:
    base = {61: b"\x01" + PHONE_MAC, 12: b"SEP00562B00033C", 60: b"CP-8851-3PCC", 55: MPP_PRL}
    return {**base, **(extra or {})}


@pytest.fixture
def core() -> DhcpServerCore:
    return DhcpServerCore(default_lab(), LeaseTable())


def exchange(core: DhcpServerCore, kind: int, options: dict[int, bytes], *, mac: bytes = PHONE_MAC,
             now: float = NOW, **fields) -> tuple[Message | None, Said]:
    message = request_message(kind, mac, 0x1234, options, **fields)
    said = Said(core.handle(build(message), ("0.0.0.0", 68), now))
    return (parse(said.reply.data) if said.result.send else None), said


def test_discover_offer_request_ack_for_an_inventory_phone(core: DhcpServerCore) -> None:
    offer, outcome = exchange(core, DISCOVER, mpp_options(), flags=BROADCAST_FLAG)
    assert offer is not None and offer.op == BOOTREPLY and offer.message_type == OFFER
    assert offer.yiaddr == IPv4Address("10.42.0.60")
    assert outcome.reply.to == ("255.255.255.255", 68)
    codes = list(offer.options)
    # type, server id first, then what the phone asked for in its order, then forced/always-sent
    assert codes[:2] == [53, 54]
    asked = [c for c in MPP_PRL if c in offer.options]
    assert [c for c in codes if c in asked] == asked
    assert decode_value(150, offer.options[150]) == (SERVER,)
    assert decode_value(160, offer.options[160]) == "http://prov.lab.example"
    assert decode_value(15, offer.options[15]) == "lab.example"
    assert decode_value(51, offer.options[51]) == 3600
    assert core.table.take_pending() == []  # an offer is not a binding
    ack, outcome = exchange(core, REQUEST, mpp_options({50: offer.yiaddr.packed, 54: SERVER.packed}))
    assert ack is not None and ack.message_type == ACK and ack.yiaddr == offer.yiaddr
    assert outcome.detail["state"] == "selecting"
    pending = core.table.take_pending()
    assert [(c.lease.mac, c.lease.ip, c.lease.state) for c in pending] == [
        (PHONE, IPv4Address("10.42.0.60"), "bound")]
    # not broadcast, no giaddr, no ciaddr: unicast to the new address, by L2 to chaddr
    assert outcome.reply.to == ("10.42.0.60", 68) and outcome.reply.l2_unicast


def test_request_states_renew_rebind_init_reboot_and_nak(core: DhcpServerCore) -> None:
    exchange(core, REQUEST, mpp_options({50: IPv4Address("10.42.0.60").packed, 54: SERVER.packed}))
    ip = IPv4Address("10.42.0.60")
    ack, outcome = exchange(core, REQUEST, mpp_options(), ciaddr=ip, now=NOW + 1800)
    assert ack.message_type == ACK and outcome.detail["state"] == "renewing"
    assert outcome.reply.to == ("10.42.0.60", 68) and not outcome.reply.l2_unicast
    assert ack.ciaddr == ip
    ack, outcome = exchange(core, REQUEST, mpp_options(), ciaddr=ip, flags=BROADCAST_FLAG, now=NOW + 3200)
    assert ack.message_type == ACK and outcome.detail["state"] == "rebinding"
    ack, outcome = exchange(core, REQUEST, mpp_options({50: ip.packed}))
    assert ack.message_type == ACK and outcome.detail["state"] == "init-reboot"
    nak, outcome = exchange(core, REQUEST, mpp_options({50: IPv4Address("10.42.0.61").packed}))
    assert nak.message_type == NAK and outcome.outcome == "nak"
    assert nak.yiaddr == IPv4Address(0) and outcome.reply.to == ("255.255.255.255", 68)
    assert set(nak.options) == {53, 54}
    wrong_net, _ = exchange(core, REQUEST, mpp_options({50: IPv4Address("192.168.9.9").packed}))
    assert wrong_net.message_type == NAK


def test_request_for_another_server_is_ignored(core: DhcpServerCore) -> None:
    exchange(core, DISCOVER, mpp_options())
    reply, outcome = exchange(core, REQUEST, mpp_options({50: IPv4Address("10.42.0.60").packed,
                                                           54: IPv4Address("10.42.0.254").packed}))
    assert reply is None and outcome.outcome == "ignored"
    assert PHONE not in core.table.offers


def test_unknown_mac_gets_no_answer_by_default(core: DhcpServerCore) -> None:
    reply, outcome = exchange(core, DISCOVER, mpp_options(), mac=bytes.fromhex("020000000001"))
    assert reply is None and outcome.outcome == "unknown-client"


def pool_lab() -> DhcpServerCore:
    return DhcpServerCore(pool_config(), LeaseTable())


def test_pool_same_mac_same_address_decline_release_and_exhaustion() -> None:
    core = pool_lab()
    macs = [bytes([2, 0, 0, 0, 0, n]) for n in range(1, 6)]

    def dora(mac: bytes, now: float = NOW) -> IPv4Address | None:
        offer, _ = exchange(core, DISCOVER, {60: b"CP-7841-3PCC", 55: MPP_PRL}, mac=mac, now=now)
        if offer is None:
            return None
        ack, _ = exchange(core, REQUEST, {50: offer.yiaddr.packed, 54: IPv4Address("192.0.2.1").packed,
                                          60: b"CP-7841-3PCC", 55: MPP_PRL}, mac=mac, now=now)
        assert ack is not None and ack.message_type == ACK
        # the vendor-class level applies to a pool client whose option 60 matches
        assert decode_value(160, ack.options[160]) == "http://192.0.2.1/"
        return ack.yiaddr

    first = [dora(m) for m in macs[:3]]
    assert first == [IPv4Address("192.0.2.100"), IPv4Address("192.0.2.101"), IPv4Address("192.0.2.102")]
    assert dora(macs[3]) is None  # pool exhausted: no offer
    assert dora(macs[0]) == first[0]  # same MAC, same address
    _, outcome = exchange(core, DECLINE, {50: first[1].packed, 54: IPv4Address("192.0.2.1").packed},
                          mac=macs[1])
    assert outcome.outcome == "declined"
    assert dora(macs[1]) is None  # its address is quarantined, nothing else is free
    _, outcome = exchange(core, RELEASE, {54: IPv4Address("192.0.2.1").packed}, mac=macs[2],
                          ciaddr=first[2])
    assert outcome.answer == f"released {first[2]}"
    assert dora(macs[4]) == first[2]  # a released address is reused by another MAC
    assert dora(macs[2]) is None  # 100 and 102 are bound, 101 is quarantined
    # after expiry every lease is reusable; the quarantine ends too
    later = NOW + 10 * 3600
    assert dora(macs[1], later) is not None


def test_inform_gets_options_without_lease_times(core: DhcpServerCore) -> None:
    ack, outcome = exchange(core, INFORM, mpp_options(), ciaddr=IPv4Address("10.42.0.60"))
    assert ack.message_type == ACK and ack.yiaddr == IPv4Address(0)
    assert 51 not in ack.options and 58 not in ack.options and 150 in ack.options
    assert outcome.reply.to == ("10.42.0.60", 68)


def test_relayed_request_is_answered_to_the_relay_with_option_82(core: DhcpServerCore) -> None:
    agent = bytes([1, 4]) + b"port" + bytes([2, 3]) + b"sw1"
    offer, outcome = exchange(core, DISCOVER, mpp_options({82: agent}), giaddr=IPv4Address("10.42.0.254"),
                              hops=1)
    assert outcome.reply.to == ("10.42.0.254", 67)
    assert offer.giaddr == IPv4Address("10.42.0.254") and offer.options[82] == agent
    assert list(offer.options)[-1] == 82


def test_offer_and_ack_decode_with_scapy(core: DhcpServerCore) -> None:
    require_module("scapy")
    from scapy.layers.dhcp import BOOTP, DHCP

    _, offered = exchange(core, DISCOVER, mpp_options())
    _, acked = exchange(core, REQUEST, mpp_options({50: IPv4Address("10.42.0.60").packed, 54: SERVER.packed}))
    for outcome, kind in ((offered, 2), (acked, 5)):
        packet = BOOTP(outcome.reply.data)
        assert packet.op == 2 and packet.yiaddr == "10.42.0.60" and packet.xid == 0x1234
        options = {o[0]: o[1:] for o in packet[DHCP].options if isinstance(o, tuple)}
        assert options["message-type"] == (kind,)
        assert options["server_id"] == ("10.42.0.1",)
        assert options["tftp_server_address"] == ("10.42.0.1",)
        assert options["domain"] == (b"lab.example",)
        assert options["lease_time"] == (3600,)
        assert options["subnet_mask"] == ("255.255.255.0",)


def test_long_options_split_and_overload_round_trip() -> None:
    big = {43: bytes(range(256)) * 2, 66: b"x" * 200, 160: b"http://" + b"p" * 240}
    message = Message(BOOTREPLY, 7, PHONE_MAC, options={53: bytes([ACK]), **big})
    wire = build(message, max_size=1500)
    assert parse(wire).options == message.options
    with pytest.raises(CodecError):  # 1 KiB of options cannot fit 576 bytes, overloaded or not
        build(message, max_size=576)


def test_overload_into_file_and_sname() -> None:
    options = {53: bytes([OFFER]), 66: b"t" * 250, 67: b"f" * 100, 160: b"u" * 50}
    message = Message(BOOTREPLY, 9, PHONE_MAC, options=options)
    wire = build(message, max_size=576)
    assert len(wire) <= 576
    decoded = parse(wire)
    assert decoded.options == options and decoded.file == b"" and decoded.sname == b""
    with pytest.raises(CodecError):
        build(Message(BOOTREPLY, 9, PHONE_MAC, options={53: b"\x02", 43: b"z" * 2000}), max_size=576)


@settings(max_examples=300)
@given(st.binary(max_size=700))
def test_parse_raises_only_decode_errors(data: bytes) -> None:
    try:
        message = parse(data)
    except DhcpDecodeError:
        return
    assert len(message.chaddr) <= 16


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_core_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    core = DhcpServerCore(default_lab(), LeaseTable())
    prefix = build(request_message(DISCOVER, PHONE_MAC, 1, mpp_options()))[:240]
    for blob in (data, prefix + data):
        outcome = Said(core.handle(blob, ("127.0.0.1", 68), NOW))
        assert outcome.outcome in ("ok", "malformed", "ignored", "unknown-client", "nak", "no-address",
                                   "refused", "declined")


@given(st.dictionaries(st.integers(1, 254).filter(lambda c: c not in (52, 53)), st.binary(max_size=600),
                       max_size=6))
def test_message_round_trip(options: dict[int, bytes]) -> None:
    message = Message(BOOTREPLY, 5, PHONE_MAC, options={53: bytes([ACK]), **options})
    assert parse(build(message, max_size=8000)).options == message.options
