"""What the control API serves, kept up to date from the event bus: the status model, the
Prometheus metrics, each phone's recent events (its timeline) and the live subscribers
(the dashboard's server-sent event streams).

JSON shapes (stable; `version` grows when a field changes meaning):
  snapshot(): LabStatus.snapshot() + {"lab": {name, domain}, "faults_in_force": [{label, service,
              action, when, match}], "admin": url or null}
  phone(mac): {"phone": PhoneStatus.to_dict(), "events": [{time, service, action, request,
              answer, result, client, rule}]} (oldest first, the last TIMELINE_EVENTS, fewer
              once all timelines together pass TIMELINE_BYTES)
  counters(): {"events", "stages", "services", "faults_fired", "leases_in_use", "unknown_clients"}
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import marshal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from labkit import native
from labkit.events import MALFORMED_RESULTS, Event, EventSink
from labkit.faults.engine import Rule, describe
from labkit.services.metrics import LabMetrics
from labkit.services.status import FINE, NOT_REQUESTS, LabStatus, PhoneStatus, ServiceCounters

if TYPE_CHECKING:
    from labkit.plan.build import Plan

TIMELINE_EVENTS = 300  # events kept per phone for its timeline
TIMELINE_BYTES = 32 << 20  # all timelines together (encoded): past it, every timeline keeps its newer half
# (the journal keeps every event: these are the API's recent view; 32 MiB: ~30 rows a phone at 10,000)
SUBSCRIBER_BACKLOG = 1000  # messages a slow dashboard may fall behind before it gets a fresh snapshot

Message = tuple[str, Any]


def fault_in_force(rule: Rule[Any]) -> dict[str, Any]:
    def present(obj: Any) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(obj).items() if v is not None}

    return {"label": rule.label, "service": rule.service, "action": describe(rule.action),
            "when": present(rule.when), "match": present(rule.match)}


def phone_rows(plan: Plan) -> Iterator[tuple[str, str, str, str | None]]:
    """(mac, name, model, fixed address or None) of each phone of the plan."""
    for mac, planned in plan.phones.items():
        phone = planned.phone
        yield mac, phone.name or mac, phone.model, str(phone.ip) if phone.ip else None


# a timeline entry: (time, service, action, request, answer, result, client, rule). Only what
# `phone()` shows is kept, not the Event with its detail: a 10,000-phone storm leaves ~14 events
# per phone. Each phone's rows are marshalled one after another into one bytearray (~half the
# size of the tuples with their float and strings, ~30 MiB at 10,000 phones), read back only
# when the API asks for that phone
TimelineRow = tuple[float, str, str, str, str, str, str | None, Any]
ROW_FIELDS = ("time", "service", "action", "request", "answer", "result", "client", "rule")


def timeline_row(event: Event) -> TimelineRow:
    return (event.time, event.service, event.action, event.request, event.answer, event.result, event.client,
            event.detail.get("rule") if event.action == "fault" else None)


def event_row(event: Event) -> dict[str, Any]:
    return dict(zip(ROW_FIELDS, timeline_row(event), strict=True))


class Timeline:
    """One phone's rows, encoded: a row count and the marshalled rows back to back. (labkit.native._fold
    makes a new one as a copy of Timeline()'s slots, its bytearray copied: __init__ sets no more.)"""

    __slots__ = ("data", "rows")

    def __init__(self) -> None:
        self.data = bytearray()
        self.rows = 0

    def append(self, row: TimelineRow) -> int:
        """Add a row; the bytes it took."""
        try:
            encoded = marshal.dumps(row)
        except ValueError:  # a rule label of a type marshal cannot write: kept as its text
            encoded = marshal.dumps((*row[:-1], str(row[-1])))
        self.data += encoded
        self.rows += 1
        return len(encoded)

    def append_event(self, event: Event, compiled: Any = None) -> int:
        """Add `event`'s row, marshalled in one call by labkit.native._events (`compiled`) where it
        takes the event's shape, else through `append`; the bytes it took."""
        if compiled is not None and type(event) is Event:
            added: int = compiled.append_row(self.data, event)  # 0: a row it leaves to marshal
            if added:
                self.rows += 1
                return added
        return self.append(timeline_row(event))

    def decoded(self) -> list[TimelineRow]:
        stream = io.BytesIO(self.data)
        return [marshal.load(stream) for _ in range(self.rows)]

    def keep(self, rows: int) -> int:
        """Keep the newest `rows`; the bytes freed."""
        if self.rows <= rows:
            return 0
        before = len(self.data)
        kept = self.decoded()[-rows:] if rows else []
        self.data, self.rows = bytearray(), 0
        for row in kept:
            self.append(row)
        return before - len(self.data)


def _phone_template() -> PhoneStatus | None:
    """A PhoneStatus whose slots a new phone's record may copy (labkit.native._fold), when
    PhoneStatus(mac) does nothing but set immutable defaults; else None (the class is called)."""
    plain = all(f.default_factory is dataclasses.MISSING and f.default is not dataclasses.MISSING
                for f in dataclasses.fields(PhoneStatus) if f.name != "mac")
    return PhoneStatus("") if plain and not hasattr(PhoneStatus, "__post_init__") else None


class LabOps:
    """An event sink: folds each event into the status and metrics and tells the subscribers."""

    def __init__(self, status: LabStatus, *, lab: dict[str, str] | None = None,
                 faults: tuple[Rule[Any], ...] = (), admin_url: str | None = None) -> None:
        self.status = status
        self.metrics = LabMetrics(status)  # read from the status when scraped
        self.lab = lab or {}
        self.faults = [fault_in_force(rule) for rule in faults]
        self.admin_url = admin_url
        self.timelines: dict[str, Timeline] = {}
        self.timeline_bytes = 0  # encoded bytes of all timelines (bounded by TIMELINE_BYTES)
        self.subscribers: set[asyncio.Queue[Message]] = set()
        self.acs: Any = None  # the ACS service (labkit.services.acs.AcsServer) when the lab runs one
        # labkit.native._events.row marshals a row in one call (None: not built, or LABKIT_NATIVE=0)
        self.native = native.load("_events")
        # labkit.native._fold: status.apply and the timeline row below in one call for the common
        # events (NotImplemented for the others); None: not built, LABKIT_NATIVE=0, or a LabStatus
        # subclass (its own apply)
        self.fold: Callable[[Event], PhoneStatus | Any | None] | None = None
        self._deliver: EventSink = self
        compiled = native.load("_fold")
        if compiled is not None and type(status) is LabStatus:
            folding = compiled.Fold(self, status, globals(), Event, ServiceCounters, PhoneStatus, Timeline,
                                    Counter, NOT_REQUESTS, MALFORMED_RESULTS, FINE, _phone_template(),
                                    Timeline())
            self.fold, self._deliver = folding.apply, folding.deliver

    @property
    def direct(self) -> EventSink:
        """What an EventBus calls instead of this instance: the same steps, compiled when the fold
        is (labkit.native._fold's deliver: no Python frame per event), else the instance."""
        return self._deliver

    def __call__(self, event: Event) -> None:
        changed = NotImplemented if self.fold is None else self.fold(event)
        if changed is NotImplemented:
            self._reference(event)
        elif changed is not None and self.subscribers:
            self._tell_phone(changed)

    def _reference(self, event: Event) -> None:
        """The pure path: status.apply and the phone's timeline row."""
        changed = self.status.apply(event)
        if changed is None:
            return
        timeline = self.timelines.get(changed.mac)
        if timeline is None:
            timeline = self.timelines[changed.mac] = Timeline()
        self.timeline_bytes += timeline.append_event(event, self.native)
        self._bound(timeline)
        if self.subscribers:
            self._tell_phone(changed)

    def _tell_phone(self, phone: PhoneStatus) -> None:
        self._tell(("phone", phone.to_dict()))

    def _bound(self, timeline: Timeline) -> None:
        """The timelines' bounds after a row (labkit.native._fold calls it past one of them)."""
        if timeline.rows >= 2 * TIMELINE_EVENTS:  # trimmed now and then, not at every event
            self.timeline_bytes -= timeline.keep(TIMELINE_EVENTS)
        if self.timeline_bytes > TIMELINE_BYTES:
            self._halve_timelines()

    def _halve_timelines(self) -> None:
        """Past the global bound: every timeline keeps its newer half (a sweep that at least
        halves the total, so it runs rarely). 100,000 phones of 300 rows would hold ~3 GB."""
        for timeline in self.timelines.values():
            self.timeline_bytes -= timeline.keep(timeline.rows // 2)

    def replan(self, plan: Plan) -> None:
        """After a reload: the new plan's phones join the table, its faults are the ones in force."""
        self.status.add_phones(phone_rows(plan))
        self.faults = [fault_in_force(rule) for rule in plan.faults]

    def _tell(self, message: Message) -> None:
        for queue in list(self.subscribers):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:  # too slow: start it over from a snapshot
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(("snapshot", self.snapshot()))

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[Message]]:
        queue: asyncio.Queue[Message] = asyncio.Queue(SUBSCRIBER_BACKLOG)
        self.subscribers.add(queue)
        try:
            yield queue
        finally:
            self.subscribers.discard(queue)

    def snapshot(self) -> dict[str, Any]:
        return {**self.status.snapshot(time.time()), "lab": self.lab, "faults_in_force": self.faults,
                "admin": self.admin_url}

    def counters(self) -> dict[str, Any]:
        full = self.status.snapshot(time.time())
        return {key: full[key] for key in ("events", "stages", "services", "faults_fired", "leases_in_use",
                                           "unknown_clients")}

    def phone(self, mac: str) -> dict[str, Any] | None:
        found = self.status.phones.get(mac)
        if found is None:
            return None
        timeline = self.timelines.get(mac)
        rows = timeline.decoded()[-TIMELINE_EVENTS:] if timeline is not None else []
        return {"phone": found.to_dict(), "events": [dict(zip(ROW_FIELDS, row, strict=True)) for row in rows]}
