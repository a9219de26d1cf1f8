"""Events: every request and answer of every service, as one structured record.

Services never print; they emit Events to a sink. The supervisor fans them out to the JSON
lines log, the live board and per-phone timelines.
"""

from __future__ import annotations

import json
import json.encoder
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
        # the journal's line for every event: `_plain_json`, or the same text by the slower general path
        return _event_json(self)


def _plain_json(event: Event) -> str:
    """`json.dumps` of the event as a plain dict (separators "," and ":", `default=str`), for less.

    Every field but `detail` is a str or None (`time` a finite float) on every hot path, so the line
    is put together from C-quoted strings; the time's text is kept while events share their time
    (a batch of datagrams) and the detail goes through one kept C encoder (building an encoder per
    call cost more than the encoding). Any other shape takes `json.dumps` itself; the text is the
    same either way (tests/unit/test_event_json.py). About 2.4x fewer instructions per event."""
    when = event.time
    if type(when) is not float or when != when or when in _INFINITE:
        return _general_json(event)
    kept = _TIME_TEXT[0]  # one (time, text) pair, replaced whole: safe if two threads log at once
    if kept[0] != when or not kept[1] or not when:  # (0.0 == -0.0, but their texts differ)
        kept = _TIME_TEXT[0] = (when, repr(when))
    client, phone, detail = event.client, event.phone, event.detail
    quote = _quote
    try:
        return (f'{{"time":{kept[1]},"service":{quote(event.service)},'
                f'"client":{"null" if client is None else quote(client)},'
                f'"phone":{"null" if phone is None else quote(phone)},"action":{quote(event.action)},'
                f'"request":{quote(event.request)},"answer":{quote(event.answer)},"result":{quote(event.result)},'
                f'"detail":{_detail_json(detail) if detail or type(detail) is not dict else "{}"}}}')
    except TypeError:  # a field that is not a str: the general path says it as json.dumps does
        return _general_json(event)


def _general_json(event: Event) -> str:
    # a plain dict, not dataclasses.asdict: asdict deep-copies and costs 3x on every event
    return json.dumps({"time": event.time, "service": event.service, "client": event.client,
                       "phone": event.phone, "action": event.action, "request": event.request,
                       "answer": event.answer, "result": event.result, "detail": event.detail},
                      separators=(",", ":"), default=str)


def _kept_encoder() -> Callable[[Any], str]:
    """json.dumps(value, separators=(",", ":"), default=str) through one C encoder made once (the
    json module's own, as JSONEncoder.iterencode makes it per call); the general encoder where
    this Python has no C encoder or another signature for it."""
    general = json.JSONEncoder(separators=(",", ":"), default=str).encode
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return general
    try:
        encode = make(None, str, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True)
        sample = {"a": [1, 2.5, None, True, "\u00e9\""], "b": {"c": object}}
        if "".join(encode(sample, 0)) != general(sample):
            return general
    except Exception:  # another Python's private signature: the general encoder
        return general
    return lambda value: "".join(encode(value, 0))


_quote = json.encoder.encode_basestring_ascii  # json.dumps' own quoting (ensure_ascii), in C
_detail_json = _kept_encoder()
_INFINITE = (float("inf"), float("-inf"))
_TIME_TEXT: list[tuple[float, str]] = [(0.0, "")]  # the last time turned into text, and its text
_event_json = _plain_json


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
