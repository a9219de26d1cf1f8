"""Events: every request and answer of every service, as one structured record.

Services never print; they emit Events to a sink. The supervisor fans them out to the JSON
lines log, the live board and per-phone timelines.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from labkit.protocols.result import Fact


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


def events_from(service: str, client: str | None, facts: Iterable[Fact], when: float) -> Iterator[Event]:
    """The one place where a core's facts become Events (every service uses it)."""
    for fact in facts:
        yield Event(when, service, client, fact.phone, fact.action, fact.request, fact.answer, fact.result,
                    dict(fact.detail))
