"""An event's journal line in one call (labkit/native/_events.c)."""

from collections.abc import Callable
from typing import Any

def line(event: Any, quote: Callable[[str], str], detail_json: Callable[[Any], str]) -> str | None:
    """`event.to_json() + "\\n"` for the common shape (a finite float time, str fields, client and
    phone str or None, a dict detail), else None: the caller uses to_json."""
