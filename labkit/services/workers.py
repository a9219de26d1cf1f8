"""DNS, TFTP and HTTP over several processes (`labkit up --workers N`), one ordered event log.

With N > 1 the main process starts N worker processes (labkit.services.worker_main);
each serves the pooled services (DNS, TFTP, HTTP) on the same endpoints with SO_REUSEPORT
(`Endpoint(reuse_port=True)`), so the kernel spreads clients over them. DHCP (the single writer
of the leases), HTTPS, syslog and the admin API stay in the main process. An HTTP worker serves
files and forwards what needs the main process (activation, reports, dynamic routes) to the main
process's own HTTP service on a private port (labkit.services.http_forward).

The main process talks to each worker over the worker's stdin and stdout, in frames (a 4-byte
length, then a pickle; both ends are labkit's, so the pickles come from our own child):
- main → worker: ("start", name, config, endpoint, setup), ("reload", name, config, setup),
  ("counters", name), ("stop",). `setup` (a WorkerSetup): what the worker's StartContext needs.
- worker → main: ("started", name, port), ("failed", name, message, errno or None),
  ("counters", name, dict), ("events", [Row, ...]) (an Event's fields as a tuple), and
  ("columns", [Template, ...], [time, ...], [count, ...], [template index, ...]): an event's
  fields but its time in a template shared by every event that has them (a DNS peer asking the
  same question again), one template index per event, and the times as runs (`count` events in
  a row at `time`: a DNS wake-up is stamped with one clock reading), so an event costs an int on
  the wire and, in the main process, at most a copy of its template's dict (the same template
  in one run is one Event object, as the one-process DNS drain shares them within a wake-up).
Events are batched in the worker (sent every FLUSH_SECONDS or every BATCH_EVENTS events, as
columns) and go into the main process's bus
in the order they arrive, so the journal, status, metrics and board see every worker's events
in one stream and count them per service as if one process had served them. A worker does not
know the DHCP leases: an event without a phone gets it from the main process's directory.

Bounds: a worker's HTTP and TFTP bounds (connections, sessions) are its own, so N workers hold
at most N times each bound.

Fault rules: each worker gets the plan's rules with a random source drawn from the lab's
(seeded with --fault-seed), so `probability` holds overall; `first`/`every` count per worker.

Life: a worker asks the kernel to SIGTERM it when its parent dies (PR_SET_PDEATHSIG) and also
stops when its stdin closes; the pool stops workers with ("stop",), then closes their stdin,
and kills by PID only a worker still running after STOP_SECONDS. Reload sends the new plan's
part to every worker, which calls the service's own `reload`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import random
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from types import FunctionType, MethodType
from typing import TYPE_CHECKING, Any, cast

from labkit.events import Event, EventSink, StaticDirectory, make_event
from labkit.faults.engine import FaultEngine, Rule
from labkit.faults.hooks import Faults
from labkit.services.context import Endpoint, StartContext
from labkit.services.workers_wire import (  # noqa: F401  (re-exported: worker_main, tests)
    _FIELDS,
    DELIVER,
    EVENT_FROM,
    EVENT_OF,
    Row,
    Template,
    frame,
    read_frame,
    read_only,
    row_of,
)

if TYPE_CHECKING:
    from labkit.services.filetree import FileTree
    from labkit.services.http import HttpServer
    from labkit.services.http_forward import HttpLink

# the services the workers serve; everything else stays in the main process (HTTP: the workers
# serve files and forward what needs the main process there, labkit.services.http_forward)
POOLED = ("dns", "tftp", "http")
FLUSH_SECONDS = 0.05  # a worker sends its events at least this often while it has some
BATCH_EVENTS = 8192  # ... and at once when it has this many (fewer frames: fewer templates to rebuild)
STOP_SECONDS = 10.0  # a worker still running this long after "stop" is killed (by its PID)
START_SECONDS = 60.0  # a worker must have started a service within this
PR_SET_PDEATHSIG = 1


def auto_workers() -> int:
    """`--workers auto`: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker needs to build its StartContext (picklable; from the main process's ctx)."""

    tree: FileTree
    fixed_ips: dict[str, str]
    known_macs: frozenset[str]
    state_dir: Path
    rules: tuple[Rule[Any], ...]
    fault_seed: int
    fault_phones: dict[str, tuple[str, str | None]]
    started: float
    http: HttpLink | None = None  # HTTP: the way to the main process (labkit.services.http_forward)

    @classmethod
    def of(cls, ctx: StartContext, seed: int, started: float) -> WorkerSetup:
        engine = ctx.faults.engine
        hooks = [h for h in (ctx.faults.dhcp, ctx.faults.dns, ctx.faults.tftp, ctx.faults.http) if h]
        directory = ctx.directory
        return cls(ctx.tree, dict(directory.by_address) if isinstance(directory, StaticDirectory) else {},
                   ctx.known_macs, ctx.state_dir, engine.rules if engine is not None else (), seed,
                   dict(hooks[0].phones) if hooks else {}, hooks[0].started if hooks else started)

    def context(self, sink: EventSink) -> StartContext:
        engine = FaultEngine(self.rules, random.Random(self.fault_seed))
        faults = Faults.build(engine, sink, self.fault_phones, started=self.started)
        return StartContext(self.tree, sink, StaticDirectory(dict(self.fixed_ips)), self.known_macs,
                            self.state_dir, faults)



def _direct(bus: EventSink) -> EventSink:
    """The bus's own `__call__` method, bound, where its class defines one in Python: calling it
    per event skips the look-up of `__call__` and the bound method made for each call."""
    call = vars(type(bus)).get("__call__")  # (the class's own: a subclass's or a wrapper's stay as they are)
    return cast(EventSink, MethodType(call, bus)) if isinstance(call, FunctionType) else bus


_NAMED_BY_ADDRESS = ("http",)  # its events say how the phone was named: here, by its leased address


# ---------------------------------------------------------------------------------------------
# the main process's side


class Worker:
    """One worker process and the task reading what it says."""

    def __init__(self, index: int, process: asyncio.subprocess.Process, pool: WorkerPool) -> None:
        self.index, self.process, self.pool = index, process, pool
        self.replies: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        assert process.stdout is not None
        self.reader = asyncio.get_running_loop().create_task(self._read(process.stdout))

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, message: object) -> None:
        stdin = self.process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.write(frame(message))

    async def _read(self, stdout: asyncio.StreamReader) -> None:
        while (message := await read_frame(stdout)) is not None:
            if message[0] == "columns":
                self.pool.deliver_columns(*message[1:])
            elif message[0] == "events":
                self.pool.deliver(message[1])
            else:
                await self.replies.put(message)
        if not self.pool.stopping:  # a worker that ends on its own: its share of clients goes unanswered
            code = await self.process.wait()
            self.pool.ctx.bus(make_event("kit", None, None, "workers", f"worker {self.index + 1} "
                                         f"(pid {self.pid})", f"exited with status {code}", "error"))
        await self.replies.put(("exited", None, None))

    async def ask(self, message: object) -> tuple[Any, ...]:
        self.send(message)
        async with asyncio.timeout(START_SECONDS):
            return await self.replies.get()


class WorkerPool:
    """N worker processes serving the pooled services; `start(name, config, endpoint)` gives the
    lab a handle (closable, reloadable) per service. The processes end when the last handle closes."""

    def __init__(self, count: int, ctx: StartContext, *, started: float) -> None:
        self.count = count
        self.ctx = ctx
        self.started = started
        self.workers: list[Worker] = []
        self.handles: dict[str, PooledService] = {}
        self.delivered = 0
        self.stopping = False
        self.inner: dict[str, HttpServer] = {}  # HTTP: the main process's own service
        self.links: dict[str, HttpLink] = {}
        engine = ctx.faults.engine
        rng = engine.random if engine is not None else random.Random()
        self._seeds = [rng.getrandbits(64) for _ in range(count)]

    @property
    def pids(self) -> list[int]:
        return [worker.pid for worker in self.workers]

    def deliver(self, rows: list[Row]) -> None:
        """A worker's batch into the lab's bus, in order; a phone the worker did not know is
        looked up in the main process's directory (the DHCP leases live here)."""
        bus, event_of = self.ctx.bus, EVENT_OF
        phones: dict[str, str | None] = {}
        made: dict[int, Event] = {}  # by id(row): `rows` holds every row, so ids are unique here
        for row in rows:
            event = made.get(id(row))
            if event is None:
                phone, detail = self._phone_of(row[1], row[2], row[3], row[8], phones)
                event = made[id(row)] = event_of((*row[:8], detail) if detail is not row[8] else row, phone)
            bus(event)
        self.delivered += len(rows)

    def deliver_columns(self, templates: list[Template], times: list[float], counts: list[int],
                        which: list[int]) -> None:
        """A worker's batch as columns (see the module's protocol) into the lab's bus, in order;
        each event gets its own fields dict (and its own empty detail when the template's is)."""
        phones: dict[str, str | None] = {}
        bases = []
        for service, client, phone, *rest in templates:
            phone, rest[-1] = self._phone_of(service, client, phone, cast(dict[str, Any], rest[-1]), phones)
            bases.append(dict(zip(_FIELDS, (0.0, service, client, phone, *rest), strict=True)))
        empty = [not base["detail"] for base in bases]
        self.delivered += DELIVER(_direct(self.ctx.bus), bases, empty, times, counts, which)

    def _phone_of(self, service: str, client: str | None, phone: str | None, detail: dict[str, Any],
                  phones: dict[str, str | None]) -> tuple[str | None, dict[str, Any]]:
        """A worker's event's phone: when the worker named none, the main process's directory's
        phone at the client's address (looked up once per batch, cached in `phones`); the detail
        then says so for the services whose events carry how the phone was named."""
        if phone is not None or not client:
            return phone, detail
        phone = phones.get(client, "")
        if phone == "":
            phone = phones[client] = self.ctx.directory.phone_at(client.rsplit(":", 1)[0])
        if phone is not None and service in _NAMED_BY_ADDRESS:
            detail = {**detail, "identified_by": "address"}
        return phone, detail

    async def _spawn(self) -> None:
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])  # the folder holding the labkit package
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        for index in range(self.count):
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "labkit.services.worker_main", str(os.getpid()),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env)
            self.workers.append(Worker(index, process, self))

    def _setup(self, ctx: StartContext, index: int, name: str) -> WorkerSetup:
        return replace(WorkerSetup.of(ctx, self._seeds[index], self.started), http=self.links.get(name))

    async def _start_inner(self, name: str, config: Any) -> None:
        """HTTP: the main process's own service on a private loopback port, for what the workers
        forward (labkit.services.http_forward)."""
        if name != "http":
            return
        from labkit.services.http import start_http
        from labkit.services.http_forward import HttpLink

        link = HttpLink()
        inner = await start_http(config, Endpoint("http", "127.0.0.1", 0, "tcp"), self.ctx, link=link)
        self.inner[name], self.links[name] = inner, replace(link, port=inner.port)

    async def start(self, name: str, config: object, endpoint: Endpoint) -> PooledService:
        """Start `name` in every worker (port 0: the first worker's port for the others)."""
        from labkit.services.supervisor import StartError  # (the supervisor imports this module)

        if not self.workers:
            await self._spawn()
        shared = replace(endpoint, reuse_port=True)
        serving: list[int] = []
        try:
            await self._start_inner(name, config)
            for worker in self.workers:
                setup = self._setup(self.ctx, worker.index, name)
                reply = await worker.ask(("start", name, config, shared, setup))
                if reply[0] == "started":
                    serving.append(worker.pid)
                    shared = replace(shared, port=int(reply[2])) if shared.port == 0 else shared
                elif serving and reply[0] == "failed" and reply[3] == errno.EADDRINUSE:
                    # a service whose starter does not honour reuse_port: the first worker serves it
                    self.ctx.bus(make_event("kit", None, None, "workers", name, f"served by {len(serving)} "
                                            f"of {self.count} workers: {reply[2]}", "degraded"))
                else:
                    problem = reply[2] if reply[0] == "failed" else "the worker process ended"
                    raise StartError(f"{name} worker {worker.index + 1}/{self.count}: {problem}")
        except BaseException:
            await self._close_inner(name)
            if not self.handles:
                await self.stop()
            raise
        handle = PooledService(self, name, shared.port, serving)
        self.handles[name] = handle
        return handle

    async def counters(self, name: str) -> list[dict[str, Any]]:
        out = []
        for worker in self.workers:
            reply = await worker.ask(("counters", name))
            out.append(reply[2] if reply[0] == "counters" else {})
        return out

    def reload(self, name: str, config: object, ctx: StartContext) -> None:
        self.ctx = replace(ctx, bus=self.ctx.bus)
        inner = self.inner.get(name)
        if inner is not None:
            inner.reload(config, self.ctx)  # type: ignore[arg-type]  # the HTTP plan
        for worker in self.workers:
            worker.send(("reload", name, config, self._setup(ctx, worker.index, name)))

    async def _close_inner(self, name: str) -> None:
        inner = self.inner.pop(name, None)
        self.links.pop(name, None)
        if inner is not None:
            await inner.close()

    async def release(self, name: str) -> None:
        self.handles.pop(name, None)
        await self._close_inner(name)
        if not self.handles:
            await self.stop()

    async def stop(self) -> None:
        """Stop every worker: ask, close its stdin, wait; kill (by its PID) one that stays."""
        self.stopping = True
        for worker in self.workers:
            worker.send(("stop",))
            if worker.process.stdin is not None:
                worker.process.stdin.close()
        for worker in self.workers:
            try:
                async with asyncio.timeout(STOP_SECONDS):
                    await worker.process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.kill()
                await worker.process.wait()
            with contextlib.suppress(asyncio.CancelledError):
                await worker.reader  # its last events reach the bus before the lab closes the log
        self.workers = []


class PooledService:
    """What the lab holds for a pooled service: close it, reload it, see where it listens."""

    def __init__(self, pool: WorkerPool, name: str, port: int, pids: list[int]) -> None:
        self.pool, self.name, self.port = pool, name, port
        self.workers = pids  # the PIDs of the worker processes serving it

    async def counters(self) -> list[dict[str, Any]]:
        """Each worker's counters for this service (e.g. DNS queries and answers by rcode)."""
        return await self.pool.counters(self.name)

    def reload(self, config: object, ctx: StartContext) -> None:
        self.pool.reload(self.name, config, ctx)

    async def close(self) -> None:
        await self.pool.release(self.name)
