"""Typed CWMP parameter values: what `<Value xsi:type="xsd:...">` carries (TR-069 Amendment 3,
§A.2.1: the data types are the XML Schema ones; `ParameterValueStruct/Value` is `xs:anySimpleType`).

A `Value` is an XSD type name and a Python value of the matching kind; `text()` is its lexical
form and `Value.parse(type, text)` reads one back, raising `CwmpError` on anything that is not
valid for the type. Pure: standard library only.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from labkit.errors import CodecError


class CwmpError(CodecError):
    """Bytes that are not a CWMP message, or a value a CWMP message cannot carry."""


Scalar = str | int | bool | datetime | bytes

# (lowest, highest) of the integer types (XML Schema Part 2, §3.3)
INT_RANGES: dict[str, tuple[int, int]] = {
    "int": (-(2**31), 2**31 - 1),
    "unsignedInt": (0, 2**32 - 1),
    "long": (-(2**63), 2**63 - 1),
    "unsignedLong": (0, 2**64 - 1),
}
BINARY_TYPES = ("base64", "hexBinary")
# TR-069's "base64" goes on the wire as xsi:type="xsd:base64", as ACSs and CPEs write it (GenieACS
# among them), although XML Schema calls the type base64Binary [I]: both are read.
TYPE_ALIASES = {"base64Binary": "base64"}
XSD_TYPES = ("string", "boolean", "dateTime", *INT_RANGES, *BINARY_TYPES)

# TR-069 §A.2.1: the "Unknown Time" value, 0001-01-01T00:00:00Z
UNKNOWN_TIME = datetime(1, 1, 1, tzinfo=UTC)

_INTEGER = re.compile(r"[+-]?[0-9]{1,20}")
_BOOLEAN = {"true": True, "1": True, "false": False, "0": False}  # XML Schema's lexical space
_DATETIME = re.compile(r"-?[0-9]{4,}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
                       r"(Z|[+-][0-9]{2}:[0-9]{2})?")


def check_text(value: object, what: str, max_length: int | None = None) -> str:
    """A string that fits in an XML document (and in `max_length` characters when given)."""
    if not isinstance(value, str):
        raise CwmpError(f"{what}: expected text, got {type(value).__name__}")
    if max_length is not None and len(value) > max_length:
        raise CwmpError(f"{what}: {len(value)} characters, at most {max_length} allowed")
    if any(_not_xml_char(c) for c in value):
        raise CwmpError(f"{what}: holds a character XML 1.0 cannot carry")
    return value


def _not_xml_char(c: str) -> bool:
    code = ord(c)
    if code < 0x20:
        return c not in "\t\n\r"
    return 0xD800 <= code <= 0xDFFF or code in (0xFFFE, 0xFFFF)


def check_int(value: object, what: str, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise CwmpError(f"{what}: expected an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise CwmpError(f"{what}: {value} is out of range {lo}..{hi}")
    return value


def format_time(value: datetime) -> str:
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def parse_time(text: str, what: str) -> datetime:
    text = text.strip()
    if not _DATETIME.fullmatch(text):
        raise CwmpError(f"{what}: {text[:40]!r} is not an xsd:dateTime")
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise CwmpError(f"{what}: {text[:40]!r} is not a valid date and time ({exc})") from None


def parse_int(text: str, what: str, lo: int, hi: int) -> int:
    text = text.strip()
    if not _INTEGER.fullmatch(text):
        raise CwmpError(f"{what}: {text[:40]!r} is not an integer")
    return check_int(int(text), what, lo, hi)


def parse_bool(text: str, what: str) -> bool:
    try:
        return _BOOLEAN[text.strip()]
    except KeyError:
        raise CwmpError(f"{what}: {text[:40]!r} is not an xsd:boolean") from None


def format_bool(value: bool) -> str:
    return "true" if value else "false"


@dataclass(frozen=True, slots=True)
class Value:
    """One parameter value with its XSD type ("string", "unsignedInt", "boolean", ...)."""

    type: str
    value: Scalar

    def __post_init__(self) -> None:
        what = f"xsd:{self.type} value"
        if self.type not in XSD_TYPES:
            known = ", ".join(XSD_TYPES)
            raise CwmpError(f"unknown parameter type xsd:{str(self.type)[:40]}; known: {known}")
        if self.type == "string":
            check_text(self.value, what)
        elif self.type == "boolean":
            if not isinstance(self.value, bool):
                raise CwmpError(f"{what}: expected True or False")
        elif self.type == "dateTime":
            if not isinstance(self.value, datetime):
                raise CwmpError(f"{what}: expected a datetime")
            _check_offset(self.value, what)
        elif self.type in BINARY_TYPES:
            if not isinstance(self.value, bytes):
                raise CwmpError(f"{what}: expected bytes")
        else:
            check_int(self.value, what, *INT_RANGES[self.type])

    # the common constructors
    @classmethod
    def string(cls, value: str) -> Value:
        return cls("string", value)

    @classmethod
    def unsigned(cls, value: int) -> Value:
        return cls("unsignedInt", value)

    @classmethod
    def integer(cls, value: int) -> Value:
        return cls("int", value)

    @classmethod
    def boolean(cls, value: bool) -> Value:
        return cls("boolean", value)

    def text(self) -> str:
        """The lexical form that goes into the XML element."""
        value = self.value
        if self.type == "boolean":
            return format_bool(bool(value))
        if isinstance(value, datetime):
            return format_time(value)
        if isinstance(value, bytes):
            return base64.b64encode(value).decode() if self.type == "base64" else value.hex().upper()
        return str(value)

    @classmethod
    def parse(cls, type_: str, text: str) -> Value:
        """The value `text` stands for as an xsd:`type_`; CwmpError when it is not one."""
        type_ = TYPE_ALIASES.get(type_, type_)
        what = f"xsd:{type_[:40]} value"
        if type_ == "string":
            return cls(type_, text)
        if type_ == "boolean":
            return cls(type_, parse_bool(text, what))
        if type_ == "dateTime":
            return cls(type_, parse_time(text, what))
        if type_ in INT_RANGES:
            return cls(type_, parse_int(text, what, *INT_RANGES[type_]))
        if type_ in BINARY_TYPES:
            return cls(type_, _parse_binary(type_, text, what))
        raise CwmpError(f"unknown parameter type xsd:{type_[:40]}")

    def as_text(self) -> str:
        """What a flat profile would hold for this value (the same lexical form)."""
        return self.text()


def _check_offset(value: datetime, what: str) -> None:
    offset = value.utcoffset()
    if offset is None:
        return
    if offset % timedelta(minutes=1) or abs(offset) > timedelta(hours=14):
        raise CwmpError(f"{what}: time zone offset {offset} is not whole minutes within ±14:00")


def _parse_binary(type_: str, text: str, what: str) -> bytes:
    compact = "".join(text.split())
    try:
        if type_ == "base64":
            return base64.b64decode(compact.encode("ascii"), validate=True)
        return bytes.fromhex(compact)
    except (ValueError, binascii.Error, UnicodeEncodeError):
        raise CwmpError(f"{what}: {text[:40]!r} is not valid xsd:{type_}") from None
