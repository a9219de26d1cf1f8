"""Run the phone's logic with a synchronous effect handler (tests, dry runs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from labkit.phone.core import Logic, Outcome
from labkit.phone.effects import DhcpTransmit, Now, Sleep


class ScriptClock:
    """A clock that only moves when the phone sleeps: hours of retry delays take no time."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start


def run_sync(logic: Logic, handle: Callable[[Any], Any], clock: ScriptClock | None = None) -> Outcome:
    """Drive `logic` to its end; `handle(effect)` answers every effect but Now and Sleep.

    A DHCP transmission `handle` answers with None (silence) lasts its whole `wait`."""
    clock = clock or ScriptClock()
    reply: Any = None
    try:
        while True:
            effect = logic.send(reply)
            if isinstance(effect, Now):
                reply = clock.now
            elif isinstance(effect, Sleep):
                clock.now += effect.seconds
                reply = None
            else:
                reply = handle(effect)
                if reply is None and isinstance(effect, DhcpTransmit):
                    clock.now += effect.wait
    except StopIteration as stop:
        return stop.value
