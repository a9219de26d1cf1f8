"""The shape of every CWMP structure, written once: each RPC and struct class lists its fields as
(attribute, XML element, kind) in the schema's element order (cwmp-1-2.xsd), and the same table
checks a value when it is built, writes it (soap.py) and reads it back.

Kinds follow the schema's types: `Text(max)`, `Integer(lo, hi)`, `Boolean()`, `Time()`,
`Strings(item max)` (a soap-enc array of xsd:string), `Structs(cls)` (a soap-enc array of one
struct type), `Nested(cls)` (one struct), `Typed()` (a `Value` with its xsi:type).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from labkit.protocols.cwmp.values import CwmpError, Value, check_int, check_text

UINT = (0, 2**32 - 1)
INT = (-(2**31), 2**31 - 1)


class Kind(ABC):
    """What a field may hold: `check` returns the value (normalised) or raises CwmpError."""

    @abstractmethod
    def check(self, value: object, what: str) -> object: ...


@dataclass(frozen=True)
class Text(Kind):
    max_length: int | None = None
    exact: int | None = None  # OUI: exactly six upper-case hex digits

    def check(self, value: object, what: str) -> object:
        text = check_text(value, what, self.max_length)
        hex_digits = all(c in "0123456789ABCDEF" for c in text)
        if self.exact is not None and (len(text) != self.exact or not hex_digits):
            raise CwmpError(f"{what}: {text[:40]!r} is not {self.exact} upper-case hex digits")
        return text


@dataclass(frozen=True)
class Integer(Kind):
    lo: int = UINT[0]
    hi: int = UINT[1]
    signed: bool = False  # xsd:int rather than xsd:unsignedInt

    def check(self, value: object, what: str) -> object:
        return check_int(value, what, self.lo, self.hi)


@dataclass(frozen=True)
class Boolean(Kind):
    def check(self, value: object, what: str) -> object:
        if not isinstance(value, bool):
            raise CwmpError(f"{what}: expected True or False")
        return value


@dataclass(frozen=True)
class Time(Kind):
    def check(self, value: object, what: str) -> object:
        if not isinstance(value, datetime):
            raise CwmpError(f"{what}: expected a datetime")
        Value("dateTime", value)  # the same offset rules as a parameter value
        return value


@dataclass(frozen=True)
class Typed(Kind):
    def check(self, value: object, what: str) -> object:
        if not isinstance(value, Value):
            raise CwmpError(f"{what}: expected a Value")
        return value


@dataclass(frozen=True)
class Strings(Kind):
    item_max: int | None = None
    choices: tuple[str, ...] = ()  # AccessList: only "Subscriber"

    def check(self, value: object, what: str) -> object:
        items = _sequence(value, what)
        for item in items:
            check_text(item, f"{what} item", self.item_max)
            if self.choices and item not in self.choices:
                raise CwmpError(f"{what}: {str(item)[:40]!r} is not one of {', '.join(self.choices)}")
        return items


@dataclass(frozen=True)
class Structs(Kind):
    cls: type[Any]
    max_items: int | None = None

    def check(self, value: object, what: str) -> object:
        items = _sequence(value, what)
        if self.max_items is not None and len(items) > self.max_items:
            raise CwmpError(f"{what}: {len(items)} items, at most {self.max_items}")
        for item in items:
            if not isinstance(item, self.cls):
                raise CwmpError(f"{what}: expected {self.cls.__name__} items")
        return items


@dataclass(frozen=True)
class Nested(Kind):
    cls: type[Any]

    def check(self, value: object, what: str) -> object:
        if not isinstance(value, self.cls):
            raise CwmpError(f"{what}: expected a {self.cls.__name__}")
        return value


def _sequence(value: object, what: str) -> tuple[Any, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, tuple | list):
        raise CwmpError(f"{what}: expected a sequence")
    return tuple(value)


Field = tuple[str, str, Kind]


class Checked:
    """Base of the CWMP dataclasses: checks each field against FIELDS once built (lists become
    tuples, so values stay hashable and compare equal)."""

    FIELDS: ClassVar[tuple[Field, ...]] = ()
    ELEMENT: ClassVar[str] = ""  # the XML element name (RPC name or struct type name)

    def __post_init__(self) -> None:
        for attr, element, kind in self.FIELDS:
            checked = kind.check(getattr(self, attr), f"{self.ELEMENT}/{element}")
            if checked is not getattr(self, attr):
                object.__setattr__(self, attr, checked)
