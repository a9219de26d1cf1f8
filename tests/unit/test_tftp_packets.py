"""TFTP packet codec (labkit.protocols.tftp.packets).

Evidence: byte-exact vectors written by hand from RFC 1350/2347 figures; tftpy's packet factory
as an independent decoder of what we encode; hypothesis round trips; arbitrary bytes give
CodecError and nothing else.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labkit.errors import CodecError
from labkit.protocols.tftp.packets import (
    MAX_DATA,
    Ack,
    Data,
    Error,
    OptionAck,
    Packet,
    ReadRequest,
    WriteRequest,
    decode,
    encode,
)
from tests.conftest import require_module

# --------------------------------------------------------------------------- hand-checked vectors

VECTORS: list[tuple[bytes, Packet]] = [
    (b"\x00\x018851-3PCC.xml\x00octet\x00", ReadRequest("8851-3PCC.xml", "octet")),
    (
        b"\x00\x01/Cisco/CP-8851-3PCC/00562b000101.cfg\x00octet\x00blksize\x001468\x00tsize\x000\x00",
        ReadRequest("/Cisco/CP-8851-3PCC/00562b000101.cfg", "octet",
                    (("blksize", "1468"), ("tsize", "0"))),
    ),
    (b"\x00\x01f\x00NetASCII\x00BlkSize\x00512\x00", ReadRequest("f", "NetASCII", (("BlkSize", "512"),))),
    (b"\x00\x02log.txt\x00octet\x00tsize\x0042\x00", WriteRequest("log.txt", "octet", (("tsize", "42"),))),
    (b"\x00\x03\x00\x01hello", Data(1, b"hello")),
    (b"\x00\x03\xff\xff", Data(65535, b"")),
    (b"\x00\x04\x00\x00", Ack(0)),
    (b"\x00\x04\x12\x34", Ack(0x1234)),
    (b"\x00\x05\x00\x01File not found\x00", Error(1, "File not found")),
    (b"\x00\x05\x00\x00\x00", Error(0, "")),
    (b"\x00\x06blksize\x001468\x00windowsize\x008\x00",
     OptionAck((("blksize", "1468"), ("windowsize", "8")))),
]


@pytest.mark.parametrize(("wire", "packet"), VECTORS)
def test_vectors_decode_and_encode_byte_exact(wire: bytes, packet: Packet) -> None:
    assert decode(wire) == packet
    assert encode(packet) == wire


def test_largest_data_block() -> None:
    wire = b"\x00\x03\x00\x07" + b"\xaa" * MAX_DATA
    assert decode(wire) == Data(7, b"\xaa" * MAX_DATA)
    with pytest.raises(CodecError):
        decode(wire + b"\xaa")


def test_utf8_filename() -> None:
    assert decode("\x00\x01é.cfg\x00octet\x00".encode()) == ReadRequest("é.cfg", "octet")


def test_error_without_terminator_is_accepted() -> None:
    # Some RFC 1350 peers omit the final NUL (tftpy accepts even a 4-byte ERROR).
    assert decode(b"\x00\x05\x00\x02no") == Error(2, "no")
    assert decode(b"\x00\x05\x00\x02") == Error(2, "")


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        b"\x00",
        b"\x00\x07xx",  # unknown opcode
        b"\x00\x00",
        b"\x00\x04\x00",  # short ACK
        b"\x00\x04\x00\x01\x00",  # long ACK
        b"\x00\x03\x00",  # DATA without block number
        b"\x00\x01abc",  # RRQ without terminator
        b"\x00\x01abc\x00",  # RRQ without mode
        b"\x00\x01abc\x00\x00",  # empty mode
        b"\x00\x01abc\x00octet\x00blksize\x00",  # option without value
        b"\x00\x01abc\x00octet\x00\x00512\x00",  # empty option name
        b"\x00\x01\xff\xfe\x00octet\x00",  # filename not UTF-8
        b"\x00\x01a\x00oct\xe9t\x00",  # mode not ASCII
        b"\x00\x01a\x00octet\x00bl\xffk\x008\x00",  # option name not ASCII
        b"\x00\x06\x00",  # OACK without options
        b"\x00\x06blksize\x00",  # OACK option without value
        b"\x00\x05\x00",  # ERROR without code
        b"\x00\x05\x00\x01msg\x00junk",  # bytes after the terminator
    ],
)
def test_malformed_raise_codec_error(wire: bytes) -> None:
    with pytest.raises(CodecError):
        decode(wire)


@pytest.mark.parametrize(
    "packet",
    [
        Data(-1, b""),
        Data(65536, b""),
        Data(1, b"x" * (MAX_DATA + 1)),
        Ack(70000),
        Error(65536, "x"),
        Error(1, "a\x00b"),
        ReadRequest("a\x00b", "octet"),
        ReadRequest("a", ""),
        ReadRequest("a", "océt"),
        ReadRequest("a", "octet", (("", "1"),)),
        ReadRequest("a", "octet", (("blksize", "1\x002"),)),
        OptionAck(()),
    ],
)
def test_encode_refuses_out_of_range(packet: Packet) -> None:
    with pytest.raises(CodecError):
        encode(packet)


# --------------------------------------------------------------------------- tftpy as a referee


def test_tftpy_decodes_what_we_encode() -> None:
    require_module("tftpy")
    from tftpy.TftpPacketFactory import TftpPacketFactory

    factory = TftpPacketFactory()
    rrq = factory.parse(encode(ReadRequest("/8851-3PCC.xml", "octet", (("blksize", "1468"),))))
    assert (rrq.opcode, rrq.filename, rrq.mode, rrq.options) == (1, "/8851-3PCC.xml", "octet",
                                                                {"blksize": "1468"})
    dat = factory.parse(encode(Data(513, b"payload")))
    assert (dat.opcode, dat.blocknumber, dat.data) == (3, 513, b"payload")
    ack = factory.parse(encode(Ack(65535)))
    assert (ack.opcode, ack.blocknumber) == (4, 65535)
    oack = factory.parse(encode(OptionAck((("tsize", "99"), ("windowsize", "8")))))
    assert (oack.opcode, oack.options) == (6, {"tsize": "99", "windowsize": "8"})
    err = factory.parse(encode(Error(1, "file not found")))
    assert (err.opcode, err.errorcode, err.errmsg) == (5, 1, b"file not found")


def test_we_decode_what_tftpy_encodes() -> None:
    require_module("tftpy")
    from tftpy import TftpPacketTypes as types

    rrq = types.TftpPacketRRQ()
    rrq.filename, rrq.mode, rrq.options = "boot.cfg", "octet", {"blksize": 1468, "tsize": 0}
    assert decode(rrq.encode().buffer) == ReadRequest("boot.cfg", "octet",
                                                      (("blksize", "1468"), ("tsize", "0")))
    ack = types.TftpPacketACK()
    ack.blocknumber = 42
    assert decode(ack.encode().buffer) == Ack(42)


# --------------------------------------------------------------------------- properties

NO_NUL_ASCII = st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=127), max_size=30)
NAME = st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=127), min_size=1, max_size=20)
FILENAME = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]),
                   max_size=60)
OPTIONS = st.lists(st.tuples(NAME, NO_NUL_ASCII), max_size=6).map(tuple)
MESSAGE = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]),
                  max_size=60)
BLOCK = st.integers(0, 0xFFFF)

PACKETS = st.one_of(
    st.builds(ReadRequest, FILENAME, NAME, OPTIONS),
    st.builds(WriteRequest, FILENAME, NAME, OPTIONS),
    st.builds(Data, BLOCK, st.binary(max_size=1500)),
    st.builds(Ack, BLOCK),
    st.builds(Error, BLOCK, MESSAGE),
    st.builds(OptionAck, st.lists(st.tuples(NAME, NO_NUL_ASCII), min_size=1, max_size=6).map(tuple)),
)


@given(PACKETS)
def test_round_trip(packet: Packet) -> None:
    assert decode(encode(packet)) == packet


@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_codec_error(raw: bytes) -> None:
    try:
        packet = decode(raw)
    except CodecError:
        return
    assert decode(encode(packet)) == packet  # whatever decodes re-encodes to an equal packet


@given(st.sampled_from([1, 2, 3, 4, 5, 6]), st.binary(max_size=80))
def test_arbitrary_bodies_per_opcode_raise_only_codec_error(opcode: int, body: bytes) -> None:
    with contextlib.suppress(CodecError):
        decode(bytes([0, opcode]) + body)
