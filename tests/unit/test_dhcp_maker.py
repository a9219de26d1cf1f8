"""labkit.native._dhcp's Maker fills a slotted dataclass's slots from positional values: the DHCP
core makes its Fact, Result, Datagram and _Ask with it (no frozen __init__ per object). What it
makes must be the object the class's own constructor makes (equal, same repr, still frozen), and it
must refuse anything that is not a writable object slot of the class itself."""

from __future__ import annotations

import dataclasses
import gc
import sys
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labkit import native
from labkit.protocols.dhcp.server import _Ask, _makers
from labkit.protocols.result import NO_DETAIL, Datagram, Fact, Result

MODULE = native.load("_dhcp")
needs_module = pytest.mark.skipif(MODULE is None, reason="labkit.native._dhcp not built here")

FACTS = [
    ("discover", "DISCOVER 00:0c:01:02:03:04", "OFFER 198.18.1.1 to 198.18.0.2:67", "ok", None, NO_DETAIL),
    ("request", "", "", "nak", "00:56:2b:00:03:3c", MappingProxyType({"state": "renewing", "ip": "10.1"})),
    ("malformed", "é \x00 \ud800", "dropped", "malformed", "", MappingProxyType({"error": "x" * 3000})),
]


@needs_module
@pytest.mark.parametrize("values", FACTS)
def test_a_made_fact_is_the_constructed_fact(values: tuple[object, ...]) -> None:
    make_fact, make_result, make_datagram, _ = _makers(MODULE.Maker)
    fact, reference = make_fact(*values), Fact(*values)  # type: ignore[arg-type]
    assert type(fact) is Fact and fact == reference and repr(fact) == repr(reference)
    assert gc.is_tracked(fact)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fact.answer = "changed"  # type: ignore[misc]
    datagram = make_datagram(b"\x02" * 300, ("198.18.0.2", 67), False)
    assert datagram == Datagram(b"\x02" * 300, ("198.18.0.2", 67)) and hash(datagram) == hash(
        Datagram(b"\x02" * 300, ("198.18.0.2", 67)))
    result = make_result((datagram,), (), (fact,), False)
    assert result == Result((datagram,), (), (reference,)) and repr(result) == repr(
        Result((datagram,), (), (reference,)))


@needs_module
def test_the_maker_holds_and_releases_its_values() -> None:
    make_fact = _makers(MODULE.Maker)[0]
    text = "".join(["a request ", "made here"])  # a fresh object: its count is this test's alone
    before = sys.getrefcount(text)
    facts = [make_fact("a", text, "c", "ok", None, NO_DETAIL) for _ in range(100)]
    assert sys.getrefcount(text) == before + 100
    del facts
    assert sys.getrefcount(text) == before


@needs_module
def test_the_maker_refuses_what_is_not_an_object_slot_of_the_class() -> None:
    assert MODULE is not None
    Maker = MODULE.Maker
    for cls, names in [(Fact, ("nope",)), (Fact, ("__init__",)), (Fact, ("__slots__",)), (int, ("real",)),
                       (Fact, tuple("abcdefghi")), (Fact, (1,))]:
        with pytest.raises(ValueError):
            Maker(cls, names)
    with pytest.raises(TypeError):
        Maker("Fact", ("action",))  # not a type
    with pytest.raises(TypeError):
        Maker(Fact, ["action"])  # names must be a tuple
    make_fact = Maker(Fact, ("action", "request", "answer", "result", "phone", "detail"))
    with pytest.raises(TypeError):
        make_fact("too", "few")
    with pytest.raises(TypeError):
        make_fact("a", "b", "c", "d", None, NO_DETAIL, "one too many")
    with pytest.raises(TypeError):
        make_fact("a", "b", "c", "d", None, detail=NO_DETAIL)


def test_without_the_module_the_classes_themselves_make_the_objects() -> None:
    assert _makers(None) == (Fact, Result, Datagram, _Ask)
    if MODULE is not None:
        assert all(type(made) is MODULE.Maker for made in _makers(MODULE.Maker))


def test_a_class_whose_init_does_more_keeps_its_constructor() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        value: int

        def __post_init__(self) -> None:
            if self.value < 0:
                raise ValueError("negative")

    import labkit.protocols.dhcp.server as server

    original = server.Fact
    try:
        server.Fact = Checked  # type: ignore[misc]
        made = _makers(MODULE.Maker if MODULE is not None else None)[0]
    finally:
        server.Fact = original  # type: ignore[misc]
    assert made is Checked


@needs_module
def test_the_compiled_parse_makes_the_message_or_its_fields() -> None:
    """With Message as fifth argument the C parse returns the Message the pure parse reads (its
    fields as __dict__); without it, the fields dict; a class it cannot fill is refused."""
    from labkit.protocols.dhcp import message as dhcp_message
    from labkit.protocols.dhcp.message import ZERO, Message, parse

    assert MODULE is not None
    data = bytes.fromhex("010106000000000700000000000000000000000000000000c6120002000c01020304" + "00" * 202
                         + "63825363" + "350101370301030f3d0701000c01020304ff")
    cache, address = dhcp_message._addresses, dhcp_message.address
    made = MODULE.parse(data, ZERO, cache, address, Message)
    assert type(made) is Message and made == parse(data) and vars(made) == vars(parse(data))
    assert MODULE.parse(data, ZERO, cache, address) == vars(parse(data))
    assert MODULE.parse(data, ZERO, cache, address, None) == vars(parse(data))
    assert MODULE.parse(data[:100], ZERO, cache, address, Message) is None  # the reference decides
    for cls in (int, "Message", Fact):  # object's __new__ not kept, not a type, no __dict__
        with pytest.raises(TypeError):
            MODULE.parse(data, ZERO, cache, address, cls)


@needs_module
@given(st.integers(0, 2**32 - 1))
def test_an_address_made_by_the_maker_is_the_address(number: int) -> None:
    from ipaddress import IPv4Address

    from labkit.protocols.dhcp import message as dhcp_message

    make = dhcp_message.address_maker(MODULE)
    raw = number.to_bytes(4, "big")
    made, reference = make(raw), IPv4Address(number)
    assert type(made) is IPv4Address and made == reference and hash(made) == hash(reference)
    assert str(made) == str(reference) and made.packed == raw and int(made) == number
    assert make(raw) is made and dhcp_message.address(raw) is made  # one cache for both
    assert (made < IPv4Address(number + 1)) if number < 2**32 - 1 else made.is_reserved


def test_without_a_usable_maker_addresses_come_from_the_constructor() -> None:
    from labkit.protocols.dhcp import message as dhcp_message

    class NoMaker:
        @staticmethod
        def Maker(cls: type, names: tuple[str, ...]) -> object:
            raise ValueError("not a slot")

    assert dhcp_message.address_maker(NoMaker) is dhcp_message.address
