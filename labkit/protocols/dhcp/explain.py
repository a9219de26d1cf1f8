"""Annotated hexdump of one DHCP option, exactly as it travels on the wire.

Used by `labkit explain` to show what the kit sends and what clients sent, so it never
raises: whatever does not decode is shown as raw bytes with the reason.

`annotate` splits the option's TLV bytes (code and length included; several TLVs when the
payload is longer than 255 bytes, as `encode_options` sends it) into consecutive,
non-overlapping spans, each with a depth, a label and a readable value.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from labkit.errors import CodecError
from labkit.protocols.dhcp.options import (
    MAX_TLV_DATA,
    Kind,
    OptionSpec,
    SubOption,
    Tr069,
    VendorBlock,
    decode_value,
    encode_options,
    spec_for,
)

__all__ = ["Annotation", "annotate", "hexdump"]


@dataclass(frozen=True)
class Annotation:
    offset: int  # within the TLV bytes: offset 0 is the code byte
    length: int
    depth: int  # 0 option header / whole option, 1 sub-option or vendor block, 2 inside a block
    label: str
    value: str


TR069_NAMES = {
    1: "ACS URL",
    2: "ProvisioningCode",
    3: "CWMPRetryMinimumWaitInterval",
    4: "CWMPRetryIntervalMultiplier",
}
TR111_NAMES = {
    1: "DeviceManufacturerOUI",
    2: "DeviceSerialNumber",
    3: "DeviceProductClass",
    4: "GatewayManufacturerOUI",
    5: "GatewaySerialNumber",
    6: "GatewayProductClass",
    # ACS discovery through 125 (TR-069 Amendment 5), as devolo/tr069 sends it; names only.
    11: "ACS URL",
    12: "ProvisioningCode",
    13: "CWMPRetryMinimumWaitInterval",
    14: "CWMPRetryIntervalMultiplier",
}
RELAY_AGENT_NAMES = {  # RFC 3046, 3527, 3993, 4243
    1: "Agent Circuit ID",
    2: "Agent Remote ID",
    5: "Link Selection",
    6: "Subscriber ID",
    9: "Vendor-Specific",
}
ENTERPRISES = {9: "Cisco", 3561: "Broadband Forum"}
MESSAGE_TYPES = {
    1: "DISCOVER",
    2: "OFFER",
    3: "REQUEST",
    4: "DECLINE",
    5: "ACK",
    6: "NAK",
    7: "RELEASE",
    8: "INFORM",
}
OVERLOAD = {1: "file", 2: "sname", 3: "file and sname"}
_SECONDS = frozenset({2, 51, 58, 59})  # time offset, lease, T1, T2

_INDENT = 3  # hex column indent per depth
_MAX_DEPTH = 2
_LABEL_COLUMN = _INDENT * _MAX_DEPTH + 16 * 3 - 1 + 2  # widest hex row plus a gap
_BYTES_PER_ROW = 16


# --------------------------------------------------------------------------- value rendering


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _show_bytes(data: bytes) -> str:
    if not data:
        return "(empty)"
    if all(0x20 <= b < 0x7F for b in data):
        return _quote(data.decode("ascii"))
    return data.hex(":")


def _duration(seconds: int) -> str:
    sign, rest = ("-" if seconds < 0 else ""), abs(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + ("".join(parts) or "0s")


def _format_int(code: int, value: int) -> str:
    if code == 51 and value == 0xFFFFFFFF:
        return f"{value} (infinite)"
    if code in _SECONDS:
        return f"{value} s ({_duration(value)})"
    if code == 53:
        return f"{value} ({MESSAGE_TYPES.get(value, 'unknown')})"
    if code == 52:
        return f"{value} ({OVERLOAD.get(value, 'unknown')})"
    return str(value)


def _format(spec: OptionSpec, value: object) -> str:
    kind = spec.kind
    if kind is Kind.IPV4_LIST and isinstance(value, tuple):
        return ", ".join(str(a) for a in value)
    if kind is Kind.IPV4 and isinstance(value, IPv4Address):
        return str(value)
    if kind is Kind.TEXT and isinstance(value, str):
        return _quote(value)
    if kind in (Kind.UINT8, Kind.UINT16, Kind.UINT32, Kind.INT32) and isinstance(value, int):
        return _format_int(spec.code, value)
    if kind is Kind.UINT8_LIST and isinstance(value, tuple):
        return ", ".join(str(v) for v in value)
    if kind is Kind.BYTES and isinstance(value, bytes):
        if spec.code == 61 and len(value) == 7 and value[0] == 1:
            return f"type 1 (Ethernet) {value[1:].hex(':')}"
        return _show_bytes(value)
    return repr(value)


# --------------------------------------------------------------------------- payload structure


def _tr069_value(code: int, tr: Tr069) -> str:
    if code == 1 and tr.acs_url is not None:
        return _quote(tr.acs_url)
    if code == 2 and tr.provisioning_code is not None:
        return _quote(tr.provisioning_code)
    if code == 3 and tr.retry_min_wait is not None:
        return f'{tr.retry_min_wait} s (sent as ASCII "{tr.retry_min_wait}")'
    if code == 4 and tr.retry_multiplier is not None:
        factor = tr.retry_multiplier / 1000
        return f'{tr.retry_multiplier} (x{factor:g}, sent as ASCII "{tr.retry_multiplier}")'
    return ""


def _suboption_view(code: int, subs: tuple[SubOption, ...]) -> tuple[str, list[Annotation]]:
    tr: Tr069 | None = None
    if code == 43 and subs:
        try:
            tr = Tr069.from_suboptions(subs)
        except CodecError:
            tr = None  # vendor data of some other kind: show it generically
    children: list[Annotation] = []
    offset = 0
    for sub in subs:
        if tr is not None:
            label, value = f"sub {sub.code} {TR069_NAMES[sub.code]}", _tr069_value(sub.code, tr)
        elif code == 82 and sub.code in RELAY_AGENT_NAMES:
            label, value = f"sub {sub.code} {RELAY_AGENT_NAMES[sub.code]}", _show_bytes(sub.data)
        else:
            label, value = f"sub {sub.code}", _show_bytes(sub.data)
        children.append(Annotation(offset, 2 + len(sub.data), 1, label, value))
        offset += 2 + len(sub.data)
    summary = "TR-069 (Broadband Forum)" if tr is not None else f"{len(subs)} sub-option(s)"
    return summary, children


def _vivso_view(blocks: tuple[VendorBlock, ...]) -> tuple[str, list[Annotation]]:
    children: list[Annotation] = []
    offset = 0
    for block in blocks:
        size = sum(2 + len(s.data) for s in block.suboptions)
        name = ENTERPRISES.get(block.enterprise)
        label = f"enterprise {block.enterprise}" + (f" ({name})" if name else "")
        children.append(Annotation(offset, 5, 1, label, f"data len {size}"))
        offset += 5
        for sub in block.suboptions:
            sub_name = TR111_NAMES.get(sub.code) if block.enterprise == 3561 else None
            sub_label = f"sub {sub.code}" + (f" {sub_name}" if sub_name else "")
            size = 2 + len(sub.data)
            children.append(Annotation(offset, size, 2, sub_label, _show_bytes(sub.data)))
            offset += size
    return f"{len(blocks)} vendor block(s)", children


def _payload_view(spec: OptionSpec, payload: bytes) -> tuple[str, list[Annotation]]:
    """(value shown on the header line, children with payload-relative offsets)."""
    try:
        value = decode_value(spec.code, payload)
    except CodecError as exc:
        reason = str(exc).removeprefix(f"option {spec.code} {spec.name}: ")
        return f"undecodable: {reason}", []
    if spec.kind is Kind.SUBOPTIONS:
        return _suboption_view(spec.code, value)
    if spec.kind is Kind.VIVSO:
        return _vivso_view(value)
    return _format(spec, value), []


# --------------------------------------------------------------------------- wire mapping


def _wire_offset(payload_offset: int) -> int:
    """Where payload byte `payload_offset` lands in the split TLVs (2 header bytes per chunk)."""
    return payload_offset + 2 * (payload_offset // MAX_TLV_DATA + 1)


def _map_span(span: Annotation) -> list[Annotation]:
    """A payload-relative span -> wire spans; a span crossing a TLV boundary is cut in two."""
    pieces: list[Annotation] = []
    pos, end = span.offset, span.offset + span.length
    while pos < end:
        piece_end = min(end, (pos // MAX_TLV_DATA + 1) * MAX_TLV_DATA)
        first = pos == span.offset
        pieces.append(
            Annotation(
                _wire_offset(pos),
                piece_end - pos,
                span.depth,
                span.label if first else f"{span.label} (continued)",
                span.value if first else "",
            )
        )
        pos = piece_end
    return pieces


def _valid_code(code: object) -> bool:
    return isinstance(code, int) and not isinstance(code, bool) and 1 <= code <= 254


def _payload_bytes(payload: object) -> bytes | None:
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload)
    return None


def _annotate(code: int, payload: object) -> list[Annotation]:
    data = _payload_bytes(payload)
    if data is None:
        kind = type(payload).__name__
        return [Annotation(0, 0, 0, f"option {code!r}", f"payload is not bytes ({kind})")]
    if not _valid_code(code):
        label = f"option {code!r} (not a sendable option code)"
        return [Annotation(0, len(data), 0, label, "raw payload, no TLV header")]
    spec = spec_for(code)
    summary, children = _payload_view(spec, data)
    size = len(data)
    if size <= MAX_TLV_DATA:
        label = f"option {code} {spec.name} (len {size})"
        if not children:
            return [Annotation(0, 2 + size, 0, label, summary)]
        return [Annotation(0, 2, 0, label, summary)] + [
            Annotation(c.offset + 2, c.length, c.depth, c.label, c.value) for c in children
        ]
    # RFC 3396 long option: one header per 255-byte chunk; children follow the payload bytes.
    chunks = -(-size // MAX_TLV_DATA)
    label = f"option {code} {spec.name} (len {size}, split into {chunks} TLVs, RFC 3396)"
    annotations = [Annotation(0, 2, 0, label, summary)]
    for k in range(1, chunks):
        chunk_len = min(MAX_TLV_DATA, size - k * MAX_TLV_DATA)
        annotations.append(
            Annotation(
                _wire_offset(k * MAX_TLV_DATA) - 2,
                2,
                0,
                f"option {code} {spec.name} continued",
                f"len {chunk_len}",
            )
        )
    for child in children or [Annotation(0, size, 1, "data", "")]:
        annotations.extend(_map_span(child))
    annotations.sort(key=lambda a: a.offset)
    return annotations


def _wire(code: int, payload: object) -> bytes:
    data = _payload_bytes(payload)
    if data is None:
        return b""
    return encode_options([(code, data)]) if _valid_code(code) else data


# --------------------------------------------------------------------------- public API


def annotate(code: int, payload: bytes) -> list[Annotation]:
    """Spans of the option's TLV bytes, in order, covering every byte exactly once."""
    try:
        return _annotate(code, payload)
    except Exception as exc:  # a display helper must show something, whatever it is fed
        return [Annotation(0, 0, 0, f"option {code!r}", f"cannot annotate ({type(exc).__name__})")]


def hexdump(code: int, payload: bytes) -> str:
    """Multi-line hex of the option's TLV bytes, one annotation per line group."""
    try:
        wire = _wire(code, payload)
        lines: list[str] = []
        for ann in annotate(code, payload):
            depth = max(0, min(ann.depth, _MAX_DEPTH))
            span = wire[ann.offset : ann.offset + ann.length]
            rows = [span[i : i + _BYTES_PER_ROW] for i in range(0, len(span), _BYTES_PER_ROW)]
            text = ann.label + (f": {ann.value}" if ann.value else "")
            text = text.replace("\n", "\\n").replace("\r", "\\r")
            for index, row in enumerate(rows or [b""]):
                hex_part = " " * (_INDENT * depth) + row.hex(" ")
                if index == 0:
                    lines.append(hex_part.ljust(_LABEL_COLUMN) + "  " * depth + text)
                else:
                    lines.append(hex_part)
        return "\n".join(lines)
    except Exception as exc:  # never raise: fall back to the plain bytes
        try:
            raw = bytes(payload).hex(" ") if isinstance(payload, bytes | bytearray) else ""
        except Exception:
            raw = ""
        return f"option {code!r}: cannot annotate ({type(exc).__name__}) {raw}".rstrip()
