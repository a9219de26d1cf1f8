"""Where events go: the bus that fans them out, the JSON-lines journal (rotated by size), and a
limiter that keeps floods of malformed input out of the log while counting every one of them."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from pathlib import Path
from typing import Any

from labkit import native
from labkit.events import MALFORMED_RESULTS, Event, EventSink, _detail_json, _quote

MIB = 1024 * 1024
LOG_MAX_BYTES = 32 * MIB  # one journal file, before it rotates
LOG_BACKUPS = 3  # events.jsonl.1 .. .3 kept: 4 files, 128 MiB at most by default
MALFORMED_PER_SECOND = 20  # malformed-input events written per service per second; the rest counted
PENDING_BYTES = 64 * 1024  # journal lines gathered before one write (and at every flush, rotation, close)


class EventBus:
    """Fans events out to every sink; a failing sink is dropped, never the service. Counts every
    event, and every malformed-input event per service, exactly (whatever the log keeps)."""

    def __init__(self) -> None:
        self.sinks: list[EventSink] = []
        self.count = 0
        self.malformed: Counter[str] = Counter()
        self._seen: tuple[EventSink, ...] = ()  # the sinks as last seen, and (sink, what is called for it):
        self._calls: tuple[tuple[EventSink, EventSink], ...] = ()  # a class may name a `direct` callable

    def __call__(self, event: Event) -> None:
        self.count += 1
        if event.result in MALFORMED_RESULTS:  # is_malformed, without a call per event
            self.malformed[event.service] += 1
        sinks = tuple(self.sinks)
        if sinks != self._seen:  # (LabOps: its compiled fold, without a Python frame per event)
            self._seen, self._calls = sinks, tuple(
                (sink, sink.direct if getattr(type(sink), "direct", None) is not None else sink)  # type: ignore[attr-defined]
                for sink in sinks)
        for sink, call in self._calls:
            try:
                call(event)
            except Exception:  # a broken log or board must not stop the lab
                self.sinks.remove(sink)


class MalformedLimiter:
    """A sink in front of another: at most `per_second` malformed-input events per service and
    second (of the events' own time) pass; the rest are counted and summarised by one
    "suppressed" event when that service's next window opens, or at `flush()`."""

    def __init__(self, inner: EventSink, per_second: int = MALFORMED_PER_SECOND) -> None:
        self.inner = inner
        # a journal's compiled step, called straight for the common events (no Python frame between)
        lines = inner.lines if isinstance(inner, JsonLinesLog) else None
        self.passing: EventSink = lines or inner
        # what an EventBus calls instead of this instance: the same steps, in one C call when the
        # inner sink is a compiled journal (labkit.native._events.Limited), else the instance
        compiled = native.load("_events") if lines is not None else None
        self._direct: EventSink = self
        if compiled is not None:
            self._direct = compiled.Limited(lines, MALFORMED_RESULTS, self)
        self.per_second = per_second
        self.windows: dict[str, tuple[int, int]] = {}  # service -> (second, events passed in it)
        self.suppressed: dict[str, tuple[int, float, float]] = {}  # service -> (count, first, last)
        self.total_suppressed = 0

    @property
    def direct(self) -> EventSink:
        return self._direct

    def __call__(self, event: Event) -> None:
        if event.result not in MALFORMED_RESULTS:  # not is_malformed(event), without the call
            self.passing(event)
            return
        self._limit(event)

    def _limit(self, event: Event) -> None:
        """A malformed-input event: passed while its service's second has room, else counted."""
        second = int(event.time)
        window, passed = self.windows.get(event.service, (second, 0))
        if window != second:
            self._summarise(event.service)
            window, passed = second, 0
        if passed < self.per_second:
            self.windows[event.service] = (window, passed + 1)
            self.inner(event)
            return
        self.windows[event.service] = (window, passed)
        count, first, _ = self.suppressed.get(event.service, (0, event.time, event.time))
        self.suppressed[event.service] = (count + 1, first, event.time)
        self.total_suppressed += 1

    def _summarise(self, service: str) -> None:
        pending = self.suppressed.pop(service, None)
        if pending is None:
            return
        count, first, last = pending
        self.inner(Event(last, service, None, None, "suppressed", "malformed input",
                         f"suppressed {count} malformed event(s)", "suppressed",
                         {"count": count, "first": first, "last": last,
                          "limit_per_second": self.per_second}))

    def flush(self) -> None:
        """Write the summaries still pending (periodically, and when the lab stops)."""
        for service in list(self.suppressed):
            self._summarise(service)


class JsonLinesLog:
    """Events as JSON lines, rotated by size: when `path` would pass `max_bytes` it becomes
    `path.1` (`.1` becomes `.2`, ... up to `backups`; the oldest is deleted), so the journal never
    holds more than (backups + 1) x max_bytes. Flushed by `flush_periodically` and at close, not
    per event: a syscall per DNS query would cost more than answering it. The lines (UTF-8, ASCII
    in practice: json's escapes) are gathered in one bytearray and written PENDING_BYTES at a time
    or at a flush, a rotation or close: no text-file write per event."""

    def __init__(self, path: Path, *, max_bytes: int = LOG_MAX_BYTES, backups: int = LOG_BACKUPS) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_bytes = max(max_bytes, 1)
        self.backups = max(backups, 0)
        self.file = path.open("ab")
        self.pending = bytearray()  # lines not yet written
        # labkit.native._events.Lines does __call__'s steps for an Event in one call: the same line
        # as Event.to_json added to `pending`, the size, and _slow, _rotate_with and _write for the
        # rare steps (None: not built here, or LABKIT_NATIVE=0); the limiter in front calls it straight
        self.native = native.load("_events")
        self.lines: Any = None  # labkit.native._events.Lines, or None
        if self.native is not None:
            self.lines = self.native.Lines(self.pending, Event, _quote, _detail_json, self, PENDING_BYTES,
                                           self.max_bytes)
        self._size = 0
        self.size = self.file.tell()  # the file's bytes, the pending lines included

    @property
    def size(self) -> int:
        return int(self.lines.size) if self.lines is not None else self._size

    @size.setter
    def size(self, value: int) -> None:
        if self.lines is not None:
            self.lines.size = value
        self._size = value

    def __call__(self, event: Event) -> None:
        if self.lines is not None:
            self.lines(event)
        else:
            self._slow(event)

    def _slow(self, event: Event) -> None:
        """The reference path (and the compiled one's for shapes it leaves to to_json)."""
        line = (event.to_json() + "\n").encode("utf-8")
        size, lines = len(line), self.lines
        self.pending += line
        total = self._size if lines is None else lines.size  # (the property, without its call)
        if total and total + size > self.max_bytes:
            self._rotate_with(size)
            total = 0
        self._size = total + size
        if lines is not None:
            lines.size = total + size
        if len(self.pending) >= PENDING_BYTES:
            self._write()

    def _rotate_with(self, size: int) -> None:
        """The line just added (its `size` last bytes) opens the next file."""
        opening = self.pending[-size:]
        del self.pending[-size:]
        self._rotate()
        self.pending += opening

    def _write(self) -> None:
        if self.pending:
            self.file.write(self.pending)
            self.pending.clear()

    def rotated(self) -> list[Path]:
        """The rotated files that exist, oldest first."""
        named = (self.path.with_name(f"{self.path.name}.{n}") for n in range(self.backups, 0, -1))
        return [p for p in named if p.exists()]

    def _rotate(self) -> None:
        self._write()
        self.file.close()
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
        else:
            for n in range(self.backups, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{n}")
                newer = self.path.with_name(f"{self.path.name}.{n - 1}") if n > 1 else self.path
                if newer.exists():
                    newer.replace(older)
        self.file = self.path.open("ab")
        self.size = 0

    def flush(self) -> None:
        self._write()
        self.file.flush()

    async def flush_periodically(self, every: float = 0.5,
                                 before: list[MalformedLimiter] | None = None) -> None:
        while True:
            await asyncio.sleep(every)
            for limiter in before or []:
                limiter.flush()
            self.flush()

    def close(self) -> None:
        if not self.file.closed:
            with contextlib.suppress(OSError):
                self.flush()
            self.file.close()
