"""The server's reply shortcut (`reply_wire`: a cached, encoded option block spliced behind a packed
header) gives the same bytes as the general path (`build(reply_to(...))`), or the same error."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address

from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.errors import CodecError
from labkit.protocols.dhcp.leases import LeaseTable
from labkit.protocols.dhcp.message import (
    ACK,
    BOOTREQUEST,
    DISCOVER,
    NAK,
    OFFER,
    REQUEST,
    Message,
    build,
    parse,
    reply_to,
    reply_wire,
    request_message,
)
from labkit.protocols.dhcp.options import encode_options
from labkit.protocols.dhcp.server import DhcpServerCore
from tests.unit.dhcp_configs import default_lab

addresses = st.integers(min_value=0, max_value=2**32 - 1).map(IPv4Address)
payloads = st.binary(min_size=0, max_size=300)
option_lists = st.dictionaries(st.integers(min_value=1, max_value=254), payloads, max_size=12).map(
    lambda found: list(found.items()))


@st.composite
def requests(draw: st.DrawFn) -> Message:
    options = draw(st.dictionaries(st.integers(min_value=1, max_value=254), st.binary(max_size=40),
                                   max_size=6))
    if draw(st.booleans()):
        options[82] = draw(st.binary(min_size=1, max_size=60))
    if draw(st.booleans()):
        options[57] = draw(st.integers(min_value=0, max_value=1500)).to_bytes(2, "big")
    return Message(BOOTREQUEST, draw(st.integers(0, 2**32 - 1)), draw(st.binary(min_size=0, max_size=16)),
                   htype=draw(st.integers(0, 255)), hops=draw(st.integers(0, 255)),
                   secs=draw(st.integers(0, 65535)),
                   flags=draw(st.integers(0, 65535)), ciaddr=draw(addresses), giaddr=draw(addresses),
                   options=options)


@settings(max_examples=400, deadline=None)
@given(requests(), st.sampled_from([OFFER, ACK, NAK]), option_lists, addresses,
       st.one_of(st.none(), st.integers(0, 65535)), st.integers(0, 1600))
def test_reply_wire_is_build_of_reply_to(request: Message, kind: int, options: list[tuple[int, bytes]],
                                        yiaddr: IPv4Address, flags: int | None, max_size: int) -> None:
    general = reply_to(request, kind, yiaddr=yiaddr, options=options)
    if flags is not None:
        general = replace(general, flags=flags)
    try:
        expected: bytes | None = build(general, max_size=max_size)
    except CodecError:
        expected = None
    block, codes = encode_options(options), frozenset(code for code, _ in options)
    try:
        got: bytes | None = reply_wire(request, kind, block, codes, yiaddr=yiaddr, flags=flags,
                                       max_size=max_size)
    except CodecError:
        got = None
    assert got == expected


def test_cached_option_blocks_follow_each_client_request_list() -> None:
    """Two clients of one option set with different request lists get different blocks, and the
    same list again gets the same reply options as the first time (the cache is keyed by the list)."""
    core = DhcpServerCore(default_lab(answer_any=True), LeaseTable())
    now = 1_700_000_000.0
    replies = []
    for n, prl in enumerate((bytes([3, 6, 42]), bytes([42, 3]), bytes([3, 6, 42]))):
        mac = bytes([2, 0, 0, 0, 0, n])
        offer = core.handle(build(request_message(DISCOVER, mac, 7, {55: prl})), ("0.0.0.0", 68), now)
        message = parse(offer.send[0].data)
        replies.append(message)
        assert list(message.options)[:2 + len(prl)] == [53, 54, *prl]
        request = {55: prl, 50: message.yiaddr.packed, 54: message.options[54]}
        ack = core.handle(build(request_message(REQUEST, mac, 8, request)), ("0.0.0.0", 68), now)
        assert parse(ack.send[0].data).options[53] == bytes([ACK])
    assert replies[0].options == replies[2].options
    assert replies[0].yiaddr != replies[2].yiaddr
