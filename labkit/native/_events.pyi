"""An event's journal line in one call (labkit/native/_events.c)."""

from collections.abc import Callable
from typing import Any

def line(event: Any, quote: Callable[[str], str], detail_json: Callable[[Any], str]) -> str | None:
    """`event.to_json() + "\\n"` for the common shape (a finite float time, str fields, client and
    phone str or None, a dict detail), else None: the caller uses to_json."""

def row(event: Any) -> bytes | None:
    """The event's timeline row (labkit.services.ops.timeline_row) marshalled (marshal.load reads
    the same tuple back), or None: a fault event (its rule is any object) or fields of other types."""

def append_row(data: bytearray, event: Any) -> int:
    """row(event) added to `data`: the bytes added, or 0 (nothing added) where row gives None."""

def append_line(data: bytearray, event: Any, quote: Callable[[str], str],
                detail_json: Callable[[Any], str]) -> int:
    """line(event, quote, detail_json) added to `data` (ASCII bytes): the bytes added, or 0 (nothing
    added) where line gives None."""

def time_text(when: float) -> str | None:
    """repr(when) as the compiled line writes it without dtoa (1 <= when < 2**53), or None where it
    leaves the time to repr."""

class Lines:
    """JsonLinesLog's per-event step in one call: Lines(pending, Event, quote, detail_json, journal,
    flush_at, max_bytes)(event) adds the event's line to `pending` and counts it in `size`, calling
    journal._slow(event) for a shape it leaves to to_json, journal._rotate_with(n) when the line
    opens the next file and journal._write() past flush_at pending bytes."""

    size: int
    max_bytes: int

    def __init__(self, pending: bytearray, event_type: type, quote: Callable[[str], str],
                 detail_json: Callable[[Any], str], journal: Any, flush_at: int, max_bytes: int) -> None: ...
    def __call__(self, event: Any) -> None: ...

class Limited:
    """Limited(lines, malformed_results, limiter)(event): lines(event), or limiter._limit(event) for
    an event whose result is in malformed_results (a MalformedLimiter in front of a journal)."""

    def __init__(self, lines: Lines, malformed_results: frozenset[str], limiter: Any) -> None: ...
    def __call__(self, event: Any) -> None: ...
