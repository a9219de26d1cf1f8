"""The frames between labkit's main process and its worker processes (labkit.services.workers
describes the protocol): length-prefixed pickles, and an Event's fields as a row or a template."""

from __future__ import annotations

import asyncio
import copyreg
import io
import pickle
import struct
from collections.abc import Callable
from dataclasses import fields
from types import MappingProxyType
from typing import Any

from labkit.events import Event
from labkit.native import load

_LENGTH = struct.Struct("!I")

# An Event as it travels from a worker: its fields in order (a tuple pickles 5-7 times faster
# than the dataclass, and the strings the DNS fast path shares are pickled once per batch).
Row = tuple[float, str, str | None, str | None, str, str, str, str, dict[str, Any]]
Template = tuple[str, str | None, str | None, str, str, str, str, dict[str, Any]]  # a Row minus its time
_FIELDS = ("time", "service", "client", "phone", "action", "request", "answer", "result", "detail")


def row_of(event: Event) -> Row:
    return (event.time, event.service, event.client, event.phone, event.action, event.request,
            event.answer, event.result, event.detail)


def _event_factory() -> Callable[[Row, str | None], Event]:
    """`EVENT_OF(row, phone)`: the Event again (with `phone`); filled through its __dict__ in one
    step when Event is the plain dataclass with these fields (as labkit.events.fact_event does)."""
    if tuple(f.name for f in fields(Event)) != _FIELDS or "__slots__" in vars(Event):

        def construct(row: Row, phone: str | None) -> Event:
            return Event(row[0], row[1], row[2], phone, *row[4:])

        return construct
    new, set_attribute = object.__new__, object.__setattr__

    def fill(row: Row, phone: str | None) -> Event:
        event = new(Event)
        set_attribute(event, "__dict__", {
            "time": row[0], "service": row[1], "client": row[2], "phone": phone, "action": row[4],
            "request": row[5], "answer": row[6], "result": row[7], "detail": row[8]})
        return event

    return fill


EVENT_OF = _event_factory()


def _FALLBACK_FROM(values: dict[str, Any]) -> Event:
    return Event(**values)


def _fields_factory() -> Callable[[dict[str, Any]], Event]:
    """`EVENT_FROM(fields)`: an Event from a dict of its fields (the dict becomes its __dict__
    when Event is the plain dataclass, as in `_event_factory`)."""
    if tuple(f.name for f in fields(Event)) != _FIELDS or "__slots__" in vars(Event):
        return _FALLBACK_FROM
    new, set_attribute = object.__new__, object.__setattr__

    def fill(values: dict[str, Any]) -> Event:
        event = new(Event)
        set_attribute(event, "__dict__", values)
        return event

    return fill


EVENT_FROM = _fields_factory()


Sink = Callable[[Event], None]
Deliver = Callable[[Sink, list[dict[str, Any]], list[bool], list[float], list[int], list[int]], int]


def _bound(compiled: Callable[..., int]) -> Deliver:
    def deliver(bus: Sink, bases: list[dict[str, Any]], empty: list[bool], times: list[float],
                counts: list[int], which: list[int]) -> int:
        return compiled(bus, Event, bases, empty, times, counts, which)

    return deliver


def _deliver_factory(native: bool = True) -> Deliver:
    """`DELIVER(bus, bases, empty, times, counts, which)`: a batch of columns into `bus`, in order,
    as `EVENT_FROM` would make each event (a copy of its template's dict `bases[index]`, its run's
    time, a fresh empty detail where `empty[index]`), in one loop: the main process's cost per
    event. Within a run the same template gives the same (frozen, equal) Event object again, as
    the one-process DNS drain hands its sink one Event per peer and question per wake-up (a run
    is a worker's batch, stamped with one clock reading); each run makes its own. labkit.native.
    _udp.deliver does the same steps in C where it is built (and Event is the plain dataclass);
    this loop is the reference. Returns how many events it delivered."""
    plain = EVENT_FROM is not _FALLBACK_FROM
    module = load("_udp") if native and plain else None
    if module is not None:
        return _bound(module.deliver)

    def deliver(bus: Sink, bases: list[dict[str, Any]], empty: list[bool], times: list[float],
                counts: list[int], which: list[int]) -> int:
        event_from, start, size = EVENT_FROM, 0, len(bases)
        for when, count in zip(times, counts, strict=True):
            if count < 0:
                raise ValueError("deliver: a negative count")
            made: dict[int, Event] = {}  # this run's Event per template
            for index in which[start:start + count]:
                event = made.get(index + size if index < 0 else index)
                if event is None:
                    values = bases[index].copy()
                    values["time"] = when
                    if empty[index]:
                        values["detail"] = {}
                    event = made[index + size if index < 0 else index] = event_from(values)
                bus(event)
            start += count
        return start

    return deliver


DELIVER = _deliver_factory()


def read_only(mapping: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(mapping)


def _mapping_proxy(proxy: MappingProxyType[Any, Any]) -> tuple[Any, tuple[dict[Any, Any]]]:
    return read_only, (dict(proxy),)


# plans hold read-only mappings (HTTP redirects, phones): they travel as such
_DISPATCH = {**copyreg.dispatch_table, MappingProxyType: _mapping_proxy}


def frame(message: object) -> bytes:
    out = io.BytesIO()
    out.write(b"\0\0\0\0")
    pickler = pickle.Pickler(out, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _DISPATCH
    pickler.dump(message)
    data = out.getbuffer()
    _LENGTH.pack_into(data, 0, len(data) - _LENGTH.size)
    del data
    return out.getvalue()


async def read_frame(reader: asyncio.StreamReader) -> Any:
    """The next message; None at the end of the stream."""
    try:
        size = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))[0]
        return pickle.loads(await reader.readexactly(size))  # our own child (or parent) wrote it
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
