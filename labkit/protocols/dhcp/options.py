"""Typed, reversible codec for the DHCPv4 options labkit sends and reads.

Pure: bytes and typed values in, bytes and typed values out; no I/O, no mutable globals.
Every failure on bad input is a `CodecError` whose message names the option and the fault.

Layers:
- `encode_value` / `decode_value`: one option payload (no code/length header) <-> a typed value;
- `encode_options` / `decode_options`: a run of TLVs, with RFC 3396 long-option splitting;
- `SubOption`, `VendorBlock`: the TLVs inside 43/82 and the RFC 3925 blocks inside 125;
- `Tr069` (option 43) and `Tr111` (option 125, enterprise 3561): typed views of the
  Broadband Forum sub-options, so that inventories declare them instead of hand-typing hex.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import AddressValueError, IPv4Address
from types import MappingProxyType
from typing import Any, ClassVar

from labkit.errors import CodecError

__all__ = [
    "BY_NAME",
    "END",
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

PAD = 0
END = 255
MAX_TLV_DATA = 255  # one length byte

# --------------------------------------------------------------------------- small helpers


def _is_int(value: object) -> bool:
    # bool is an int subclass; True as a lease time is a bug, not a value.
    return isinstance(value, int) and not isinstance(value, bool)


def _as_bytes(value: object, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise CodecError(f"{what} must be bytes, got {type(value).__name__}")


def _to_int(value: object, lo: int, hi: int, what: str) -> int:
    if isinstance(value, str):
        # Inventories are YAML; a quoted "3600" is still clearly a number.
        try:
            value = int(value.strip(), 10)
        except ValueError:
            raise CodecError(f"{what}: {value!r} is not a decimal integer") from None
    if not _is_int(value):
        raise CodecError(f"{what}: expected an integer, got {type(value).__name__}")
    assert isinstance(value, int)
    if not lo <= value <= hi:
        raise CodecError(f"{what}: {value} is out of range {lo}..{hi}")
    return value


def _check_text(text: object, what: str) -> str:
    """A canonical TEXT value: non-empty ASCII without NUL (RFC 2132 NVT ASCII)."""
    if not isinstance(text, str):
        raise CodecError(f"{what}: expected a string, got {type(text).__name__}")
    if not text:
        raise CodecError(f"{what}: empty string (at least one character is required)")
    if not text.isascii():
        bad = next(i for i, ch in enumerate(text) if not ch.isascii())
        raise CodecError(f"{what}: non-ASCII character {text[bad]!r} at position {bad}")
    if "\x00" in text:
        raise CodecError(f"{what}: NUL character at position {text.index(chr(0))}")
    return text


def _decode_text(data: bytes, what: str) -> str:
    # RFC 2132 s2: receivers must be prepared to delete trailing NULs; some clients send them.
    stripped = data.rstrip(b"\x00")
    if not stripped:
        raise CodecError(f"{what}: empty text")
    if b"\x00" in stripped:
        raise CodecError(f"{what}: NUL byte inside the text at offset {stripped.index(0)}")
    try:
        return stripped.decode("ascii")
    except UnicodeDecodeError as exc:
        raise CodecError(
            f"{what}: non-ASCII byte 0x{stripped[exc.start]:02x} at offset {exc.start}"
        ) from None


# --------------------------------------------------------------------------- sub-options


@dataclass(frozen=True)
class SubOption:
    """One TLV inside option 43, option 82, or an RFC 3925 vendor block (125)."""

    code: int
    data: bytes

    def __post_init__(self) -> None:
        if not _is_int(self.code) or not 0 <= self.code <= 255:
            raise CodecError(f"sub-option code {self.code!r} is out of range 0..255")
        data = _as_bytes(self.data, f"sub-option {self.code} data")
        if len(data) > MAX_TLV_DATA:
            raise CodecError(
                f"sub-option {self.code} data is {len(data)} bytes; at most 255 fit a TLV"
            )
        object.__setattr__(self, "data", data)


def _coerce_suboption(item: object) -> SubOption:
    if isinstance(item, SubOption):
        return item
    if isinstance(item, tuple) and len(item) == 2:
        code, data = item
        if isinstance(data, str):
            data = _check_text(data, f"sub-option {code}").encode("ascii")
        return SubOption(code, data)  # type: ignore[arg-type]  # validated by SubOption
    raise CodecError(f"expected a SubOption or a (code, data) pair, got {item!r}")


def _encode_tlvs(subs: Iterable[SubOption]) -> bytes:
    out = bytearray()
    for sub in subs:
        out += bytes((sub.code, len(sub.data))) + sub.data
    return bytes(out)


def _decode_tlvs(data: bytes, what: str) -> tuple[SubOption, ...]:
    """Plain TLVs, every byte pair is code+length.

    RFC 2132 s8.4 lets option 43 contain PAD/END, but TR-069 never uses them and treating
    0 and 255 as ordinary codes keeps decode/encode exactly reversible.
    """
    subs: list[SubOption] = []
    i = 0
    while i < len(data):
        if i + 2 > len(data):
            raise CodecError(f"{what}: sub-option {data[i]} at offset {i} has no length byte")
        code, length = data[i], data[i + 1]
        if i + 2 + length > len(data):
            raise CodecError(
                f"{what}: sub-option {code} at offset {i} claims {length} bytes, "
                f"only {len(data) - i - 2} left"
            )
        subs.append(SubOption(code, data[i + 2 : i + 2 + length]))
        i += 2 + length
    return tuple(subs)


def _subs_by_code(subs: Sequence[SubOption], allowed: range, what: str) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    for sub in subs:
        if not isinstance(sub, SubOption):
            raise CodecError(f"{what}: expected SubOption, got {type(sub).__name__}")
        if sub.code not in allowed:
            raise CodecError(
                f"{what}: sub-option {sub.code} is not defined "
                f"(expected {allowed.start}..{allowed.stop - 1})"
            )
        if sub.code in found:
            raise CodecError(f"{what}: sub-option {sub.code} appears twice")
        found[sub.code] = sub.data
    return found


# --------------------------------------------------------------------------- TR-069 (option 43)

# Wire encoding of TR-069 sub-options 3 and 4: ASCII decimal strings ("5", "2000"), like 1 and 2,
# not binary integers. Sources (searched, the TR-069 PDF itself was not readable here):
#  - devolo/tr069 gateway/inserts/bin/015_start_bind_and_dhcp.sh (the PR "Add ACS
#    autoconfiguration using DHCP option 125/43", devolo/tr069#3) builds option 43 sub 3/4 by
#    hex-dumping the printf'd decimal value;
#  - USP (TR-369) R-DIS.1a, quoted in BroadbandForum/usp#20, which carries the same DHCP fields
#    forward: "The Agent MUST decode all received options as strings (provisioning code, wait
#    interval, and interval multiplier are not decoded as numeric fields)."
# Counter-example seen: one vendor's CPE client parses its DHCPv6 equivalents with
# strtol(hex, 16), i.e. as binary. A binary value therefore does not decode as TR-069 here;
# explain.py then shows it as a plain "sub N".
_DECIMAL = re.compile(rb"[0-9]{1,10}")


def _check_ranged(value: object, lo: int, hi: int, what: str) -> int:
    if not _is_int(value):
        raise CodecError(f"{what}: expected an integer, got {type(value).__name__}")
    assert isinstance(value, int)
    if not lo <= value <= hi:
        raise CodecError(f"{what}: {value} is out of range {lo}..{hi}")
    return value


def _check_sub_text(value: object, what: str) -> str:
    text = _check_text(value, what)
    if len(text) > MAX_TLV_DATA:
        raise CodecError(f"{what}: {len(text)} characters; a sub-option holds at most 255")
    return text


def _decode_decimal(data: bytes, lo: int, hi: int, what: str) -> int:
    digits = data.rstrip(b"\x00")
    if not _DECIMAL.fullmatch(digits):
        raise CodecError(f"{what}: {data!r} is not an ASCII decimal number")
    return _check_ranged(int(digits), lo, hi, what)


@dataclass(frozen=True)
class Tr069:
    """Typed view of the TR-069 (Broadband Forum) sub-options of option 43."""

    acs_url: str | None = None  # sub 1, ManagementServer.URL
    provisioning_code: str | None = None  # sub 2, DeviceInfo.ProvisioningCode
    retry_min_wait: int | None = None  # sub 3, CWMPRetryMinimumWaitInterval (1..65535)
    retry_multiplier: int | None = None  # sub 4, CWMPRetryIntervalMultiplier (1000..65535)

    # Ranges from the TR-098/TR-181 data model of the two ManagementServer parameters.
    RETRY_MIN_WAIT: ClassVar[tuple[int, int]] = (1, 65535)
    RETRY_MULTIPLIER: ClassVar[tuple[int, int]] = (1000, 65535)

    def __post_init__(self) -> None:
        if self.acs_url is not None:
            _check_sub_text(self.acs_url, "TR-069 acs_url (sub 1)")
        if self.provisioning_code is not None:
            _check_sub_text(self.provisioning_code, "TR-069 provisioning_code (sub 2)")
        if self.retry_min_wait is not None:
            _check_ranged(
                self.retry_min_wait, *self.RETRY_MIN_WAIT, "TR-069 retry_min_wait (sub 3)"
            )
        if self.retry_multiplier is not None:
            _check_ranged(
                self.retry_multiplier, *self.RETRY_MULTIPLIER, "TR-069 retry_multiplier (sub 4)"
            )

    def to_suboptions(self) -> tuple[SubOption, ...]:
        subs: list[SubOption] = []
        if self.acs_url is not None:
            subs.append(SubOption(1, self.acs_url.encode("ascii")))
        if self.provisioning_code is not None:
            subs.append(SubOption(2, self.provisioning_code.encode("ascii")))
        if self.retry_min_wait is not None:
            subs.append(SubOption(3, str(self.retry_min_wait).encode("ascii")))
        if self.retry_multiplier is not None:
            subs.append(SubOption(4, str(self.retry_multiplier).encode("ascii")))
        return tuple(subs)

    @classmethod
    def from_suboptions(cls, subs: Sequence[SubOption]) -> Tr069:
        found = _subs_by_code(subs, range(1, 5), "TR-069 option 43")
        return cls(
            acs_url=_decode_text(found[1], "TR-069 sub 1 (ACS URL)") if 1 in found else None,
            provisioning_code=(
                _decode_text(found[2], "TR-069 sub 2 (ProvisioningCode)") if 2 in found else None
            ),
            retry_min_wait=(
                _decode_decimal(found[3], *cls.RETRY_MIN_WAIT, "TR-069 sub 3 (retry min wait)")
                if 3 in found
                else None
            ),
            retry_multiplier=(
                _decode_decimal(found[4], *cls.RETRY_MULTIPLIER, "TR-069 sub 4 (retry multiplier)")
                if 4 in found
                else None
            ),
        )


# --------------------------------------------------------------------------- option 125 (RFC 3925)


@dataclass(frozen=True)
class VendorBlock:
    """One RFC 3925 V-I vendor-specific block: enterprise u32, data-len u8, sub-option TLVs."""

    enterprise: int
    suboptions: tuple[SubOption, ...]

    def __post_init__(self) -> None:
        if not _is_int(self.enterprise) or not 0 <= self.enterprise <= 0xFFFFFFFF:
            raise CodecError(f"enterprise number {self.enterprise!r} is out of range 0..2**32-1")
        if isinstance(self.suboptions, str | bytes) or not isinstance(self.suboptions, Iterable):
            raise CodecError(f"enterprise {self.enterprise}: suboptions must be a sequence")
        # Accept a list but store a tuple, so that blocks stay hashable and compare equal.
        subs = tuple(_coerce_suboption(s) for s in self.suboptions)
        size = sum(2 + len(s.data) for s in subs)
        if size > MAX_TLV_DATA:
            raise CodecError(
                f"vendor block for enterprise {self.enterprise} is too long: its sub-options "
                f"take {size} bytes, RFC 3925 allows at most 255"
            )
        object.__setattr__(self, "suboptions", subs)

    def data(self) -> bytes:
        """The block's data field (the sub-option TLVs)."""
        return _encode_tlvs(self.suboptions)


_OUI = re.compile(r"[0-9A-Fa-f]{6}")


def _check_oui(value: object, what: str) -> str:
    text = _check_sub_text(value, what)
    if not _OUI.fullmatch(text):
        raise CodecError(f"{what}: {text!r} is not an OUI (6 hexadecimal digits)")
    return text


@dataclass(frozen=True)
class Tr111:
    """Typed view of option 125 enterprise 3561 (Broadband Forum TR-111) sub-options 1..6."""

    manufacturer_oui: str | None = None  # 1 DeviceManufacturerOUI
    serial_number: str | None = None  # 2 DeviceSerialNumber
    product_class: str | None = None  # 3 DeviceProductClass
    gateway_manufacturer_oui: str | None = None  # 4 GatewayManufacturerOUI
    gateway_serial_number: str | None = None  # 5 GatewaySerialNumber
    gateway_product_class: str | None = None  # 6 GatewayProductClass
    ENTERPRISE: ClassVar[int] = 3561  # IANA PEN of the Broadband Forum (ex DSL Forum)
    _FIELDS: ClassVar[tuple[str, ...]] = (
        "manufacturer_oui",
        "serial_number",
        "product_class",
        "gateway_manufacturer_oui",
        "gateway_serial_number",
        "gateway_product_class",
    )

    def __post_init__(self) -> None:
        for code, name in enumerate(self._FIELDS, start=1):
            value = getattr(self, name)
            if value is None:
                continue
            what = f"TR-111 {name} (sub {code})"
            if name.endswith("manufacturer_oui"):
                _check_oui(value, what)
            else:
                _check_sub_text(value, what)

    def to_block(self) -> VendorBlock:
        subs = [
            SubOption(code, getattr(self, name).encode("ascii"))
            for code, name in enumerate(self._FIELDS, start=1)
            if getattr(self, name) is not None
        ]
        return VendorBlock(self.ENTERPRISE, tuple(subs))

    @classmethod
    def from_block(cls, block: VendorBlock) -> Tr111:
        if not isinstance(block, VendorBlock):
            raise CodecError(f"expected a VendorBlock, got {type(block).__name__}")
        if block.enterprise != cls.ENTERPRISE:
            raise CodecError(f"TR-111 lives in enterprise {cls.ENTERPRISE}, not {block.enterprise}")
        found = _subs_by_code(block.suboptions, range(1, 7), "TR-111 option 125")
        values = {
            name: _decode_text(found[code], f"TR-111 sub {code} ({name})")
            for code, name in enumerate(cls._FIELDS, start=1)
            if code in found
        }
        return cls(**values)


# --------------------------------------------------------------------------- option table


class Kind(enum.Enum):
    """How an option payload maps to a Python value."""

    IPV4 = "ipv4"  # IPv4Address
    IPV4_LIST = "ipv4_list"  # tuple[IPv4Address, ...], at least one
    TEXT = "text"  # str, ASCII, no NUL, non-empty
    UINT8 = "uint8"  # int
    UINT16 = "uint16"  # int
    UINT32 = "uint32"  # int
    INT32 = "int32"  # int (signed)
    UINT8_LIST = "uint8_list"  # tuple[int, ...], at least one
    BYTES = "bytes"  # bytes
    SUBOPTIONS = "suboptions"  # tuple[SubOption, ...]
    VIVSO = "vivso"  # tuple[VendorBlock, ...] (RFC 3925)


@dataclass(frozen=True)
class OptionSpec:
    code: int
    name: str  # snake_case inventory key
    title: str  # human title
    kind: Kind


_SPEC_LIST: tuple[OptionSpec, ...] = (
    OptionSpec(1, "subnet_mask", "Subnet mask", Kind.IPV4),
    OptionSpec(2, "time_offset", "Time offset", Kind.INT32),
    OptionSpec(3, "routers", "Routers", Kind.IPV4_LIST),
    OptionSpec(6, "dns_servers", "DNS servers", Kind.IPV4_LIST),
    OptionSpec(7, "log_servers", "Log servers", Kind.IPV4_LIST),
    OptionSpec(12, "host_name", "Host name", Kind.TEXT),
    OptionSpec(15, "domain_name", "Domain name", Kind.TEXT),
    OptionSpec(28, "broadcast_address", "Broadcast address", Kind.IPV4),
    OptionSpec(42, "ntp_servers", "NTP servers", Kind.IPV4_LIST),
    OptionSpec(43, "vendor_specific", "Vendor-specific information", Kind.SUBOPTIONS),
    OptionSpec(50, "requested_address", "Requested IP address", Kind.IPV4),
    OptionSpec(51, "lease_time", "IP address lease time", Kind.UINT32),
    OptionSpec(52, "overload", "Option overload", Kind.UINT8),
    OptionSpec(53, "message_type", "DHCP message type", Kind.UINT8),
    OptionSpec(54, "server_id", "Server identifier", Kind.IPV4),
    OptionSpec(55, "parameter_request_list", "Parameter request list", Kind.UINT8_LIST),
    OptionSpec(57, "max_message_size", "Maximum DHCP message size", Kind.UINT16),
    OptionSpec(58, "renewal_time", "Renewal (T1) time", Kind.UINT32),
    OptionSpec(59, "rebinding_time", "Rebinding (T2) time", Kind.UINT32),
    OptionSpec(60, "vendor_class", "Vendor class identifier", Kind.TEXT),
    OptionSpec(61, "client_id", "Client identifier", Kind.BYTES),
    OptionSpec(66, "tftp_server_name", "TFTP server name", Kind.TEXT),
    OptionSpec(82, "relay_agent_info", "Relay agent information", Kind.SUBOPTIONS),
    OptionSpec(125, "vendor_identifying", "V-I vendor-specific information", Kind.VIVSO),
    OptionSpec(150, "tftp_servers", "TFTP server addresses", Kind.IPV4_LIST),
    # IANA lists 159 as OPTION_V4_PORTPARAMS (RFC 7618) and 160 as the deprecated captive-portal
    # option (RFC 7710); Cisco MPP phones use both as text "provisioning server/URL".
    OptionSpec(159, "provisioning_server", "Provisioning server (Cisco MPP)", Kind.TEXT),
    OptionSpec(160, "provisioning_url", "Provisioning URL (Cisco MPP)", Kind.TEXT),
)

SPECS: Mapping[int, OptionSpec] = MappingProxyType({s.code: s for s in _SPEC_LIST})
BY_NAME: Mapping[str, OptionSpec] = MappingProxyType({s.name: s for s in _SPEC_LIST})


def spec_for(code: int) -> OptionSpec:
    """The spec of `code`; codes we do not know are opaque bytes."""
    if not _is_int(code) or not 0 <= code <= 255:
        raise CodecError(f"option code {code!r} is out of range 0..255")
    spec = SPECS.get(code)
    if spec is None:
        return OptionSpec(code, f"option_{code}", f"Option {code}", Kind.BYTES)
    return spec


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
    return _check_text(value, what).encode("ascii")


def _int_codec(
    size: int, signed: bool
) -> tuple[Callable[[object, str], bytes], Callable[[bytes, str], int]]:
    bits = 8 * size
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)

    def enc(value: object, what: str) -> bytes:
        return _to_int(value, lo, hi, what).to_bytes(size, "big", signed=signed)

    def dec(data: bytes, what: str) -> int:
        if len(data) != size:
            raise CodecError(f"{what}: expected {size} byte(s), got {len(data)}")
        return int.from_bytes(data, "big", signed=signed)

    return enc, dec


def _enc_uint8_list(value: object, what: str) -> bytes:
    items = list(value) if isinstance(value, bytes | bytearray) else _items(value, what)
    if not items:
        raise CodecError(f"{what}: the list is empty (at least one entry is required)")
    return bytes(_to_int(item, 0, 255, what) for item in items)


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
    return _as_bytes(value, what)


def _dec_bytes(data: bytes, what: str) -> bytes:
    return data


def _enc_suboptions(value: object, what: str) -> bytes:
    if isinstance(value, Tr069):
        return _encode_tlvs(value.to_suboptions())
    if isinstance(value, SubOption):
        return _encode_tlvs((value,))
    if isinstance(value, Mapping):
        pairs: Iterable[object] = list(value.items())
    elif isinstance(value, Iterable) and not isinstance(value, str | bytes | bytearray):
        pairs = value
    else:
        raise CodecError(f"{what}: expected sub-options, got {type(value).__name__}")
    return _encode_tlvs(_coerce_suboption(item) for item in pairs)


def _dec_suboptions(data: bytes, what: str) -> tuple[SubOption, ...]:
    return _decode_tlvs(data, what)


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
        subs = _decode_tlvs(data[i + 5 : i + 5 + length], f"{what} enterprise {enterprise}")
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
        Kind.TEXT: _decode_text,
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
    return _DECODERS[spec.kind](_as_bytes(data, what), what)


# --------------------------------------------------------------------------- TLV runs


def encode_options(options: Iterable[tuple[int, bytes]]) -> bytes:
    """(code, payload) pairs -> TLVs in the given order, without END.

    A payload longer than 255 bytes becomes several consecutive TLVs of the same code
    (RFC 3396); an empty payload becomes a zero-length TLV.
    """
    out = bytearray()
    for code, payload in options:
        # the common case first, on every reply the server sends: a short bytes payload
        short = type(payload) is bytes and 0 < len(payload) <= MAX_TLV_DATA
        if short and type(code) is int and 0 < code < 255:
            out.append(code)
            out.append(len(payload))
            out += payload
            continue
        if not _is_int(code) or not 1 <= code <= 254:
            raise CodecError(
                f"option code {code!r} cannot be sent (valid: 1..254; 0 is PAD, 255 is END)"
            )
        data = _as_bytes(payload, f"option {code} payload")
        if not data:
            out += bytes((code, 0))
        for start in range(0, len(data), MAX_TLV_DATA):
            chunk = data[start : start + MAX_TLV_DATA]
            out += bytes((code, len(chunk))) + chunk
    return bytes(out)


def decode_options(data: bytes) -> dict[int, bytes]:
    """TLVs -> {code: payload}, skipping PAD, stopping at END.

    Repeated codes are concatenated in order (RFC 3396); the dict keeps first-appearance order.
    """
    data = _as_bytes(data, "options")
    found: dict[int, bytes] = {}
    size = len(data)
    i = 0
    while i < size:
        code = data[i]
        if code == PAD:
            i += 1
            continue
        if code == END:
            break
        if i + 2 > size:
            raise CodecError(f"option {code} at offset {i} has no length byte")
        end = i + 2 + data[i + 1]
        if end > size:
            raise CodecError(
                f"option {code} at offset {i} claims {data[i + 1]} bytes, only {size - i - 2} left"
            )
        payload = data[i + 2 : end]
        # a repeated code is a long option split in parts (RFC 3396): rare, so join only then
        found[code] = found[code] + payload if code in found else payload
        i = end
    return found
