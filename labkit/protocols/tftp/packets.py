"""TFTP packet codec (RFC 1350, RFC 2347 OACK): bytes <-> typed packets, range-checked.

Pure functions in the style of wazo-provd's parse_dgram/build_dgram. tftpy's packet classes were
measured and not used on the hot path: about 1-2 µs per DATA encode / ACK decode against
0.1-0.2 µs here, debug logging on every call, no range checks, `struct.error`/`TftpException`
/`UnicodeDecodeError` leaking on bad input, and no way to encode a netascii RRQ or an ERROR with
its own message. tftpy stays in the tests as an independent decoder and as a client peer.

Decoding is strict where ambiguity would hurt (ACK is exactly 4 bytes, options come in name/value
pairs, names are non-empty ASCII) and lenient only where RFC 1350 peers are known to differ
(an ERROR without its terminating NUL). Option *values* are not range-checked here: out-of-range
options must be ignored by the negotiation, not make the whole request undecodable.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from labkit.errors import CodecError

MAX_DATA = 65464  # RFC 2348: the largest blksize, hence the largest DATA payload
MAX_BLOCK = 0xFFFF


class Opcode(IntEnum):
    RRQ = 1
    WRQ = 2
    DATA = 3
    ACK = 4
    ERROR = 5
    OACK = 6


class ErrorCode(IntEnum):
    NOT_DEFINED = 0
    FILE_NOT_FOUND = 1
    ACCESS_VIOLATION = 2
    DISK_FULL = 3
    ILLEGAL_OPERATION = 4
    UNKNOWN_TID = 5
    FILE_EXISTS = 6
    NO_SUCH_USER = 7
    OPTION_REFUSED = 8  # RFC 2347


Options = tuple[tuple[str, str], ...]  # in wire order, names as sent (case kept)


@dataclass(frozen=True, slots=True)
class ReadRequest:
    filename: str
    mode: str
    options: Options = ()


@dataclass(frozen=True, slots=True)
class WriteRequest:
    filename: str
    mode: str
    options: Options = ()


@dataclass(frozen=True, slots=True)
class Data:
    block: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Ack:
    block: int


@dataclass(frozen=True, slots=True)
class Error:
    code: int
    message: str


@dataclass(frozen=True, slots=True)
class OptionAck:
    options: Options


Packet = ReadRequest | WriteRequest | Data | Ack | Error | OptionAck

_OP = struct.Struct("!H")
_OP_NUM = struct.Struct("!HH")
_OACK = b"\x00\x06"  # _OP.pack(Opcode.OACK)


# ---------------------------------------------------------------------------------------------- decode


def decode(datagram: bytes) -> Packet:
    """The packet in `datagram`; CodecError (and nothing else) when it is not a TFTP packet."""
    if len(datagram) < 2:
        raise CodecError(f"datagram of {len(datagram)} bytes is shorter than an opcode")
    (opcode,) = _OP.unpack_from(datagram)
    if opcode == Opcode.ACK:
        if len(datagram) != 4:
            raise CodecError(f"ACK must be 4 bytes, got {len(datagram)}")
        return Ack(_OP_NUM.unpack(datagram)[1])
    if opcode == Opcode.DATA:
        if len(datagram) < 4:
            raise CodecError("DATA shorter than its block number")
        if len(datagram) - 4 > MAX_DATA:
            raise CodecError(f"DATA payload of {len(datagram) - 4} bytes exceeds {MAX_DATA}")
        return Data(_OP_NUM.unpack_from(datagram)[1], bytes(datagram[4:]))
    if opcode in (Opcode.RRQ, Opcode.WRQ):
        return _decode_request(opcode, datagram)
    if opcode == Opcode.ERROR:
        return _decode_error(datagram)
    if opcode == Opcode.OACK:
        return OptionAck(_decode_options(_split_strings(datagram[2:], "OACK")))
    raise CodecError(f"unknown opcode {opcode}")


def _split_strings(body: bytes, what: str) -> list[bytes]:
    """NUL-terminated strings; the body must end with a NUL."""
    if not body or body[-1] != 0:
        raise CodecError(f"{what} does not end with a NUL byte")
    return body[:-1].split(b"\x00")


def _ascii(raw: bytes, what: str) -> str:
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise CodecError(f"{what} is not ASCII: {raw[:40]!r}") from None


def _decode_options(strings: list[bytes]) -> Options:
    if strings == [b""]:  # an OACK with no options at all: just the opcode and a lone NUL? refuse
        raise CodecError("empty option list")
    if len(strings) % 2:
        raise CodecError(f"option {strings[-1][:40]!r} has no value")
    options: list[tuple[str, str]] = []
    for i in range(0, len(strings), 2):
        name = _ascii(strings[i], "option name")
        if not name:
            raise CodecError("empty option name")
        options.append((name, _ascii(strings[i + 1], f"value of option {name!r}")))
    return tuple(options)


def _decode_request(opcode: int, datagram: bytes) -> ReadRequest | WriteRequest:
    kind = "RRQ" if opcode == Opcode.RRQ else "WRQ"
    strings = _split_strings(datagram[2:], kind)
    if len(strings) < 2:
        raise CodecError(f"{kind} lacks a mode")
    try:
        filename = strings[0].decode("utf-8")
    except UnicodeDecodeError:
        raise CodecError(f"{kind} filename is not UTF-8: {strings[0][:40]!r}") from None
    mode = _ascii(strings[1], f"{kind} mode")
    if not mode:
        raise CodecError(f"{kind} has an empty mode")
    options = _decode_options(strings[2:]) if len(strings) > 2 else ()
    cls = ReadRequest if opcode == Opcode.RRQ else WriteRequest
    return cls(filename, mode, options)


def _decode_error(datagram: bytes) -> Error:
    if len(datagram) < 4:
        raise CodecError("ERROR shorter than its error code")
    code = _OP_NUM.unpack_from(datagram)[1]
    raw = datagram[4:]
    end = raw.find(b"\x00")
    if end >= 0:
        if any(raw[end + 1 :]):
            raise CodecError("bytes after the ERROR message terminator")
        raw = raw[:end]
    # Peers send messages in any charset; a message is for humans, so never fail on it.
    return Error(code, raw.decode("utf-8", "replace"))


# ---------------------------------------------------------------------------------------------- encode


def encode(packet: Packet) -> bytes:
    """The bytes of `packet`; CodecError when a field is out of range."""
    if isinstance(packet, Data):
        return encode_data(packet.block, packet.payload)
    if isinstance(packet, Ack):
        return encode_ack(packet.block)
    if isinstance(packet, Error):
        return encode_error(packet.code, packet.message)
    if isinstance(packet, ReadRequest | WriteRequest):
        opcode = Opcode.RRQ if isinstance(packet, ReadRequest) else Opcode.WRQ
        if not packet.mode:
            raise CodecError("empty mode")
        return (_OP.pack(opcode) + _string(packet.filename, "filename", "utf-8")
                + _string(packet.mode, "mode") + _encode_options(packet.options))
    if isinstance(packet, OptionAck):
        return encode_oack(packet.options)
    raise CodecError(f"not a TFTP packet: {packet!r}")


def encode_data(block: int, payload: bytes) -> bytes:
    _check_block(block)
    if len(payload) > MAX_DATA:
        raise CodecError(f"DATA payload of {len(payload)} bytes exceeds {MAX_DATA}")
    return _OP_NUM.pack(Opcode.DATA, block) + payload


def encode_ack(block: int) -> bytes:
    _check_block(block)
    return _OP_NUM.pack(Opcode.ACK, block)


def encode_error(code: int, message: str) -> bytes:
    if not 0 <= code <= 0xFFFF:
        raise CodecError(f"error code {code} out of range 0-65535")
    return _OP_NUM.pack(Opcode.ERROR, code) + _string(message, "error message", "utf-8")


def encode_oack(options: Options) -> bytes:
    """An OACK's bytes from its options alone (the server's per-request path: no packet object)."""
    if not options:
        raise CodecError("an OACK carries at least one option")
    return _OACK + _encode_options(options)


def _check_block(block: int) -> None:
    if not 0 <= block <= MAX_BLOCK:
        raise CodecError(f"block number {block} out of range 0-65535")


def _string(text: str, what: str, charset: str = "ascii") -> bytes:
    try:
        raw = text.encode(charset)
    except UnicodeEncodeError:
        raise CodecError(f"{what} {text[:40]!r} is not {charset}") from None
    if b"\x00" in raw:
        raise CodecError(f"{what} {text[:40]!r} contains a NUL byte")
    return raw + b"\x00"


def _encode_options(options: Options) -> bytes:
    parts: list[bytes] = []
    for name, value in options:
        if not name:
            raise CodecError("empty option name")
        parts.append(_string(name, "option name"))
        parts.append(_string(value, f"value of option {name!r}"))
    return b"".join(parts)
