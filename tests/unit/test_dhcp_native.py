"""The compiled DHCP parse (labkit.native._dhcp through message.native_parser) reads every message
exactly as the pure `parse` does: the same Message (every field, options in the same order, the same
address objects) or the same error; and the server answers byte-identical datagrams with either.
Both paths run here; when the module is not built, the pure path is checked against itself and
tests/unit/test_native.py fails CI instead."""

from __future__ import annotations

import os
import subprocess
import sys
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit import native
from labkit.errors import CodecError
from labkit.protocols.dhcp import message as dhcp_message
from labkit.protocols.dhcp.leases import LeaseTable
from labkit.protocols.dhcp.message import (
    ACK,
    DISCOVER,
    INFORM,
    NAK,
    OFFER,
    REQUEST,
    Message,
    build,
    native_parser,
    parse,
    reply_wire,
    request_message,
)
from labkit.protocols.dhcp.options import encode_options
from labkit.protocols.dhcp.server import DhcpServerCore
from tests.unit.dhcp_configs import SERVER, default_lab
from tests.unit.test_dhcp_reply_wire import addresses, option_lists, requests

MODULE = native.load("_dhcp")
fast = native_parser(MODULE) if MODULE is not None else parse
MAC = bytes.fromhex("00562b00033c")
GOOD = build(request_message(REQUEST, MAC, 7, {50: b"\x0a\x2a\x00\x3c", 54: SERVER.packed,
                                               55: b"\x01\x03\x06", 60: b"Cisco CP-8851-3PCC",
                                               12: b"SEP00562B00033C"},
                             giaddr=IPv4Address("10.42.0.2"), ciaddr=IPv4Address("10.42.0.60"), hops=1))


def outcome(parser: object, data: bytes) -> tuple[str, object]:
    try:
        message = parser(data)  # type: ignore[operator]
    except CodecError as exc:
        return "error", (type(exc), str(exc))
    assert isinstance(message, Message)
    return "message", (message, list(vars(message).items()), [type(v) for v in vars(message).values()])


def same(data: bytes) -> None:
    pure, compiled = outcome(parse, data), outcome(fast, data)
    assert compiled == pure
    if pure[0] == "message":  # the address fields are the very objects the pure parse hands out
        for name in ("ciaddr", "yiaddr", "siaddr", "giaddr"):
            assert getattr(fast(data), name) is getattr(parse(data), name)


def overloaded() -> bytes:
    data = bytearray(build(request_message(DISCOVER, MAC, 1, {52: b"\x03"})))
    data[108:111] = b"\x0c\x01A"  # option 12 in `file`
    data[44:47] = b"\x0f\x01B"  # option 15 in `sname`
    return bytes(data)


CASES = {
    "a phone's REQUEST via a relay": GOOD,
    "perfdhcp's DISCOVER": bytes.fromhex(
        "010106010000000000000000000000000000000000000000c6120002000c01020304" + "00" * 202
        + "63825363" + "3501013707011c02030f060c3d0701000c01020304ff"),
    "no options at all": GOOD[:240],
    "no END, options up to the last byte": GOOD[:240] + b"\x35\x01\x01",
    "PADs around and after END": GOOD[:240] + b"\x00\x00\x35\x01\x08\x00\xff\x35\x01\x01",
    "a zero-length option": GOOD[:240] + b"\x35\x01\x01\x0c\x00\xff",
    "a code repeated (RFC 3396)": GOOD[:240] + b"\x0c\x02AB\x35\x01\x01\x0c\x01C\xff",
    "overload 52 into file and sname": overloaded(),
    "bad overload value": GOOD[:240] + b"\x34\x01\x07\xff",
    "truncated length byte": GOOD[:240] + b"\x35",
    "a TLV past the end": GOOD[:240] + b"\x35\x05\x01",
    "short header": GOOD[:239],
    "empty": b"",
    "op 3": b"\x03" + GOOD[1:],
    "BOOTREPLY": b"\x02" + GOOD[1:],
    "hlen 17": GOOD[:2] + b"\x11" + GOOD[3:],
    "hlen 16 (all of chaddr)": GOOD[:2] + b"\x10" + GOOD[3:],
    "hlen 0": GOOD[:2] + b"\x00" + GOOD[3:],
    "no magic cookie": GOOD[:236] + b"\x00\x00\x00\x00" + GOOD[240:],
    "sname and file without NUL": GOOD[:44] + b"S" * 64 + b"F" * 128 + GOOD[236:],
    "all addresses set": GOOD[:12] + bytes(range(1, 17)) + GOOD[28:],
    "xid and flags at their maxima": GOOD[:4] + b"\xff" * 8 + GOOD[12:],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_table_of_ugly_messages_reads_the_same(name: str) -> None:
    same(CASES[name])


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=400))
def test_any_bytes_behind_a_good_header_read_the_same(tail: bytes) -> None:
    same(GOOD[:240] + tail)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=len(GOOD) - 1), st.integers(min_value=0, max_value=255),
       st.integers(min_value=200, max_value=len(GOOD)))
def test_any_byte_changed_or_cut_reads_the_same(where: int, value: int, cut: int) -> None:
    data = bytearray(GOOD)
    data[where] = value
    same(bytes(data[:cut]))


def test_the_address_cache_is_shared_and_bounded() -> None:
    if MODULE is None:
        pytest.skip("labkit.native._dhcp not built here")
    dhcp_message._addresses.clear()
    for n in range(dhcp_message.ADDRESS_CACHE + 10):
        data = bytearray(GOOD)
        data[24:28] = (0x0A000000 + n + 1).to_bytes(4, "big")  # giaddr: a new relay each time
        assert fast(bytes(data)).giaddr == IPv4Address(0x0A000000 + n + 1)
    assert 0 < len(dhcp_message._addresses) <= dhcp_message.ADDRESS_CACHE


def test_the_server_answers_byte_identical_datagrams_with_either_parse() -> None:
    datagrams = [GOOD, *CASES.values(), build(request_message(INFORM, MAC, 9, {55: b"\x01\x03"},
                                                                ciaddr=IPv4Address("10.42.0.60")))]
    datagrams += [build(request_message(DISCOVER, bytes([2, 0, 0, 0, 0, n]), n, {55: b"\x01\x03\x06"},
                                        giaddr=IPv4Address("10.42.0.2"))) for n in range(5)]
    answers = []
    for compiled in (False, True):
        core = DhcpServerCore(default_lab(answer_any=True), LeaseTable())
        if compiled and MODULE is not None:
            core.use_native(MODULE)
        answers.append([core.handle(d, ("10.42.0.2", 67), 1000.0) for d in datagrams])
    assert answers[0] == answers[1]
    assert sum(len(result.send) for result in answers[0]) >= 8  # replies were compared, not only silence


@settings(max_examples=400, deadline=None)
@given(requests(), st.sampled_from([OFFER, ACK, NAK, INFORM]), option_lists, addresses,
       st.one_of(st.none(), st.integers(0, 65535)), st.integers(0, 1600))
def test_the_compiled_reply_is_the_pure_reply_wire(request: Message, kind: int,
                                                   options: list[tuple[int, bytes]], yiaddr: IPv4Address,
                                                   flags: int | None, max_size: int) -> None:
    block, codes = encode_options(options), frozenset(code for code, _ in options)
    outcomes = []
    for pack in (None, MODULE.reply if MODULE is not None else None):
        try:
            outcomes.append(reply_wire(request, kind, block, codes, yiaddr=yiaddr, flags=flags,
                                       max_size=max_size, pack=pack))
        except CodecError as exc:
            outcomes.append(str(exc))
    assert outcomes[0] == outcomes[1]


def test_the_dhcp_tests_pass_on_the_pure_path_too() -> None:
    """LABKIT_NATIVE=0: the service runs the pure parse (the reference) through the same tests."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "LABKIT_NATIVE": "0", "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p",
                           "no:cacheprovider", "tests/unit/test_dhcp_server.py",
                           "tests/unit/test_dhcp_group_commit.py"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:]
