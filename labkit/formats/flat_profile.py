"""The Cisco MPP XML flat profile: `<device><flat-profile><Name ua="na">value</Name>...`.

`render` writes what the kit serves; `parse` reads a profile the way the phone does
(reference §4.1): optional `<device>` wrapper, case-sensitive names, last occurrence
wins, values trimmed with embedded newlines turned into spaces, XML escapes and numeric
character references decoded, the `<?xml?>` declaration ignored.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args
from xml.sax.saxutils import escape

from labkit.errors import CodecError

__all__ = ["ACCESS_VALUES", "Access", "Param", "is_valid_name", "parse", "render"]

Access = Literal["na", "ro", "rw"]
ACCESS_VALUES: tuple[str, ...] = get_args(Access)

# ASCII XML names without `:` (no namespaces); Cisco names only use letters, digits, `_`.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
# Characters XML 1.0 cannot carry at all (C0 controls other than tab, LF, CR).
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
# Optional BOM, whitespace and the XML declaration (not an `<?xml-stylesheet?>` PI).
_PROLOG = re.compile(rb"\A(?:\xef\xbb\xbf)?[ \t\r\n]*(?:<\?xml(?=[ \t\r\n?]).*?\?>)?", re.DOTALL)
_XML_SPACE = " \t\r\n"


@dataclass(frozen=True)
class Param:
    """One profile parameter: element name, text value and optional `ua` access."""

    name: str  # element name, e.g. "Profile_Rule", "Display_Name_1_"
    value: str
    access: Access | None = None  # the ua="..." attribute


def is_valid_name(name: str) -> bool:
    """True for a name `render` accepts: an ASCII XML name without `:` that does not
    start with the reserved `xml` (any case)."""
    return bool(_NAME.fullmatch(name)) and name[:3].lower() != "xml"


def _render_param(param: Param) -> str:
    if not is_valid_name(param.name):
        raise CodecError(f"invalid parameter name {param.name!r}")
    if not param.value.isascii():
        raise CodecError(f"{param.name}: the firmware only supports ASCII values")
    if _XML_ILLEGAL.search(param.value):
        raise CodecError(f"{param.name}: control characters cannot be carried in XML")
    attr = ""
    if param.access is not None:
        if param.access not in ACCESS_VALUES:
            raise CodecError(f"{param.name}: access must be one of {ACCESS_VALUES}")
        attr = f' ua="{param.access}"'
    # Always an open/close pair: `<X/>` means "leave the user's value" on the phone,
    # `<X></X>` sets it empty (reference §4.1), and an empty Param means the latter.
    return f"  <{param.name}{attr}>{escape(param.value)}</{param.name}>\n"


def render(params: Iterable[Param], *, device_wrapper: bool = True) -> bytes:
    """Render params as an ASCII XML flat profile, one element per line.

    CodecError for an invalid name, a non-ASCII value or an unknown access. Values are
    written as given; note the phone trims them and turns newlines into spaces.
    """
    lines = ['<?xml version="1.0" encoding="UTF-8"?>\n']
    if device_wrapper:
        lines.append("<device>\n")
    lines.append("<flat-profile>\n")
    lines.extend(_render_param(param) for param in params)
    lines.append("</flat-profile>\n")
    if device_wrapper:
        lines.append("</device>\n")
    return "".join(lines).encode("ascii")


class _DtdRefused(CodecError):
    """A DOCTYPE or ENTITY declaration: refused before the parser can expand anything."""


class _GuardedTreeBuilder(ET.TreeBuilder):
    """A TreeBuilder that stops at a DOCTYPE: second line of defence behind the text check."""

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise _DtdRefused("DOCTYPE declarations are not allowed in a flat profile")


def _profile_text(data: bytes) -> str:
    """The document as text, without BOM and XML declaration, checked to hold no DTD.

    Decoding ourselves pins the encoding: expat would otherwise detect UTF-16 on its own
    (with or without a BOM, whatever encoding it is told), and a DTD could then hide from
    a byte search. XML never contains NUL, and UTF-16/32 text of ASCII always does.
    """
    body = _PROLOG.sub(b"", data, count=1)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CodecError(f"a flat profile must be ASCII/UTF-8: {exc}") from exc
    if "\x00" in text:
        raise CodecError("NUL byte in a flat profile (UTF-16 or binary data?)")
    # Keeps entity definitions (billion laughs, external entities) from expat entirely.
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise CodecError("DOCTYPE/ENTITY declarations are not allowed in a flat profile")
    return text


def _parse_tree(data: bytes) -> ET.Element:
    text = _profile_text(data)
    parser = ET.XMLParser(target=_GuardedTreeBuilder())
    try:
        parser.feed(text)  # str input: the C parser hands expat UTF-8 and says so
        return parser.close()
    except _DtdRefused:
        raise
    except (ET.ParseError, ValueError, LookupError) as exc:
        raise CodecError(f"not a well-formed XML profile: {exc}") from exc


def _value(element: ET.Element) -> str:
    text = "".join(element.itertext())
    return text.replace("\r", " ").replace("\n", " ").strip(_XML_SPACE)


def _access(element: ET.Element) -> Access | None:
    raw = element.get("ua")
    if raw is None:
        return None
    normalized = raw.strip(_XML_SPACE).lower()
    for access in ("na", "ro", "rw"):
        if normalized == access:
            return access
    return None  # an unknown ua value is ignored, like any unknown setting


def parse(data: bytes) -> dict[str, Param]:
    """Parse a flat profile as the phone reads it: {name: Param}, last occurrence winning.

    Elements whose names `is_valid_name` rejects (namespaced ones, for example) are
    skipped as unknown parameters. CodecError for a body that is not well-formed XML,
    has a DTD, or is not a `<flat-profile>` (optionally inside `<device>`).
    """
    root = _parse_tree(data)
    if root.tag == "flat-profile":
        sections = [root]
    elif root.tag == "device":
        sections = root.findall("flat-profile")
        if not sections:
            raise CodecError("<device> has no <flat-profile>")
    else:
        raise CodecError(f"root element <{root.tag}> is neither <device> nor <flat-profile>")
    params: dict[str, Param] = {}
    for section in sections:
        for element in section:
            if not isinstance(element.tag, str) or not is_valid_name(element.tag):
                continue
            params[element.tag] = Param(element.tag, _value(element), _access(element))
    return params
