"""Events: every request and answer of every service, as one structured record.

Services never print; they emit Events to a sink. The supervisor fans them out to the JSON
lines log, the live board and per-phone timelines.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from labkit.protocols.result import NO_DETAIL, Fact


@dataclass(frozen=True)
class Event:
    time: float  # seconds since the epoch
    service: str  # "dns", "tftp", "http", "https", "syslog", "dhcp", "kit"
    client: str | None  # "address:port" of the peer, when there is one
    phone: str | None  # the inventory phone's MAC when known, else None
    action: str  # what was asked: "query", "rrq", "wrq", "get", "head", "post", "log", ...
    request: str  # the request in short: "SRV _ciscoprov-https._tls.lab.example", "/8851-3PCC.xml"
    answer: str  # the answer in short: "NOERROR 1 SRV + 1 A", "1024 bytes", "404"
    result: str  # "ok", or what went wrong: "nxdomain", "refused", "not-found", "timeout", ...
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        # a plain dict, not dataclasses.asdict: asdict deep-copies and costs 3x on every event
        return json.dumps({"time": self.time, "service": self.service, "client": self.client,
                           "phone": self.phone, "action": self.action, "request": self.request,
                           "answer": self.answer, "result": self.result, "detail": self.detail},
                          separators=(",", ":"), default=str)


MALFORMED_RESULTS = frozenset({"malformed", "formerr", "dropped", "bad-request"})
"""Results that mean "input we could not read": one event each, rate-limited in the log
(`labkit.services.journal.MalformedLimiter`), counted exactly by the bus. Services report
unreadable input with result "malformed" (DNS's formerr/dropped count as such too)."""


def is_malformed(event: Event) -> bool:
    return event.result in MALFORMED_RESULTS


class EventSink(Protocol):
    def __call__(self, event: Event) -> None: ...


class PhoneDirectory(Protocol):
    """Who is at this address? The plan's fixed IPs, and later the DHCP leases."""

    def phone_at(self, address: str) -> str | None: ...


class StaticDirectory:
    """Phones by fixed address, from the inventory."""

    def __init__(self, by_address: dict[str, str] | None = None) -> None:
        self.by_address = dict(by_address or {})

    def phone_at(self, address: str) -> str | None:
        return self.by_address.get(address)


class EventRecorder:
    """A sink that keeps events in memory (tests, timelines)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)


def make_event(service: str, client: str | None, phone: str | None, action: str, request: str,
               answer: str, result: str, clock: Callable[[], float] = time.time,
               **detail: Any) -> Event:
    return Event(clock(), service, client, phone, action, request, answer, result, detail)


def _detail(fact: Fact, detail: dict[str, Any] | None) -> dict[str, Any]:
    return {**fact.detail, **detail} if detail else dict(fact.detail)


FactEvent = Callable[[str, str | None, str | None, Fact, float, dict[str, Any] | None], Event]


def _fact_event_factory() -> FactEvent:
    """`fact_event`: the dataclass constructor, or a quicker equivalent for per-packet services.

    Event is a frozen dataclass; its __init__ goes through object.__setattr__ once per field
    (about 1.3 µs, as much as answering a DNS query). When Event is the plain (non-slots)
    dataclass with exactly the fields below, filling its __dict__ in one step builds the same
    object (equal, same repr and JSON) in about 0.5 µs. If Event changes shape, the constructor is used.
    """
    names = ("time", "service", "client", "phone", "action", "request", "answer", "result", "detail")
    plain = (tuple(f.name for f in fields(Event)) == names and "__slots__" not in vars(Event)
             and not hasattr(Event, "__post_init__"))

    def construct(service: str, client: str | None, phone: str | None, fact: Fact, when: float,
                  detail: dict[str, Any] | None) -> Event:
        return Event(when, service, client, fact.phone or phone, fact.action, fact.request, fact.answer,
                     fact.result, _detail(fact, detail))

    if not plain:
        return construct
    new, set_attribute = object.__new__, object.__setattr__

    def fill(service: str, client: str | None, phone: str | None, fact: Fact, when: float,
             detail: dict[str, Any] | None) -> Event:
        event = new(Event)
        set_attribute(event, "__dict__", {
            "time": when, "service": service, "client": client, "phone": fact.phone or phone,
            "action": fact.action, "request": fact.request, "answer": fact.answer, "result": fact.result,
            "detail": (detail if fact.detail is NO_DETAIL else {**fact.detail, **detail}) if detail
            else {} if fact.detail is NO_DETAIL else dict(fact.detail)})
        return event

    return fill


fact_event = _fact_event_factory()
"""`fact_event(service, client, phone, fact, when, detail)`: one Fact as an Event, the same Event
`events_from` makes, for per-packet hot paths (DNS): no generator, no dataclass __init__. `phone`
names the peer's phone when the fact does not (the service's directory knows it, the core
does not); `detail` (or None) is merged over the fact's detail into a fresh dict (`detail`
itself, not a copy, when the fact has none: pass a dict the Event may keep)."""


def events_from(service: str, client: str | None, facts: Iterable[Fact], when: float) -> Iterator[Event]:
    """The one place where a core's facts become Events (every service uses it)."""
    for fact in facts:
        yield Event(when, service, client, fact.phone, fact.action, fact.request, fact.answer, fact.result,
                    dict(fact.detail))
