"""BOOTP/DHCP messages (RFC 2131 §2, RFC 2132 §9.3, RFC 3396): parse and build, pure.

Parsing tolerates option overload (52: options continue in `file`, then `sname`) and long
options split into several TLVs, joined in the order RFC 3396 gives (options, file, sname).
Building splits long options, overloads into `file`/`sname` when the client's maximum message
size requires it, and pads to the 300-byte BOOTP minimum that old clients expect.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from ipaddress import IPv4Address
from typing import Any

from labkit.errors import CodecError
from labkit.protocols.dhcp.options import decode_options, encode_options

MAGIC = b"\x63\x82\x53\x63"
FIXED = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")  # 236 bytes
HEADER_SIZE = FIXED.size + len(MAGIC)  # 240
BOOTP_MIN = 300
DEFAULT_MAX_SIZE = 576  # every client must accept this (RFC 2131 §2)
BROADCAST_FLAG = 0x8000
BOOTREQUEST, BOOTREPLY = 1, 2

DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)
MESSAGE_TYPES = {DISCOVER: "DISCOVER", OFFER: "OFFER", REQUEST: "REQUEST", DECLINE: "DECLINE", ACK: "ACK",
                 NAK: "NAK", RELEASE: "RELEASE", INFORM: "INFORM"}
OVERLOAD = 52
ZERO = IPv4Address(0)
_ZERO_BYTES = bytes(4)
ADDRESS_CACHE = 4096  # address fields kept as objects (relays and renewing clients repeat)
_ADDRESS_FIELDS = ("ciaddr", "yiaddr", "siaddr", "giaddr")
OCTETS = tuple(str(n) for n in range(256))  # an address's text from these: a third less than inet_ntoa


def dotted(number: int) -> str:
    """str(IPv4Address(number)) for 0 <= number < 2**32 (glibc's inet_ntoa goes through snprintf)."""
    o = OCTETS
    return f"{o[number >> 24]}.{o[number >> 16 & 255]}.{o[number >> 8 & 255]}.{o[number & 255]}"


class DhcpDecodeError(CodecError):
    """A datagram that is not a DHCP message we can read."""


@dataclass(frozen=True)
class Message:
    op: int
    xid: int
    chaddr: bytes  # hardware address, `hlen` bytes (6 for Ethernet)
    htype: int = 1
    hops: int = 0
    secs: int = 0
    flags: int = 0
    ciaddr: IPv4Address = ZERO
    yiaddr: IPv4Address = ZERO
    siaddr: IPv4Address = ZERO
    giaddr: IPv4Address = ZERO
    sname: bytes = b""  # when not overloaded
    file: bytes = b""
    options: dict[int, bytes] = field(default_factory=dict)  # code -> payload, in wire order

    def __post_init__(self) -> None:
        # a zero address field is always the ZERO object, so a core may ask `is ZERO` (no __eq__)
        for name in _ADDRESS_FIELDS:
            if getattr(self, name) == ZERO:
                object.__setattr__(self, name, ZERO)

    @property
    def message_type(self) -> int | None:
        value = self.options.get(53)
        return value[0] if value and len(value) == 1 else None

    @property
    def type_name(self) -> str:
        kind = self.message_type
        return MESSAGE_TYPES.get(kind, f"type {kind}") if kind is not None else "BOOTP"

    @property
    def broadcast(self) -> bool:
        return bool(self.flags & BROADCAST_FLAG)

    @cached_property
    def mac(self) -> str:
        return self.chaddr.hex(":")  # asked several times per message on the hot path: made once

    def ip_option(self, code: int) -> IPv4Address | None:
        value = self.options.get(code)
        return address(value) if value is not None and len(value) == 4 else None

    def text_option(self, code: int) -> str | None:
        value = self.options.get(code)
        if value is None:
            return None
        return value.rstrip(b"\x00").decode("ascii", errors="replace")

    def requested_options(self) -> list[int]:
        return list(self.options.get(55, b""))


def parse(data: bytes) -> Message:
    """Read a BOOTP/DHCP message; DhcpDecodeError on anything malformed."""
    if len(data) < HEADER_SIZE:
        raise DhcpDecodeError(f"{len(data)} bytes is shorter than the {HEADER_SIZE}-byte header")
    (op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr, sname,
     file) = FIXED.unpack_from(data)
    if op not in (BOOTREQUEST, BOOTREPLY):
        raise DhcpDecodeError(f"op {op} is neither BOOTREQUEST nor BOOTREPLY")
    if hlen > 16:
        raise DhcpDecodeError(f"hardware address length {hlen} exceeds 16")
    if data[FIXED.size:HEADER_SIZE] != MAGIC:
        raise DhcpDecodeError("no DHCP magic cookie")
    options = _tlvs(data[HEADER_SIZE:], "options")
    overload = options.get(OVERLOAD)
    sname_field, file_field = sname, file
    if overload is not None:
        if len(overload) != 1 or overload[0] not in (1, 2, 3):
            raise DhcpDecodeError("option 52 (overload) must be one byte 1, 2 or 3")
        # RFC 3396 order: options, then file, then sname; a code seen again continues its value
        if overload[0] & 1:
            _continue(options, _tlvs(file, "file"))
            file_field = b""
        if overload[0] & 2:
            _continue(options, _tlvs(sname, "sname"))
            sname_field = b""
        del options[OVERLOAD]  # a wire-level detail: `build` decides overload again
    hardware = chaddr[:hlen]
    return _message({"op": op, "xid": xid, "chaddr": hardware, "htype": htype, "hops": hops, "secs": secs,
                     "flags": flags, "ciaddr": address(ciaddr), "yiaddr": address(yiaddr),
                     "siaddr": address(siaddr), "giaddr": address(giaddr),
                     "sname": sname_field.split(b"\x00", 1)[0], "file": file_field.split(b"\x00", 1)[0],
                     "options": options, "mac": hardware.hex(":")})


def native_parser(module: Any) -> Callable[[bytes], Message]:
    """`parse` through labkit.native._dhcp (`module`): the same Message, one C call for the common
    case; anything else (malformed, overloaded, an option split in parts) goes to `parse` itself."""
    fast, cache, make, new_address = module.parse, _addresses, _message, address_maker(module)
    if _PLAIN:  # the C call makes the Message itself: its fields become the new object's __dict__

        def parse_message(data: bytes) -> Message:
            message = fast(data, ZERO, cache, new_address, Message)
            return parse(data) if message is None else message

        return parse_message

    def parse_native(data: bytes) -> Message:
        fields = fast(data, ZERO, cache, address)
        return parse(data) if fields is None else make(fields)

    return parse_native


def _message_factory() -> tuple[Any, bool]:
    """`_message(fields)`: the Message `Message(**fields)` makes, without the frozen __init__'s one
    object.__setattr__ per field (14 of them, a quarter of parsing). Falls back to the constructor
    if Message is ever not the plain frozen dataclass this relies on."""
    names = tuple(Message.__dataclass_fields__)
    if "__slots__" in vars(Message) or len(names) != 14 or "__new__" in vars(Message):
        return lambda fields: Message(**{k: v for k, v in fields.items() if k != "mac"}), False
    new, set_attribute = object.__new__, object.__setattr__

    def make(fields: dict[str, Any]) -> Message:
        message = new(Message)
        set_attribute(message, "__dict__", fields)  # "mac" too: the cached property's value
        return message

    return make, True


_message, _PLAIN = _message_factory()  # _PLAIN: a Message is object.__new__ plus its __dict__
_addresses: dict[bytes, IPv4Address] = {}


def address(raw: bytes) -> IPv4Address:
    """The address object for 4 bytes: ZERO itself for 0.0.0.0 (most fields), else from a bounded
    cache (building an IPv4Address costs more than parsing the rest of the header)."""
    if raw == _ZERO_BYTES:
        return ZERO
    found = _addresses.get(raw)
    if found is None:
        found = _remember(raw, IPv4Address(raw))
    return found


def _remember(raw: bytes, made: IPv4Address) -> IPv4Address:
    """`made` kept in the bounded cache as the object for `raw` (the cache starts again when full)."""
    if len(_addresses) >= ADDRESS_CACHE:
        _addresses.clear()
    _addresses[raw] = made
    return made


def address_maker(module: Any) -> Callable[[bytes], IPv4Address]:
    """`address`, with the objects it adds to the cache made by labkit.native._dhcp's Maker (the
    `_ip` slot filled: IPv4Address's __init__ costs as much as parsing a message), when
    IPv4Address keeps its int in that slot as CPython's does; else `address` itself."""
    try:
        fill = module.Maker(IPv4Address, ("_ip",))
        if fill(0xC0000201) != IPv4Address("192.0.2.1") or str(fill(1)) != "0.0.0.1":
            return address
    except (TypeError, ValueError):
        return address

    def make(raw: bytes) -> IPv4Address:
        found = _addresses.get(raw)
        if found is None:
            if raw == _ZERO_BYTES or len(raw) != 4:
                return address(raw)
            found = _remember(raw, fill(int.from_bytes(raw, "big")))
        return found

    return make


def _tlvs(region: bytes, where: str) -> dict[int, bytes]:
    try:
        return decode_options(region) if region else {}
    except CodecError as exc:
        raise DhcpDecodeError(f"{where}: {exc}") from None


def _continue(options: dict[int, bytes], more: dict[int, bytes]) -> None:
    for code, payload in more.items():
        options[code] = options.get(code, b"") + payload


def build(message: Message, *, max_size: int = DEFAULT_MAX_SIZE) -> bytes:
    """Encode `message`; options that do not fit overload `file`, then `sname` (RFC 2131 §4.1)."""
    options = [(c, p) for c, p in message.options.items() if c != OVERLOAD]
    room = max(max_size, DEFAULT_MAX_SIZE) - HEADER_SIZE - 1  # 1 for END
    encoded = encode_options(options)
    sname, file = message.sname, message.file
    if len(encoded) <= room:
        body = encoded + b"\xff"
    else:
        body, file, sname = _overload(options, room, bool(sname), bool(file))
    header = FIXED.pack(message.op, message.htype, len(message.chaddr), message.hops, message.xid,
                        message.secs, message.flags, message.ciaddr.packed, message.yiaddr.packed,
                        message.siaddr.packed, message.giaddr.packed, message.chaddr.ljust(16, b"\x00"),
                        sname.ljust(64, b"\x00"), file.ljust(128, b"\x00"))
    wire = header + MAGIC + body
    return wire.ljust(BOOTP_MIN, b"\x00")


def _overload(options: list[tuple[int, bytes]], room: int, sname_used: bool,
              file_used: bool) -> tuple[bytes, bytes, bytes]:
    """Spread whole TLVs over options, file and sname; CodecError when even that is too small."""
    if file_used and sname_used:
        raise CodecError("the options do not fit and file and sname are both in use")
    tlvs = [encode_options([item]) for item in options]
    regions: list[tuple[str, int]] = [("options", room - 3)]  # 3 for option 52 itself
    if not file_used:
        regions.append(("file", 128 - 1))
    if not sname_used:
        regions.append(("sname", 64 - 1))
    filled: dict[str, bytearray] = {name: bytearray() for name, _ in regions}
    index = 0
    for name, capacity in regions:
        while index < len(tlvs) and len(filled[name]) + len(tlvs[index]) <= capacity:
            filled[name] += tlvs[index]
            index += 1
    if index < len(tlvs):
        raise CodecError("the options do not fit the client's maximum message size even overloaded")
    flag = (1 if filled.get("file") else 0) | (2 if filled.get("sname") else 0)
    body = bytes(filled["options"]) + (bytes([OVERLOAD, 1, flag]) if flag else b"") + b"\xff"
    file = bytes(filled["file"]) + b"\xff" if filled.get("file") else b""
    sname = bytes(filled["sname"]) + b"\xff" if filled.get("sname") else b""
    return body, file, sname


def reply_to(request: Message, message_type: int, *, yiaddr: IPv4Address = ZERO,
             options: Iterable[tuple[int, bytes]] = (), siaddr: IPv4Address = ZERO) -> Message:
    """A BOOTREPLY for `request` (xid, flags, giaddr, chaddr copied; option 82 echoed, RFC 3046)."""
    opts: dict[int, bytes] = {53: bytes([message_type])}
    for code, payload in options:
        opts.setdefault(code, payload)
    if 82 in request.options:
        opts[82] = request.options[82]
    ciaddr = request.ciaddr if message_type == ACK else ZERO
    return Message(BOOTREPLY, request.xid, request.chaddr, request.htype, 0, 0, request.flags, ciaddr,
                   yiaddr, siaddr, request.giaddr, options=opts)


def reply_wire(request: Message, message_type: int, options: bytes, codes: frozenset[int], *,
               yiaddr: IPv4Address = ZERO, flags: int | None = None,
               max_size: int = DEFAULT_MAX_SIZE, pack: Callable[..., bytes] | None = None) -> bytes:
    """`build(reply_to(request, message_type, yiaddr=yiaddr, options=...))` when `options` is those
    options already encoded (`codes` their codes), with `flags` for the request's flags: the hot
    path of a server that caches a client's encoded option block. Falls back to the general build
    whenever the shortcut could differ (overload needed, or codes 52, 53 or 82 in the block).
    `pack`: labkit.native._dhcp's `reply`, which puts the same bytes together in one C call."""
    relay_info = request.options.get(82)
    head = _TYPE_TLVS.get(message_type) or bytes((53, 1, message_type))
    tail = b"" if relay_info is None else encode_options([(82, relay_info)])
    room = max(max_size, DEFAULT_MAX_SIZE) - HEADER_SIZE - 1
    if len(head) + len(options) + len(tail) > room or not codes.isdisjoint(_SPECIAL):
        message = reply_to(request, message_type, yiaddr=yiaddr, options=decode_options(options).items())
        if flags is not None:
            message = replace(message, flags=flags)
        return build(message, max_size=max_size)
    ciaddr = request.ciaddr if message_type == ACK else ZERO
    giaddr = request.giaddr
    if pack is not None:
        return pack(request.htype, request.chaddr, request.xid, request.flags if flags is None else flags,
                    ciaddr._ip, yiaddr._ip, giaddr._ip, head, options, tail)  # type: ignore[attr-defined]
    header = FIXED.pack(BOOTREPLY, request.htype, len(request.chaddr), 0, request.xid, 0,
                        request.flags if flags is None else flags, _packed(ciaddr), _packed(yiaddr),
                        _ZERO_BYTES, _packed(giaddr), request.chaddr.ljust(16, b"\x00"), b"", b"")
    return b"".join((header, MAGIC, head, options, tail, b"\xff")).ljust(BOOTP_MIN, b"\x00")


_SPECIAL = frozenset({OVERLOAD, 53, 82})
_TYPE_TLVS = {kind: bytes((53, 1, kind)) for kind in MESSAGE_TYPES}  # option 53 of each reply type


def _packed(address: IPv4Address) -> bytes:
    # address.packed, without the property's two Python calls
    return _ZERO_BYTES if address is ZERO else address._ip.to_bytes(4, "big")  # type: ignore[attr-defined]


def request_message(message_type: int, mac: bytes, xid: int, options: Mapping[int, bytes], *,
                    ciaddr: IPv4Address = ZERO, giaddr: IPv4Address = ZERO, flags: int = 0,
                    hops: int = 0) -> Message:
    """A client's BOOTREQUEST (used by the virtual phone and the tests)."""
    opts = {53: bytes([message_type]), **{c: p for c, p in options.items() if c != 53}}
    return Message(BOOTREQUEST, xid, mac, flags=flags, ciaddr=ciaddr, giaddr=giaddr, hops=hops,
                   options=opts)

