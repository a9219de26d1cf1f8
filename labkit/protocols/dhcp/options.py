"""Typed, reversible codec for the DHCPv4 options labkit sends and reads.

Pure: bytes and typed values in, bytes and typed values out; no I/O, no mutable globals.
Every failure on bad input is a `CodecError` whose message names the option and the fault.

Layers (one module each; this one is the value codec and re-exports the rest):
- `encode_value` / `decode_value` (here): one option payload (no code/length header) <-> a typed
  value, by the option's kind;
- `kinds`: the option kinds table (`Kind`, `OptionSpec`, `SPECS`, `BY_NAME`, `spec_for`);
- `tlv`: `encode_options` / `decode_options`, a run of TLVs with RFC 3396 long-option
  splitting, and `SubOption`, the TLVs inside 43/82;
- `vendor`: `VendorBlock` (RFC 3925 blocks inside 125), `Tr069` (option 43) and `Tr111`
  (option 125, enterprise 3561), typed views of the Broadband Forum sub-options.
"""


from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from ipaddress import AddressValueError, IPv4Address
from types import MappingProxyType
from typing import Any

from labkit.errors import CodecError
from labkit.protocols.dhcp.kinds import BY_NAME, SPECS, Kind, OptionSpec, spec_for
from labkit.protocols.dhcp.tlv import (
    END,
    MAX_TLV_DATA,
    PAD,
    SubOption,
    as_bytes,
    check_text,
    coerce_suboption,
    decode_options,
    decode_text,
    decode_tlvs,
    encode_options,
    encode_tlvs,
    to_int,
)
from labkit.protocols.dhcp.vendor import Tr069, Tr111, VendorBlock

__all__ = [
    "BY_NAME",
    "END",
    "MAX_TLV_DATA",
    "PAD",
    "SPECS",
    "Kind",
    "OptionSpec",
    "SubOption",
    "Tr069",
    "Tr111",
    "VendorBlock",
    "decode_options",
    "decode_value",
    "encode_options",
    "encode_value",
    "spec_for",
]


# --------------------------------------------------------------------------- per-kind codecs


def _to_ipv4(value: object, what: str) -> IPv4Address:
    if isinstance(value, IPv4Address):
        return value
    if isinstance(value, str):
        try:
            return IPv4Address(value.strip())
        except (AddressValueError, ValueError):
            raise CodecError(f"{what}: {value!r} is not an IPv4 address") from None
    raise CodecError(f"{what}: expected an IPv4 address, got {type(value).__name__}")


def _items(value: object, what: str) -> list[Any]:
    """A list from a list/tuple/iterable, or from a comma-separated string."""
    if isinstance(value, str):
        return [part for part in (p.strip() for p in value.split(",")) if part]
    if isinstance(value, Iterable) and not isinstance(value, bytes | bytearray | Mapping):
        return list(value)
    raise CodecError(f"{what}: expected a list, got {type(value).__name__}")


def _enc_ipv4(value: object, what: str) -> bytes:
    return _to_ipv4(value, what).packed


def _dec_ipv4(data: bytes, what: str) -> IPv4Address:
    if len(data) != 4:
        raise CodecError(f"{what}: an IPv4 address is 4 bytes, got {len(data)}")
    return IPv4Address(data)


def _enc_ipv4_list(value: object, what: str) -> bytes:
    items = [value] if isinstance(value, IPv4Address) else _items(value, what)
    if not items:
        raise CodecError(f"{what}: the address list is empty (at least one is required)")
    return b"".join(_to_ipv4(item, what).packed for item in items)


def _dec_ipv4_list(data: bytes, what: str) -> tuple[IPv4Address, ...]:
    if not data or len(data) % 4:
        raise CodecError(
            f"{what}: an address list is a non-zero multiple of 4 bytes, got {len(data)}"
        )
    return tuple(IPv4Address(data[i : i + 4]) for i in range(0, len(data), 4))


def _enc_text(value: object, what: str) -> bytes:
    return check_text(value, what).encode("ascii")


def _int_codec(
    size: int, signed: bool
) -> tuple[Callable[[object, str], bytes], Callable[[bytes, str], int]]:
    bits = 8 * size
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)

    def enc(value: object, what: str) -> bytes:
        return to_int(value, lo, hi, what).to_bytes(size, "big", signed=signed)

    def dec(data: bytes, what: str) -> int:
        if len(data) != size:
            raise CodecError(f"{what}: expected {size} byte(s), got {len(data)}")
        return int.from_bytes(data, "big", signed=signed)

    return enc, dec


def _enc_uint8_list(value: object, what: str) -> bytes:
    items = list(value) if isinstance(value, bytes | bytearray) else _items(value, what)
    if not items:
        raise CodecError(f"{what}: the list is empty (at least one entry is required)")
    return bytes(to_int(item, 0, 255, what) for item in items)


def _dec_uint8_list(data: bytes, what: str) -> tuple[int, ...]:
    if not data:
        raise CodecError(f"{what}: the list is empty (at least one entry is required)")
    return tuple(data)


def _enc_bytes(value: object, what: str) -> bytes:
    if isinstance(value, str):
        # Hex text such as "01:00:11:22:33:44:55" (the usual way to write a client id).
        cleaned = re.sub(r"[\s:.\-]", "", value)
        try:
            return bytes.fromhex(cleaned)
        except ValueError:
            raise CodecError(f"{what}: {value!r} is not hexadecimal text") from None
    return as_bytes(value, what)


def _dec_bytes(data: bytes, what: str) -> bytes:
    return data


def _enc_suboptions(value: object, what: str) -> bytes:
    if isinstance(value, Tr069):
        return encode_tlvs(value.to_suboptions())
    if isinstance(value, SubOption):
        return encode_tlvs((value,))
    if isinstance(value, Mapping):
        pairs: Iterable[object] = list(value.items())
    elif isinstance(value, Iterable) and not isinstance(value, str | bytes | bytearray):
        pairs = value
    else:
        raise CodecError(f"{what}: expected sub-options, got {type(value).__name__}")
    return encode_tlvs(coerce_suboption(item) for item in pairs)


def _dec_suboptions(data: bytes, what: str) -> tuple[SubOption, ...]:
    return decode_tlvs(data, what)


def _coerce_block(item: object) -> VendorBlock:
    if isinstance(item, VendorBlock):
        return item
    if isinstance(item, Tr111):
        return item.to_block()
    if isinstance(item, tuple) and len(item) == 2:
        return VendorBlock(*item)
    raise CodecError(
        f"expected a VendorBlock, a Tr111 or an (enterprise, sub-options) pair, got {item!r}"
    )


def _enc_vivso(value: object, what: str) -> bytes:
    if isinstance(value, VendorBlock | Tr111):
        value = (value,)
    if not isinstance(value, Iterable) or isinstance(value, str | bytes | bytearray):
        raise CodecError(f"{what}: expected vendor blocks, got {type(value).__name__}")
    out = bytearray()
    for item in value:
        block = _coerce_block(item)
        data = block.data()
        out += block.enterprise.to_bytes(4, "big") + bytes((len(data),)) + data
    return bytes(out)


def _dec_vivso(data: bytes, what: str) -> tuple[VendorBlock, ...]:
    blocks: list[VendorBlock] = []
    i = 0
    while i < len(data):
        if i + 5 > len(data):
            raise CodecError(
                f"{what}: vendor block at offset {i} is cut short ({len(data) - i} bytes)"
            )
        enterprise = int.from_bytes(data[i : i + 4], "big")
        length = data[i + 4]
        if i + 5 + length > len(data):
            raise CodecError(
                f"{what}: block of enterprise {enterprise} at offset {i} claims {length} bytes, "
                f"only {len(data) - i - 5} left"
            )
        subs = decode_tlvs(data[i + 5 : i + 5 + length], f"{what} enterprise {enterprise}")
        blocks.append(VendorBlock(enterprise, subs))
        i += 5 + length
    return tuple(blocks)


_ENCODERS: Mapping[Kind, Callable[[object, str], bytes]]
_DECODERS: Mapping[Kind, Callable[[bytes, str], Any]]
_u8, _u16, _u32, _i32 = (
    _int_codec(1, False),
    _int_codec(2, False),
    _int_codec(4, False),
    _int_codec(4, True),
)
_ENCODERS = MappingProxyType(
    {
        Kind.IPV4: _enc_ipv4,
        Kind.IPV4_LIST: _enc_ipv4_list,
        Kind.TEXT: _enc_text,
        Kind.UINT8: _u8[0],
        Kind.UINT16: _u16[0],
        Kind.UINT32: _u32[0],
        Kind.INT32: _i32[0],
        Kind.UINT8_LIST: _enc_uint8_list,
        Kind.BYTES: _enc_bytes,
        Kind.SUBOPTIONS: _enc_suboptions,
        Kind.VIVSO: _enc_vivso,
    }
)
_DECODERS = MappingProxyType(
    {
        Kind.IPV4: _dec_ipv4,
        Kind.IPV4_LIST: _dec_ipv4_list,
        Kind.TEXT: decode_text,
        Kind.UINT8: _u8[1],
        Kind.UINT16: _u16[1],
        Kind.UINT32: _u32[1],
        Kind.INT32: _i32[1],
        Kind.UINT8_LIST: _dec_uint8_list,
        Kind.BYTES: _dec_bytes,
        Kind.SUBOPTIONS: _dec_suboptions,
        Kind.VIVSO: _dec_vivso,
    }
)


def encode_value(code: int, value: object) -> bytes:
    """Typed value -> option payload (no code/length header; may exceed 255 bytes)."""
    spec = spec_for(code)
    return _ENCODERS[spec.kind](value, f"option {code} {spec.name}")


def decode_value(code: int, data: bytes) -> Any:
    """Option payload -> canonical typed value (the inverse of `encode_value`)."""
    spec = spec_for(code)
    what = f"option {code} {spec.name}"
    return _DECODERS[spec.kind](as_bytes(data, what), what)
