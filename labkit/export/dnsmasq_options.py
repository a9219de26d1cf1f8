"""Plan options as dnsmasq 2.90 `dhcp-option` lines, in the readable forms dnsmasq documents.

Text options go quoted (unquoted, `66,10.0.0.1` would be sent as an address), address lists as
addresses, numbers as numbers, 43 as `encap:43` sub-options and 125 as `vi-encap:ENTERPRISE`
sub-options; anything else as colon-separated hex, which dnsmasq sends as the exact bytes.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from labkit.errors import CodecError
from labkit.protocols.dhcp.options import Kind, SubOption, VendorBlock, decode_value, spec_for

NUL_ENDED = {66, 67}  # dnsmasq sends these as text with a NUL byte added, whatever the form


def hex_bytes(data: bytes) -> str:
    """dnsmasq's exact-bytes form (a single byte gets a trailing colon so it is not a number)."""
    text = ":".join(f"{b:02x}" for b in data)
    return text + ":" if len(data) == 1 else text


def _quotable(data: bytes) -> bool:
    return bool(data) and data.isascii() and data.decode("ascii").isprintable() and not any(
        c in data for c in b'"\\')


def text_value(data: bytes) -> str:
    return f'"{data.decode("ascii")}"' if _quotable(data) else hex_bytes(data)


def value_text(code: int, payload: bytes) -> str:
    """The value part of a `dhcp-option` line for a plain (non-container) option."""
    kind = spec_for(code).kind
    try:
        value = decode_value(code, payload)
    except CodecError:
        return hex_bytes(payload)
    if kind is Kind.TEXT:
        return text_value(payload)
    if kind is Kind.IPV4 and isinstance(value, IPv4Address):
        return str(value)
    if kind is Kind.IPV4_LIST:
        return ",".join(str(a) for a in value)
    return hex_bytes(payload)


def option_lines(prefix: str, code: int, payload: bytes) -> list[str]:
    """`prefix` is `dhcp-option[-force]=[tag:...,]`; a container gives one line per sub-option."""
    if code == 43:
        try:
            subs: tuple[SubOption, ...] = decode_value(43, payload)
        except CodecError:
            subs = ()
        # encap:43 would end the option with an extra 0xFF byte: the exact bytes go as hex, with
        # the readable encap:43 form beside them
        readable = [f"#   {prefix}encap:43,{s.code},{text_value(s.data)}" for s in subs]
        return ["# option 43 as hex; the same sub-options as encap:43 (dnsmasq adds 0xFF):",
                *readable, f"{prefix}43,{hex_bytes(payload)}"]
    if code == 125:
        try:
            blocks: tuple[VendorBlock, ...] = decode_value(125, payload)
        except CodecError:
            blocks = ()
        if blocks and all(b.suboptions for b in blocks):
            # dnsmasq sends vi-encap sub-options in the reverse order of the lines
            lines = [f"{prefix}vi-encap:{b.enterprise},{s.code},{text_value(s.data)}"
                     for b in blocks for s in b.suboptions]
            return lines[::-1]
    if code in NUL_ENDED:
        # quoted, else dnsmasq sends 10.0.0.1 as 4 address bytes; hex is sent as its text
        return [f"# option {code}: dnsmasq always sends it as text and ends it with a NUL byte",
                f"{prefix}{code},{text_value(payload) if _quotable(payload) else hex_bytes(payload)}"]
    return [f"{prefix}{code},{value_text(code, payload)}"]
