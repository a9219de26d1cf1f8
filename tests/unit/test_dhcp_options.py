"""DHCP option codec (labkit.protocols.dhcp.options) and its hexdump (…dhcp.explain).

Four kinds of evidence:
1. byte-exact vectors written by hand (hex literals, not computed by the code under test);
2. scapy as an independent decoder of a whole BOOTP/DHCP message built from our bytes;
3. hypothesis properties: round trips, and "bad bytes give CodecError, nothing else";
4. clear CodecError messages for bad values.
"""

from __future__ import annotations

import contextlib
import struct
from ipaddress import IPv4Address
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labkit.errors import CodecError
from labkit.protocols.dhcp.explain import Annotation, annotate, hexdump
from labkit.protocols.dhcp.options import (
    BY_NAME,
    SPECS,
    Kind,
    OptionSpec,
    SubOption,
    Tr069,
    Tr111,
    VendorBlock,
    decode_options,
    decode_value,
    encode_options,
    encode_value,
    spec_for,
)
from tests.conftest import require_module


def ip(text: str) -> IPv4Address:
    return IPv4Address(text)


def h(text: str) -> bytes:
    """Hex literal; spaces are only for the reader."""
    return bytes.fromhex(text)


# --------------------------------------------------------------------------- hand-checked vectors

ACS_URL = "http://acs.lab.example:7547"  # 27 characters = 0x1b
TR069 = Tr069(acs_url=ACS_URL, provisioning_code="LAB1", retry_min_wait=5, retry_multiplier=2000)
TR069_SUBS = (
    SubOption(1, ACS_URL.encode()),
    SubOption(2, b"LAB1"),
    SubOption(3, b"5"),
    SubOption(4, b"2000"),
)
TR111 = Tr111(manufacturer_oui="0023EB", serial_number="FCH1234ABCD", product_class="CP-8851-3PCC")
VIVSO = (
    VendorBlock(
        3561,
        (SubOption(1, b"0023EB"), SubOption(2, b"FCH1234ABCD"), SubOption(3, b"CP-8851-3PCC")),
    ),
    VendorBlock(9, (SubOption(1, h("01 02")), SubOption(200, b""))),
)

# (code, canonical value, the whole TLV as sent: code, length, payload)
VECTORS: list[tuple[int, Any, str]] = [
    (1, ip("255.255.255.0"), "01 04 ff ff ff 00"),
    (2, -18000, "02 04 ff ff b9 b0"),  # two's complement of 0x4650
    (3, (ip("10.0.0.1"),), "03 04 0a 00 00 01"),
    (6, (ip("10.0.0.53"), ip("10.0.0.54")), "06 08 0a 00 00 35 0a 00 00 36"),
    (7, (ip("192.168.1.10"),), "07 04 c0 a8 01 0a"),
    (12, "SEP001122334455", "0c 0f 53 45 50 30 30 31 31 32 32 33 33 34 34 35 35"),
    (15, "lab.example", "0f 0b 6c 61 62 2e 65 78 61 6d 70 6c 65"),
    (28, ip("10.0.0.255"), "1c 04 0a 00 00 ff"),
    (42, (ip("10.42.0.1"),), "2a 04 0a 2a 00 01"),
    (
        43,
        TR069_SUBS,
        "2b 2c"
        " 01 1b 68 74 74 70 3a 2f 2f 61 63 73 2e 6c 61 62 2e 65 78 61 6d 70 6c 65 3a 37 35 34 37"
        " 02 04 4c 41 42 31"
        " 03 01 35"  # "5": TR-069 sends the retry values as ASCII decimal
        " 04 04 32 30 30 30",  # "2000"
    ),
    (50, ip("10.0.0.5"), "32 04 0a 00 00 05"),
    (51, 86400, "33 04 00 01 51 80"),
    (52, 3, "34 01 03"),
    (53, 5, "35 01 05"),
    (54, ip("10.0.0.1"), "36 04 0a 00 00 01"),
    (
        55,
        (1, 3, 6, 15, 35, 66, 150, 2, 7, 42, 43, 58, 59, 159, 160),  # the MPP 8851 request list
        "37 0f 01 03 06 0f 23 42 96 02 07 2a 2b 3a 3b 9f a0",
    ),
    (57, 1500, "39 02 05 dc"),
    (58, 43200, "3a 04 00 00 a8 c0"),
    (59, 75600, "3b 04 00 01 27 50"),
    (60, "CP-7841-3PCC", "3c 0c 43 50 2d 37 38 34 31 2d 33 50 43 43"),
    (61, h("01 00 11 22 33 44 55"), "3d 07 01 00 11 22 33 44 55"),
    (66, "10.0.0.1", "42 08 31 30 2e 30 2e 30 2e 31"),
    (
        82,
        (SubOption(1, b"eth0/1"), SubOption(2, h("00 11 22 33 44 55"))),
        "52 10 01 06 65 74 68 30 2f 31 02 06 00 11 22 33 44 55",
    ),
    (
        125,
        VIVSO,
        "7d 33"
        " 00 00 0d e9 23"  # enterprise 3561, 35 bytes of sub-options
        " 01 06 30 30 32 33 45 42"
        " 02 0b 46 43 48 31 32 33 34 41 42 43 44"
        " 03 0c 43 50 2d 38 38 35 31 2d 33 50 43 43"
        " 00 00 00 09 06"  # enterprise 9, 6 bytes
        " 01 02 01 02"
        " c8 00",  # sub 200, empty
    ),
    (150, (ip("10.0.0.1"), ip("10.0.0.2")), "96 08 0a 00 00 01 0a 00 00 02"),
    (
        159,
        "http://10.0.0.1;http://10.0.0.2",
        "9f 1f 68 74 74 70 3a 2f 2f 31 30 2e 30 2e 30 2e 31 3b"
        " 68 74 74 70 3a 2f 2f 31 30 2e 30 2e 30 2e 32",
    ),
    (
        160,
        "http://10.0.0.1/$PSN.xml",
        "a0 18 68 74 74 70 3a 2f 2f 31 30 2e 30 2e 30 2e 31 2f 24 50 53 4e 2e 78 6d 6c",
    ),
]

EXPECTED_TABLE = {
    1: ("subnet_mask", Kind.IPV4),
    2: ("time_offset", Kind.INT32),
    3: ("routers", Kind.IPV4_LIST),
    6: ("dns_servers", Kind.IPV4_LIST),
    7: ("log_servers", Kind.IPV4_LIST),
    12: ("host_name", Kind.TEXT),
    15: ("domain_name", Kind.TEXT),
    28: ("broadcast_address", Kind.IPV4),
    42: ("ntp_servers", Kind.IPV4_LIST),
    43: ("vendor_specific", Kind.SUBOPTIONS),
    50: ("requested_address", Kind.IPV4),
    51: ("lease_time", Kind.UINT32),
    52: ("overload", Kind.UINT8),
    53: ("message_type", Kind.UINT8),
    54: ("server_id", Kind.IPV4),
    55: ("parameter_request_list", Kind.UINT8_LIST),
    57: ("max_message_size", Kind.UINT16),
    58: ("renewal_time", Kind.UINT32),
    59: ("rebinding_time", Kind.UINT32),
    60: ("vendor_class", Kind.TEXT),
    61: ("client_id", Kind.BYTES),
    66: ("tftp_server_name", Kind.TEXT),
    82: ("relay_agent_info", Kind.SUBOPTIONS),
    125: ("vendor_identifying", Kind.VIVSO),
    150: ("tftp_servers", Kind.IPV4_LIST),
    159: ("provisioning_server", Kind.TEXT),
    160: ("provisioning_url", Kind.TEXT),
}


def test_vectors_cover_every_listed_code() -> None:
    assert sorted(code for code, _, _ in VECTORS) == sorted(EXPECTED_TABLE)


def test_spec_table_names_and_kinds() -> None:
    assert {c: (s.name, s.kind) for c, s in SPECS.items()} == EXPECTED_TABLE
    for code, (name, _kind) in EXPECTED_TABLE.items():
        assert BY_NAME[name] is SPECS[code]
        assert spec_for(code) is SPECS[code]
        assert SPECS[code].title  # something human to show


def test_unknown_code_is_opaque_bytes() -> None:
    assert spec_for(200) == OptionSpec(200, "option_200", "Option 200", Kind.BYTES)
    assert encode_value(200, b"\x01\x02") == h("01 02")
    assert decode_value(200, h("01 02")) == h("01 02")


@pytest.mark.parametrize(("code", "value", "tlv_hex"), VECTORS, ids=[str(v[0]) for v in VECTORS])
def test_vector_encode(code: int, value: Any, tlv_hex: str) -> None:
    assert encode_options([(code, encode_value(code, value))]) == h(tlv_hex)


@pytest.mark.parametrize(("code", "value", "tlv_hex"), VECTORS, ids=[str(v[0]) for v in VECTORS])
def test_vector_decode(code: int, value: Any, tlv_hex: str) -> None:
    options = decode_options(h(tlv_hex))
    assert list(options) == [code]
    decoded = decode_value(code, options[code])
    assert decoded == value
    assert type(decoded) is type(value)  # canonical types, not lists or strings


def test_tr069_typed_view_matches_vector() -> None:
    assert TR069.to_suboptions() == TR069_SUBS
    assert Tr069.from_suboptions(TR069_SUBS) == TR069
    assert encode_value(43, TR069) == encode_value(43, TR069_SUBS)
    assert Tr069().to_suboptions() == ()
    assert Tr069.from_suboptions([]) == Tr069()


def test_tr111_typed_view_matches_vector() -> None:
    assert TR111.to_block() == VIVSO[0]
    assert Tr111.from_block(VIVSO[0]) == TR111
    assert encode_value(125, TR111) == h(
        "00 00 0d e9 23 01 06 30 30 32 33 45 42 02 0b 46 43 48 31 32 33 34 41 42 43 44"
        " 03 0c 43 50 2d 38 38 35 31 2d 33 50 43 43"
    )
    gateway = Tr111(
        gateway_manufacturer_oui="A1B2C3", gateway_serial_number="S1", gateway_product_class="GW"
    )
    assert gateway.to_block() == VendorBlock(
        3561, (SubOption(4, b"A1B2C3"), SubOption(5, b"S1"), SubOption(6, b"GW"))
    )


def test_reasonable_equivalents_are_accepted() -> None:
    routers = encode_value(3, (ip("10.0.0.1"), ip("10.0.0.2")))
    assert encode_value(3, ["10.0.0.1", "10.0.0.2"]) == routers
    assert encode_value(3, "10.0.0.1, 10.0.0.2") == routers
    assert encode_value(3, ip("10.0.0.1")) == h("0a 00 00 01")
    assert encode_value(1, "255.255.255.0") == h("ff ff ff 00")
    assert encode_value(51, "86400") == h("00 01 51 80")
    assert encode_value(55, [1, 3, 6]) == encode_value(55, b"\x01\x03\x06") == h("01 03 06")
    assert encode_value(61, "01:00:11:22:33:44:55") == h("01 00 11 22 33 44 55")
    assert encode_value(61, bytearray(b"\x01")) == b"\x01"
    assert encode_value(43, {1: "http://x"}) == h("01 08 68 74 74 70 3a 2f 2f 78")
    assert encode_value(43, [(1, b"http://x")]) == encode_value(43, {1: "http://x"})
    assert encode_value(125, [(3561, [SubOption(1, b"0023EB")])]) == encode_value(
        125, VendorBlock(3561, (SubOption(1, b"0023EB"),))
    )
    # A list of sub-options is stored as a tuple: blocks stay hashable and compare equal.
    block = VendorBlock(3561, [SubOption(1, b"x")])  # type: ignore[arg-type]
    assert block.suboptions == (SubOption(1, b"x"),)
    assert hash(block) == hash(VendorBlock(3561, (SubOption(1, b"x"),)))


def test_decode_strips_trailing_nul_from_text() -> None:
    # Enterprise-firmware Cisco phones send "...CP-7911G\0" (NUL included in the length).
    assert decode_value(60, b"CP-7841-3PCC\x00") == "CP-7841-3PCC"
    assert decode_value(12, b"SEP1\x00\x00") == "SEP1"


def test_long_option_is_split_and_rejoined() -> None:
    wire = encode_options([(43, bytes(300)), (53, b"\x05")])
    assert wire == h("2b ff") + bytes(255) + h("2b 2d") + bytes(45) + h("35 01 05")
    assert decode_options(wire) == {43: bytes(300), 53: b"\x05"}
    # Exactly 255 bytes still fits one TLV; 510 is two full ones.
    assert encode_options([(12, b"a" * 255)]) == h("0c ff") + b"a" * 255
    assert encode_options([(12, b"a" * 510)]) == (h("0c ff") + b"a" * 255) * 2


def test_empty_payload_is_a_zero_length_tlv() -> None:
    assert encode_options([(80, b"")]) == h("50 00")
    assert decode_options(h("50 00")) == {80: b""}


def test_decode_options_pad_end_and_concatenation() -> None:
    wire = h("00 00 2b 01 aa 35 01 05 00 2b 01 bb ff 36 04 0a 00 00 01")
    options = decode_options(wire)
    assert options == {43: h("aa bb"), 53: h("05")}  # 54 lies after END: ignored
    assert list(options) == [43, 53]  # first-appearance order


def test_encode_options_keeps_order_and_has_no_end() -> None:
    assert encode_options([(53, b"\x02"), (1, h("ffffff00"))]) == h("35 01 02 01 04 ff ff ff 00")


# --------------------------------------------------------------------------- bad values


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: encode_value(12, "café"), "non-ASCII character 'é' at position 3"),
        (lambda: decode_value(12, b"caf\xc3\xa9"), "non-ASCII byte 0xc3 at offset 3"),
        (lambda: encode_value(15, ""), "empty"),
        (lambda: decode_value(15, b"\x00"), "empty"),
        (lambda: encode_value(12, "a\x00b"), "NUL"),
        (lambda: decode_value(12, b"a\x00b"), "NUL"),
        (lambda: encode_value(12, 42), "expected a string"),
        (lambda: encode_value(51, 2**32), "out of range 0..4294967295"),
        (lambda: encode_value(51, -1), "out of range"),
        (lambda: encode_value(2, 2**31), r"out of range -2147483648..2147483647"),
        (lambda: encode_value(53, 256), "out of range 0..255"),
        (lambda: encode_value(57, 65536), "out of range 0..65535"),
        (lambda: encode_value(57, True), "expected an integer"),
        (lambda: encode_value(51, "soon"), "not a decimal integer"),
        (lambda: decode_value(51, h("00 01")), "expected 4 byte"),
        (lambda: encode_value(6, []), "empty"),
        (lambda: encode_value(6, ""), "empty"),
        (lambda: decode_value(6, b""), "multiple of 4"),
        (lambda: decode_value(6, h("0a 00 00")), "multiple of 4"),
        (lambda: encode_value(1, "10.0.0.256"), "not an IPv4 address"),
        (lambda: decode_value(1, h("0a 00 00 01 02")), "4 bytes"),
        (lambda: encode_value(55, []), "empty"),
        (lambda: encode_value(55, [1, 300]), "out of range 0..255"),
        (lambda: encode_value(61, "zz"), "not hexadecimal"),
        (lambda: SubOption(256, b""), "sub-option code 256 is out of range 0..255"),
        (lambda: SubOption(-1, b""), "out of range 0..255"),
        (lambda: SubOption(1, bytes(256)), "at most 255"),
        (lambda: encode_value(43, [(300, b"x")]), "out of range 0..255"),
        (lambda: encode_value(43, "text"), "expected sub-options"),
        (lambda: decode_value(43, h("01 05 61 62")), "claims 5 bytes, only 2 left"),
        (lambda: decode_value(43, h("01")), "no length byte"),
        (
            lambda: VendorBlock(3561, (SubOption(1, bytes(200)), SubOption(2, bytes(60)))),
            "too long.*264 bytes.*at most 255",
        ),
        (
            lambda: encode_value(125, Tr111(serial_number="x" * 200, product_class="y" * 60)),
            "too long",
        ),
        (lambda: VendorBlock(2**32, ()), "enterprise number"),
        (lambda: decode_value(125, h("00 00 0d e9")), "cut short"),
        (lambda: decode_value(125, h("00 00 0d e9 05 01 01")), "claims 5 bytes"),
        (lambda: Tr069(retry_multiplier=999), "out of range 1000..65535"),
        (lambda: Tr069(retry_min_wait=0), "out of range 1..65535"),
        (lambda: Tr069(acs_url="http://é"), "non-ASCII"),
        (lambda: Tr069(acs_url="x" * 256), "at most 255"),
        (lambda: Tr069.from_suboptions([SubOption(5, b"x")]), "sub-option 5 is not defined"),
        (lambda: Tr069.from_suboptions([SubOption(3, b"\x05")]), "not an ASCII decimal"),
        (lambda: Tr069.from_suboptions([SubOption(4, b"999")]), "out of range 1000..65535"),
        (lambda: Tr069.from_suboptions([SubOption(1, b"a"), SubOption(1, b"b")]), "twice"),
        (lambda: Tr111(manufacturer_oui="0023E"), "not an OUI"),
        (lambda: Tr111(gateway_manufacturer_oui="GGGGGG"), "not an OUI"),
        (lambda: Tr111.from_block(VendorBlock(9, ())), "enterprise 3561, not 9"),
        (lambda: Tr111.from_block(VendorBlock(3561, (SubOption(7, b"x"),))), "not defined"),
        (lambda: encode_options([(0, b"")]), "0 is PAD"),
        (lambda: encode_options([(255, b"")]), "255 is END"),
        (lambda: encode_options([(256, b"")]), "cannot be sent"),
        (lambda: encode_options([(1, "text")]), "must be bytes"),
        (
            lambda: decode_options(h("35 02 05")),
            "option 53 at offset 0 claims 2 bytes, only 1 left",
        ),
        (lambda: decode_options(h("35")), "no length byte"),
        (lambda: decode_options("text"), "must be bytes"),
        (lambda: spec_for(256), "out of range 0..255"),
    ],
)
def test_bad_values_give_clear_codec_errors(call: Any, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        call()


def test_codec_error_names_the_option() -> None:
    with pytest.raises(CodecError, match=r"^option 51 lease_time: ") as info:
        encode_value(51, 2**32)
    assert isinstance(info.value, ValueError)  # callers may catch ValueError too


# --------------------------------------------------------------------------- scapy as a referee

SCAPY_NAMES = {
    1: "subnet_mask",
    2: "time_zone",
    3: "router",
    6: "name_server",
    7: "log_server",
    12: "hostname",
    15: "domain",
    28: "broadcast_address",
    42: "NTP_server",
    43: "vendor_specific",
    50: "requested_addr",
    51: "lease_time",
    52: "dhcp-option-overload",
    53: "message-type",
    54: "server_id",
    55: "param_req_list",
    57: "max_dhcp_size",
    58: "renewal_time",
    59: "rebinding_time",
    60: "vendor_class_id",
    61: "client_id",
    66: "tftp_server_name",
    82: "relay_agent_information",
    125: "vendor_specific_information",
    150: "tftp_server_address",
    159: "v4-portparams",  # IANA: RFC 7618; Cisco MPP reuses 159 for the provisioning server
    160: "v4-captive-portal",  # IANA: RFC 7710; Cisco MPP reuses 160 for the provisioning URL
}


def _scapy_options(options: bytes) -> dict[str, list[tuple[Any, ...]]]:
    """Build a full BOOTREPLY around `options` and let scapy decode it."""
    require_module("scapy")
    from scapy.layers.dhcp import BOOTP, DHCP

    header = struct.pack(
        "!BBBBIHH4s4s4s4s16s64s128s",
        2,  # BOOTREPLY
        1,  # Ethernet
        6,
        0,
        0x12345678,
        0,
        0,
        bytes(4),
        ip("10.0.0.50").packed,
        ip("10.0.0.1").packed,
        bytes(4),
        h("00 11 22 33 44 55") + bytes(10),
        bytes(64),
        bytes(128),
    )
    assert len(header) == 236
    packet = BOOTP(header + h("63 82 53 63") + options + b"\xff")
    assert packet.xid == 0x12345678
    assert packet.yiaddr == "10.0.0.50"
    seen: dict[str, list[tuple[Any, ...]]] = {}
    for entry in packet[DHCP].options:
        if entry == "end":
            continue
        assert isinstance(entry, tuple), f"scapy could not parse: {entry!r}"
        seen.setdefault(entry[0], []).append(entry[1:])
    return seen


def test_scapy_option_names() -> None:
    require_module("scapy")
    from scapy.layers.dhcp import DHCPOptions

    names = {c: f if isinstance(f, str) else f.name for c, f in DHCPOptions.items()}
    assert {code: names[code] for code in SCAPY_NAMES} == SCAPY_NAMES


def test_scapy_decodes_our_message_to_the_same_values() -> None:
    wire = encode_options((code, encode_value(code, value)) for code, value, _ in VECTORS)
    seen = _scapy_options(wire)
    assert set(seen) == set(SCAPY_NAMES.values())
    for code, value, _ in VECTORS:
        entries = seen[SCAPY_NAMES[code]]
        assert len(entries) == 1, (code, entries)
        got = entries[0]
        kind = SPECS[code].kind
        if kind is Kind.IPV4:
            assert got == (str(value),)
        elif kind is Kind.IPV4_LIST:
            assert got == tuple(str(a) for a in value)
        elif kind is Kind.INT32:
            # scapy's time_zone is an unsigned IntField: reinterpret as two's complement.
            (raw,) = got
            assert raw == 0xFFFFB9B0
            assert (raw - (1 << 32) if raw >= 1 << 31 else raw) == value
        elif kind in (Kind.UINT8, Kind.UINT16, Kind.UINT32):
            assert got == (value,)
        elif kind is Kind.UINT8_LIST:
            assert got == (list(value),)
        elif kind is Kind.TEXT:
            assert got == (value.encode("ascii"),)  # scapy leaves text as bytes
        else:  # BYTES, SUBOPTIONS, VIVSO: scapy gives the raw payload
            assert got == (encode_value(code, value),)
    # Option 125 stays raw in scapy; check its RFC 3925 framing independently.
    (vivso,) = seen["vendor_specific_information"][0]
    enterprise, length = struct.unpack_from("!IB", vivso)
    assert (enterprise, length) == (3561, 35)
    assert struct.unpack_from("!IB", vivso, 5 + length) == (9, 6)
    assert vivso[5 : 5 + length].startswith(h("01 06") + b"0023EB")


def test_scapy_sees_the_rfc3396_split() -> None:
    long_tr069 = Tr069(acs_url="http://" + "a" * 190 + ".example/acs", provisioning_code="P" * 60)
    payload = encode_value(43, long_tr069)
    assert len(payload) > 255
    seen = _scapy_options(encode_options([(43, payload), (53, b"\x05")]))
    parts = [part for (part,) in seen["vendor_specific"]]
    assert [len(p) for p in parts] == [255, len(payload) - 255]  # scapy does not rejoin
    assert b"".join(parts) == payload
    assert seen["message-type"] == [(5,)]


# --------------------------------------------------------------------------- hypothesis

ascii_text = st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=127), min_size=1)
sub_text = st.text(
    alphabet=st.characters(min_codepoint=1, max_codepoint=127), min_size=1, max_size=40
)
addresses = st.ip_addresses(v=4)
suboptions = st.builds(SubOption, st.integers(0, 255), st.binary(max_size=255))
small_suboptions = st.builds(SubOption, st.integers(0, 255), st.binary(max_size=40))
blocks = st.builds(
    VendorBlock,
    st.integers(0, 2**32 - 1),
    st.lists(small_suboptions, max_size=5).map(tuple),
)

CANONICAL: dict[Kind, st.SearchStrategy[Any]] = {
    Kind.IPV4: addresses,
    Kind.IPV4_LIST: st.lists(addresses, min_size=1, max_size=80).map(tuple),
    Kind.TEXT: st.text(
        alphabet=st.characters(min_codepoint=1, max_codepoint=127), min_size=1, max_size=400
    ),
    Kind.UINT8: st.integers(0, 2**8 - 1),
    Kind.UINT16: st.integers(0, 2**16 - 1),
    Kind.UINT32: st.integers(0, 2**32 - 1),
    Kind.INT32: st.integers(-(2**31), 2**31 - 1),
    Kind.UINT8_LIST: st.lists(st.integers(0, 255), min_size=1, max_size=300).map(tuple),
    Kind.BYTES: st.binary(max_size=400),
    Kind.SUBOPTIONS: st.lists(suboptions, max_size=4).map(tuple),
    Kind.VIVSO: st.lists(blocks, max_size=4).map(tuple),
}

ROUND_TRIP_CODES = [*sorted(SPECS), 200]  # every known option plus an unknown (bytes) one


def test_every_kind_has_a_strategy() -> None:
    assert set(CANONICAL) == set(Kind)


@pytest.mark.parametrize("code", ROUND_TRIP_CODES)
@given(data=st.data())
def test_value_round_trip(code: int, data: st.DataObject) -> None:
    value = data.draw(CANONICAL[spec_for(code).kind])
    payload = encode_value(code, value)
    assert decode_value(code, payload) == value
    # ... and through the wire, long payloads included.
    assert decode_options(encode_options([(code, payload)])) == {code: payload}


@given(st.dictionaries(st.integers(1, 254), st.binary(max_size=700), max_size=8))
def test_options_round_trip(options: dict[int, bytes]) -> None:
    wire = encode_options(options.items())
    assert decode_options(wire) == options
    assert list(decode_options(wire)) == list(options)
    # END stops parsing: whatever follows it (padding, garbage) is ignored.
    assert decode_options(wire + b"\xff" + b"\x35\x09") == options


tr069s = st.builds(
    Tr069,
    acs_url=st.none() | ascii_text.filter(lambda s: len(s) <= 255),
    provisioning_code=st.none() | sub_text,
    retry_min_wait=st.none() | st.integers(1, 65535),
    retry_multiplier=st.none() | st.integers(1000, 65535),
)
ouis = st.text(alphabet="0123456789ABCDEFabcdef", min_size=6, max_size=6)
tr111s = st.builds(
    Tr111,
    manufacturer_oui=st.none() | ouis,
    serial_number=st.none() | sub_text,
    product_class=st.none() | sub_text,
    gateway_manufacturer_oui=st.none() | ouis,
    gateway_serial_number=st.none() | sub_text,
    gateway_product_class=st.none() | sub_text,
)


@given(tr069s)
def test_tr069_round_trip(tr: Tr069) -> None:
    assert Tr069.from_suboptions(tr.to_suboptions()) == tr
    assert Tr069.from_suboptions(decode_value(43, encode_value(43, tr))) == tr


@given(tr111s)
def test_tr111_round_trip(tr: Tr111) -> None:
    assert Tr111.from_block(tr.to_block()) == tr
    (block,) = decode_value(125, encode_value(125, tr))
    assert Tr111.from_block(block) == tr


ANY_CODE = st.sampled_from([*sorted(SPECS), 0, 99, 200, 254, 255])


@given(ANY_CODE, st.binary(max_size=600))
def test_decode_value_raises_only_codec_error(code: int, data: bytes) -> None:
    with contextlib.suppress(CodecError):
        decode_value(code, data)


@given(st.binary(max_size=600))
def test_decode_options_raises_only_codec_error(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        decode_options(data)


@given(st.binary(max_size=300))
def test_typed_views_raise_only_codec_error(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        Tr069.from_suboptions(decode_value(43, data))
    with contextlib.suppress(CodecError):
        for block in decode_value(125, data):
            Tr111.from_block(block)


def _hex_from_dump(dump: str) -> bytes:
    """The bytes shown in the hex column of a hexdump (leading two-digit hex tokens)."""
    out = bytearray()
    for line in dump.splitlines():
        for token in line.split():
            if len(token) != 2 or any(c not in "0123456789abcdef" for c in token):
                break
            out.append(int(token, 16))
    return bytes(out)


@given(st.integers(1, 254) | ANY_CODE, st.binary(max_size=600))
def test_annotate_partitions_the_wire_bytes(code: int, payload: bytes) -> None:
    annotations = annotate(code, payload)
    dump = hexdump(code, payload)
    if not 1 <= code <= 254:
        assert dump  # something is shown, nothing raised
        return
    wire = encode_options([(code, payload)])
    offset = 0
    for ann in annotations:
        assert ann.offset == offset and ann.length > 0 and 0 <= ann.depth <= 2
        offset += ann.length
    assert offset == len(wire)
    assert _hex_from_dump(dump) == wire


@given(
    st.one_of(st.integers(-1000, 1000), st.none(), st.text(max_size=5)),
    st.one_of(st.binary(max_size=50), st.none(), st.text(max_size=20), st.integers()),
)
def test_annotate_and_hexdump_never_raise(code: Any, payload: Any) -> None:
    assert isinstance(annotate(code, payload), list)
    assert isinstance(hexdump(code, payload), str)


# --------------------------------------------------------------------------- explain


def test_annotate_tr069() -> None:
    payload = encode_value(43, TR069)
    assert annotate(43, payload) == [
        Annotation(0, 2, 0, "option 43 vendor_specific (len 44)", "TR-069 (Broadband Forum)"),
        Annotation(2, 29, 1, "sub 1 ACS URL", f'"{ACS_URL}"'),
        Annotation(31, 6, 1, "sub 2 ProvisioningCode", '"LAB1"'),
        Annotation(37, 3, 1, "sub 3 CWMPRetryMinimumWaitInterval", '5 s (sent as ASCII "5")'),
        Annotation(
            40, 6, 1, "sub 4 CWMPRetryIntervalMultiplier", '2000 (x2, sent as ASCII "2000")'
        ),
    ]


def test_annotate_43_that_is_not_tr069_stays_generic() -> None:
    # A binary sub 3 is not TR-069's ASCII encoding: no TR-069 names are claimed.
    assert annotate(43, h("03 01 05 0a 02 41 42")) == [
        Annotation(0, 2, 0, "option 43 vendor_specific (len 7)", "2 sub-option(s)"),
        Annotation(2, 3, 1, "sub 3", "05"),
        Annotation(5, 4, 1, "sub 10", '"AB"'),
    ]


def test_annotate_vivso_names_tr111_suboptions() -> None:
    annotations = annotate(125, encode_value(125, VIVSO))
    assert [(a.offset, a.length, a.depth, a.label) for a in annotations] == [
        (0, 2, 0, "option 125 vendor_identifying (len 51)"),
        (2, 5, 1, "enterprise 3561 (Broadband Forum)"),
        (7, 8, 2, "sub 1 DeviceManufacturerOUI"),
        (15, 13, 2, "sub 2 DeviceSerialNumber"),
        (28, 14, 2, "sub 3 DeviceProductClass"),
        (42, 5, 1, "enterprise 9 (Cisco)"),
        (47, 4, 2, "sub 1"),
        (51, 2, 2, "sub 200"),
    ]
    assert annotations[3].value == '"FCH1234ABCD"'


def test_annotate_simple_options_in_one_line() -> None:
    assert annotate(42, h("0a 2a 00 01")) == [
        Annotation(0, 6, 0, "option 42 ntp_servers (len 4)", "10.42.0.1")
    ]
    assert annotate(2, h("ff ff b9 b0"))[0].value == "-18000 s (-5h)"
    assert annotate(53, h("05"))[0].value == "5 (ACK)"
    assert annotate(61, h("01 00 11 22 33 44 55"))[0].value == "type 1 (Ethernet) 00:11:22:33:44:55"
    assert annotate(159, b"http://10.0.0.1;http://10.0.0.2")[0].value == (
        '"http://10.0.0.1;http://10.0.0.2"'
    )


def test_annotate_undecodable_falls_back_to_raw() -> None:
    (ann,) = annotate(1, h("0a 00 00"))
    assert ann == Annotation(
        0, 5, 0, "option 1 subnet_mask (len 3)", "undecodable: an IPv4 address is 4 bytes, got 3"
    )


def test_annotate_split_option() -> None:
    annotations = annotate(12, b"a" * 300)
    assert [(a.offset, a.length, a.depth) for a in annotations] == [
        (0, 2, 0),  # first header
        (2, 255, 1),  # data, first chunk
        (257, 2, 0),  # second header (RFC 3396)
        (259, 45, 1),  # data, continued
    ]
    assert annotations[0].label == "option 12 host_name (len 300, split into 2 TLVs, RFC 3396)"
    assert annotations[2].value == "len 45"
    assert annotations[3].label == "data (continued)"


def test_hexdump_layout() -> None:
    lines = hexdump(43, encode_value(43, TR069)).splitlines()
    assert lines[0].startswith("2b 2c ")
    assert lines[0].endswith("option 43 vendor_specific (len 44): TR-069 (Broadband Forum)")
    assert lines[1].startswith("   01 1b 68 74 74 70 3a 2f 2f 61 63 73 2e 6c 61 62 ")
    assert lines[1].endswith(f'sub 1 ACS URL: "{ACS_URL}"')
    assert lines[2].strip() == "2e 65 78 61 6d 70 6c 65 3a 37 35 34 37"  # wrapped at 16 bytes
    assert lines[3].lstrip().startswith("02 04 4c 41 42 31")
    # Labels line up: one column per depth.
    assert lines[1].index("sub 1") == lines[3].index("sub 2") == lines[0].index("option") + 2
    assert len(lines) == 6


def test_hexdump_never_raises_on_nonsense() -> None:
    dump = hexdump(0, b"ab")
    assert dump.startswith("61 62 ")
    assert dump.endswith("option 0 (not a sendable option code): raw payload, no TLV header")
    assert "not bytes" in hexdump(43, None)  # type: ignore[arg-type]
    assert hexdump(-3, b"")
