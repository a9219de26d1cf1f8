"""A worker process of `labkit up --workers N` (`python -m labkit.services.worker_main PARENT_PID`).

It serves what the main process asks it to start (DNS, TFTP, HTTP) on SO_REUSEPORT endpoints, sends
its events back in batches, and ends when told to stop, when its stdin closes, on SIGTERM, or
when its parent dies (PR_SET_PDEATHSIG). The protocol is described in labkit.services.workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import functools
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from labkit.errors import LabkitError
from labkit.events import Event
from labkit.services.context import Closable, Endpoint, StartContext
from labkit.services.workers import (
    BATCH_EVENTS,
    FLUSH_SECONDS,
    PR_SET_PDEATHSIG,
    Template,
    WorkerSetup,
    frame,
    read_frame,
)


class Batcher:
    """The worker's event sink: events go to the main process in batches, as columns (see
    labkit.services.workers): a template per distinct set of fields but the time, per event the
    index of its template, and the times as runs (a DNS drain stamps a whole wake-up with one).

    Besides `sink(event)`, a hot path (the DNS drain, labkit.services.dns_udp) may skip the
    Event per event: `template_of(event)` gives an index it may reuse for equal events until
    `generation` changes (a flush), and `at(when, indexes)` takes one event per index, in order,
    all at time `when`. No Event is held past the call that made it. A source (the DNS socket's
    thread, labkit.services.dns_pump) that logs elsewhere is in `sources`: each is asked to hand
    over what it holds (`add_runs`) before an event enters here and before a frame goes."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self.write = write
        self.generation = 0  # template indexes from template_of() hold while this stays
        self.templates: list[Template] = []
        self.which: list[int] = []  # per event: its template's index
        self.times: list[float] = []  # the events' times, as runs: times[k] for counts[k] events
        self.counts: list[int] = []
        self._index: dict[tuple[Any, ...], int] = {}  # template (empty detail only) -> its index
        self._timer: asyncio.TimerHandle | None = None
        self.sources: list[Callable[[], None]] = []
        self._flushing = False

    def __call__(self, event: Event) -> None:
        for source in self.sources:  # what they logged before this event goes first
            source()
        self.which.append(self.template_of(event))
        times = self.times
        if times and times[-1] == event.time:
            self.counts[-1] += 1
        else:
            times.append(event.time)
            self.counts.append(1)
        self._pending()

    def at(self, when: float, indexes: list[int]) -> None:
        """One event per template index (from template_of, this generation), in order, at `when`."""
        if indexes:
            self.which.extend(indexes)
            if self.times and self.times[-1] == when:  # a wake-up's second batch: one run
                self.counts[-1] += len(indexes)
            else:
                self.times.append(when)
                self.counts.append(len(indexes))
            self._pending()

    def add_runs(self, times: list[float], counts: list[int], which: list[int]) -> None:
        """Runs of template indexes (this generation's): `counts[k]` events at `times[k]`, as
        many `at()` calls, and one check for a flush after all of them (never between)."""
        if not which:
            return
        self.which.extend(which)
        if self.times and times and self.times[-1] == times[0]:
            self.counts[-1] += counts[0]
            times, counts = times[1:], counts[1:]
        self.times.extend(times)
        self.counts.extend(counts)
        if not self._flushing:
            self._pending()

    def template_of(self, event: Event) -> int:
        key = (event.service, event.client, event.phone, event.action, event.request, event.answer,
               event.result)
        detail = event.detail
        index = None if detail else self._index.get(key)  # a detail is never shared
        if index is None:
            index = len(self.templates)
            self.templates.append((*key, detail))
            if not detail:
                self._index[key] = index
        return index

    def _pending(self) -> None:
        if len(self.which) >= BATCH_EVENTS:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        self._flushing = True
        try:
            for source in self.sources:
                source()
        finally:
            self._flushing = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.which:
            message = ("columns", self.templates, self.times, self.counts, self.which)
            self.templates, self.times, self.counts, self.which, self._index = [], [], [], [], {}
            self.generation += 1
            self.write(frame(message))


async def _start_service(name: str, config: Any, endpoint: Endpoint, setup: WorkerSetup,
                         batcher: Batcher) -> Closable:
    ctx = setup.context(batcher)
    starters: dict[str, Callable[[Any, Endpoint, StartContext], Awaitable[Closable]]] = {}
    if name == "dns":
        from labkit.services.dns import start_dns

        starters["dns"] = start_dns
    elif name == "tftp":
        from labkit.services.tftp import start_tftp

        starters["tftp"] = start_tftp
    elif name == "http":  # files here; what needs the main process goes there
        from labkit.services.http import start_http

        starters["http"] = functools.partial(start_http, link=setup.http, forwarding=True)
    if name not in starters:
        raise LabkitError(f"{name} is not served by workers")
    return await starters[name](config, endpoint, ctx)


async def _serve_commands(reader: asyncio.StreamReader, write: Callable[[bytes], None],
                          batcher: Batcher, stop: asyncio.Event) -> None:
    services: dict[str, Closable] = {}
    try:
        while not stop.is_set() and (message := await read_frame(reader)) is not None:
            if message[0] == "start":
                _, name, config, endpoint, setup = message
                try:
                    service = await _start_service(name, config, endpoint, setup, batcher)
                except (LabkitError, OSError) as exc:
                    cause = exc if isinstance(exc, OSError) else exc.__cause__ or exc.__context__
                    code = cause.errno if isinstance(cause, OSError) else None
                    if code is None and "in use" in str(exc):
                        code = errno.EADDRINUSE  # a service that words its bind error itself
                    write(frame(("failed", name, str(exc), code)))
                    continue
                services[name] = service
                write(frame(("started", name, getattr(service, "port", endpoint.port))))
            elif message[0] == "reload":
                _, name, config, setup = message
                target = services.get(name)
                if target is not None and hasattr(target, "reload"):
                    target.reload(config, setup.context(batcher))
            elif message[0] == "counters":
                counters = getattr(services.get(message[1]), "counters", None)
                write(frame(("counters", message[1], dict(counters) if isinstance(counters, dict) else {})))
            elif message[0] == "stop":
                break
    finally:
        for service in reversed(list(services.values())):
            with contextlib.suppress(Exception):
                await service.close()
        batcher.flush()


def _die_with_parent(parent: int) -> None:
    """SIGTERM when the parent dies (Linux); exit now if it is already gone."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:
        raise SystemExit(0)


async def _worker_main(out: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reader = asyncio.StreamReader(limit=1 << 26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    transport, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(out, "wb", buffering=0))

    def write(data: bytes) -> None:
        if not transport.is_closing():
            transport.write(data)

    batcher = Batcher(write)
    commands = loop.create_task(_serve_commands(reader, write, batcher, stop))
    stopping = loop.create_task(stop.wait())
    await asyncio.wait({commands, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not commands.done():
        commands.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await commands
    batcher.flush()
    for _ in range(200):  # the last events out before the process ends (bounded: 2 s)
        if transport.is_closing() or not transport.get_write_buffer_size():
            break
        await asyncio.sleep(0.01)
    transport.close()
    await asyncio.sleep(0)


def main(argv: list[str]) -> None:
    _die_with_parent(int(argv[0]))
    out = os.dup(1)  # the channel to the main process; stray prints go to stderr instead
    os.dup2(2, 1)
    asyncio.run(_worker_main(out))


if __name__ == "__main__":
    main(sys.argv[1:])
