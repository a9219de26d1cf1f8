"""The virtual phone reads each distinct DHCP option of a swarm's ACKs once: the kept value is
decode_value's (or the raw payload when the phone cannot read it), whoever asks."""

from __future__ import annotations

from ipaddress import IPv4Address

from labkit.errors import CodecError
from labkit.phone import driver
from labkit.protocols.dhcp.options import decode_value, encode_value

CASES = [
    (1, encode_value(1, IPv4Address("255.255.0.0"))),
    (6, encode_value(6, [IPv4Address("10.42.0.1"), IPv4Address("10.42.0.2")])),
    (15, encode_value(15, "lab.example")),
    (51, encode_value(51, 86400)),
    (160, encode_value(160, "http://prov.lab.example/$MA.cfg")),
    (1, b"\x01\x02"),  # an address of two bytes: unreadable, kept raw
    (6, b"\x0a\x00\x00"),
]


def expected(code: int, payload: bytes) -> object:
    try:
        return decode_value(code, payload)
    except CodecError:
        return payload


def test_kept_values_are_decode_values_and_raw_payloads() -> None:
    driver._option_values.clear()
    first = [driver._option_value(code, payload) for code, payload in CASES]
    again = [driver._option_value(code, bytes(payload)) for code, payload in CASES]
    assert first == again == [expected(code, payload) for code, payload in CASES]
    assert first[5] == b"\x01\x02" and isinstance(first[1], tuple)
    assert len(driver._option_values) == len(CASES)


def test_the_kept_values_are_bounded() -> None:
    driver._option_values.clear()
    for n in range(driver.OPTION_CACHE + 10):
        assert driver._option_value(51, n.to_bytes(4, "big")) == n
    assert len(driver._option_values) <= driver.OPTION_CACHE
