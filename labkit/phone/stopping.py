"""Stop signals (SIGTERM, SIGINT, SIGHUP) as an exception, so every `with` and `finally` runs.

A command that changes the system (network namespaces, addresses on an interface, temporary
folders) must undo it however it ends. Python's default SIGTERM and SIGHUP end the process on
the spot; `stopped_by_signals` turns them into `Stopped` (a KeyboardInterrupt, as SIGINT is),
raised once: a second signal during the clean-up is ignored so the clean-up finishes. In asyncio
code, `CancelOnSignals` cancels the running task instead and says which signal came.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """The process was asked to stop by `signum`; whatever it changed has been undone on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # as a shell reports a process ended by that signal


@contextlib.contextmanager
def stopped_by_signals() -> Iterator[None]:
    """Raise `Stopped` in the main thread on the first stop signal; ignore the ones after it."""
    received: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        if received:
            return  # already cleaning up
        received.append(signum)
        raise Stopped(signum)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        if not received:  # after a stop, the process is on its way out: keep ignoring the others
            for sig, old in previous.items():
                signal.signal(sig, old)


class CancelOnSignals:
    """In a coroutine: a stop signal cancels the current task; `signum` says which came.

    Does nothing when not `enabled`, or outside the main thread (asyncio takes no signals there)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.signum: int | None = None
        self._installed: list[int] = []

    def __enter__(self) -> CancelOnSignals:
        if not self.enabled:
            return self
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def stop(signum: int) -> None:
            if self.signum is None:
                self.signum = signum
                task.cancel()

        for sig in STOP_SIGNALS:
            try:
                loop.add_signal_handler(sig, stop, sig)
            except (RuntimeError, ValueError, NotImplementedError):
                break
            self._installed.append(sig)
        return self

    def __exit__(self, *_: object) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._installed:
            loop.remove_signal_handler(sig)
