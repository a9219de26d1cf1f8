"""Run every enabled service of a plan in one asyncio process, and stop them all cleanly.

Services are started from a table of starters, in a fixed order, each with the same start
context (file tree, event bus, phone directory, typed fault hooks built before any service
starts); a service that cannot bind stops the whole start (what was already started is closed)
with a message naming the address. `labkit.services.running.run_lab` wraps this for `labkit up`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import random
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from labkit.errors import LabkitError
from labkit.events import Event, EventSink, StaticDirectory
from labkit.faults.engine import FaultEngine
from labkit.faults.hooks import Faults
from labkit.plan.build import Plan
from labkit.services.acs_start import start_acs_service
from labkit.services.context import Closable, Endpoint, StartContext
from labkit.services.filetree import FileTree
from labkit.services.journal import MALFORMED_PER_SECOND, EventBus, JsonLinesLog, MalformedLimiter
from labkit.services.ops import LabOps, phone_rows
from labkit.services.status import LabStatus
from labkit.services.workers import POOLED, WorkerPool

__all__ = ["EventBus", "JsonLinesLog", "RunningLab", "StartError", "endpoints", "free_port_offset",
           "serve_until_stopped", "start_lab", "wait_for_stop"]

if TYPE_CHECKING:
    from labkit.capture import Capture
    from labkit.inventory.faults import FaultRule
    from labkit.services.admin import AdminSettings

STANDARD_PORTS = {"dns": 53, "tftp": 69, "http": 80, "https": 443, "syslog": 514, "dhcp": 67, "proxy": 3128,
                  "admin": 8080, "acs": 7547}
LOOPBACK = "127.0.0.1"
LOOPBACK_OFFSET = 10000
# DHCP last: phones arrive only once everything they will ask for next is up
START_ORDER = ("syslog", "dns", "tftp", "http", "https", "proxy", "acs", "dhcp")


def free_port_offset(host: str = LOOPBACK) -> int:
    """An offset at which every service port (TCP and UDP, DHCP's client port too) is free on `host`."""
    import socket

    ports = (*STANDARD_PORTS.values(), STANDARD_PORTS["dhcp"] + 1)
    for _ in range(200):
        offset = random.randrange(20000, 65535 - max(ports), 100)
        if all(_port_free(host, port + offset, kind) for port in ports
               for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM)):
            return offset
    raise StartError(f"no free port offset on {host}")


def _port_free(host: str, port: int, kind: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


class StartError(LabkitError):
    """A service could not start (usually: it could not bind its address)."""


TRANSPORTS = {"dns": "udp+tcp", "tftp": "udp", "http": "tcp", "https": "tcp", "syslog": "udp",
              "dhcp": "udp", "proxy": "tcp", "acs": "tcp"}


def endpoints(plan: Plan, *, loopback: bool = False, port_offset: int | None = None) -> dict[str, Endpoint]:
    """Where each enabled service listens: the plan's address and ports, or loopback + offset."""
    offset = port_offset if port_offset is not None else (LOOPBACK_OFFSET if loopback else 0)
    out: dict[str, Endpoint] = {}
    for service in START_ORDER:
        config = plan.listen.get(service)
        if config is None or not config.enabled:
            continue
        port = (config.port or STANDARD_PORTS[service]) + offset
        if not 1 <= port <= 65535:
            raise StartError(f"{service}: port {port} (offset {offset}) is outside 1..65535")
        if loopback or port_offset is not None:
            host = LOOPBACK
        else:
            host = config.bind or plan.kit_address
        out[service] = Endpoint(service, host, port, TRANSPORTS[service])
    return out


def admin_endpoint(settings: AdminSettings | None, *, loopback: bool = False,
                   port_offset: int | None = None) -> Endpoint | None:
    """Where the control API and dashboard listen: loopback unless told, port 8080 + the offset."""
    if settings is None or not settings.enabled:
        return None
    offset = port_offset if port_offset is not None else (LOOPBACK_OFFSET if loopback else 0)
    port = settings.port if settings.port is not None else STANDARD_PORTS["admin"] + offset
    if not 1 <= port <= 65535:
        raise StartError(f"admin: port {port} (offset {offset}) is outside 1..65535")
    return Endpoint("admin", settings.host, port, "tcp")


class View(Protocol):
    """A live view of the lab: entered and left as a context manager, fed every event."""

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: object) -> Any: ...

    def __call__(self, event: Event) -> None: ...


@dataclass
class RunningLab:
    plan: Plan
    endpoints: dict[str, Endpoint]
    services: dict[str, Closable] = field(default_factory=dict)
    bus: EventBus = field(default_factory=EventBus)
    ca_path: Path | None = None
    faults: Faults = field(default_factory=Faults)  # the typed hooks every service was started with
    directory: StaticDirectory | None = None  # who is at which address (fixed IPs, then leases)
    journal: JsonLinesLog | None = None  # set by run_lab
    capture: Capture | None = None  # set by run_lab when asked for pcaps
    stack: contextlib.AsyncExitStack | None = None  # run_lab's: what it owns, closed in reverse
    ops: LabOps | None = None  # status, metrics and timelines for the control API
    admin: Endpoint | None = None  # the admin HTTP port (dashboard, /metrics), when on
    admin_token: str | None = None  # required there when it is off loopback
    control_socket: Path | None = None  # STATE/control.sock, while the lab runs
    # how it was started, for a reload (labkit.services.reload): placement, --fault rules, seed
    loopback: bool = False
    port_offset: int | None = None
    state_dir: Path = Path(".labkit")
    cli_faults: tuple[FaultRule, ...] = ()
    fault_seed: int | None = None
    started: float = 0.0  # when the lab started (fault rules' `after`/`until` count from it)

    async def close(self) -> None:
        for name in reversed(list(self.services)):
            await self.services.pop(name).close()

    def watch(self, view: View) -> None:
        """Show the lab in `view` (e.g. the live board) for as long as run_lab runs; run_lab
        leaves it before anything else."""
        assert self.stack is not None, "watch() is for a lab started by run_lab"
        self.stack.enter_context(view)
        self.bus.sinks.append(view)
        self.stack.callback(self._unsubscribe, view)

    def _unsubscribe(self, sink: EventSink) -> None:
        with contextlib.suppress(ValueError):  # the bus drops a sink that failed
            self.bus.sinks.remove(sink)

    def follow(self, sink: EventSink, *, malformed_per_second: int = MALFORMED_PER_SECOND) -> None:
        """Send events to `sink` (e.g. printed lines), malformed input rate-limited as in the log."""
        assert self.stack is not None, "follow() is for a lab started by run_lab"
        limited = MalformedLimiter(sink, malformed_per_second)
        self.bus.sinks.append(limited)
        self.stack.callback(limited.flush)


Starter = Callable[[Plan, Endpoint, StartContext], Awaitable[Closable]]


async def _start_dns(plan: Plan, ep: Endpoint, ctx: StartContext) -> Closable:
    from labkit.services.dns import start_dns

    return await start_dns(plan.dns, ep, ctx)


async def _start_tftp(plan: Plan, ep: Endpoint, ctx: StartContext) -> Closable:
    from labkit.services.tftp import start_tftp

    return await start_tftp(plan.tftp, ep, ctx)


async def _start_http(plan: Plan, ep: Endpoint, ctx: StartContext) -> Closable:
    from labkit.services.http import start_http

    return await start_http(plan.http, ep, ctx)


async def _start_https(plan: Plan, ep: Endpoint, ctx: StartContext) -> Closable:
    from labkit.services.http import start_http
    from labkit.tls import ServerCredentials, ensure_server_certificate, prepare_keylog, server_ssl_context

    tls = plan.tls
    if tls.own:
        assert tls.cert is not None and tls.key is not None
        credentials = ServerCredentials(tls.cert, tls.key, None)
    else:
        addresses = sorted({*tls.addresses, ep.host})
        credentials = ensure_server_certificate(ctx.state_dir, tls.lab_name, tls.names, addresses)
    ctx.ca_path = credentials.ca_path
    if ctx.tls_keylog is not None:
        try:
            prepare_keylog(ctx.tls_keylog)
        except OSError as exc:
            raise StartError(f"--tls-keylog {ctx.tls_keylog}: {exc.strerror or exc}") from None
    context = server_ssl_context(credentials, keylog=ctx.tls_keylog)
    return await start_http(plan.https, ep, ctx, ssl_context=context)


async def _start_dhcp(plan: Plan, ep: Endpoint, ctx: StartContext) -> Closable:
    from labkit.services.dhcp import start_dhcp

    if not ep.loopback and plan.dhcp.interface is None:
        raise StartError("dhcp: the inventory names no `lab.interface`; DHCP binds to one named "
                         "interface only (or run with --loopback)")
    return await start_dhcp(plan.dhcp, ep, ctx)


async def _start_syslog(plan: Plan, ep: Endpoint, ctx: StartContext) -> Closable:
    from labkit.services.syslog import start_syslog

    return await start_syslog(None, ep, ctx)


async def _start_proxy(plan: Plan, ep: Endpoint, ctx: StartContext) -> Closable:
    from labkit.services.proxy import start_proxy  # started when the inventory turns it on
    return await start_proxy(plan.proxy, ep, ctx)


STARTERS: dict[str, Starter] = {
    "syslog": _start_syslog, "dns": _start_dns, "tftp": _start_tftp, "http": _start_http,
    "https": _start_https, "proxy": _start_proxy, "acs": start_acs_service, "dhcp": _start_dhcp,
}


def preflight(plan: Plan, *, listen: float | None = None) -> None:
    """Refuse to serve DHCP on a segment where another DHCP server answers (it listens for
    `lab.rival_dhcp_listen` seconds unless told otherwise)."""
    from labkit.services.preflight import probe

    config = plan.dhcp
    if config.interface is None:
        return
    server = config.server
    # an INIT-REBOOT REQUEST for an address of ours also catches servers that answer only REQUESTs
    ask_for = server.pool[0] if server.pool else next(
        (ip for ip in server.network.hosts() if ip not in server.own), None)
    rivals = probe(config.interface, listen=config.rival_listen if listen is None else listen,
                   ask_for=ask_for)
    if rivals:
        said = {"OFFER": "offered {}", "ACK": "acknowledged {}", "NAK": "refused our probe (NAK)"}
        named = "; ".join(f"server {r.server_id} (MAC {r.mac}) " + said[r.kind].format(r.offered)
                          for r in rivals)
        raise StartError(f"another DHCP server answers on {config.interface}: {named}. Two servers race for "
                         "every phone; stop it, or start with --allow-other-dhcp if you mean it")


async def start_lab(plan: Plan, *, loopback: bool = False, port_offset: int | None = None,
                    state_dir: Path = Path(".labkit"), sinks: list[EventSink] | None = None,
                    allow_other_dhcp: bool = False, faults: list[FaultRule] | None = None,
                    fault_seed: int | None = None, admin: AdminSettings | None = None,
                    tls_keylog: Path | None = None, workers: int = 1) -> RunningLab:
    """Start every enabled service; on any failure close what started and raise StartError.

    `faults`: rules from the command line, after the plan's own (`Plan.with_faults`). `admin`:
    where the control API listens besides STATE/control.sock (None: the socket only).
    `tls_keylog`: where TLS servers log their session keys (NSS key log format). `workers` > 1:
    DNS and TFTP in that many processes (labkit.services.workers)."""
    plan = plan.with_faults(faults or [])
    lab = RunningLab(plan, endpoints(plan, loopback=loopback, port_offset=port_offset), loopback=loopback,
                     port_offset=port_offset, state_dir=state_dir, cli_faults=tuple(faults or ()),
                     fault_seed=fault_seed, started=time.time())
    await _check_dhcp_segment(plan, lab.endpoints, allow_other_dhcp)
    if admin is not None:
        lab.admin = admin_endpoint(admin, loopback=loopback, port_offset=port_offset)
        lab.ops = _make_ops(plan, lab.admin)
        lab.bus.sinks.append(lab.ops)
    lab.bus.sinks.extend(sinks or [])
    state_dir.mkdir(parents=True, exist_ok=True)
    lab.directory = StaticDirectory(dict(plan.fixed_ips))
    engine = FaultEngine(plan.faults, random.Random(fault_seed))
    lab.faults = Faults.build(engine, lab.bus, plan.fault_phones, started=lab.started)
    ctx = StartContext(FileTree(plan.files), lab.bus, lab.directory, plan.known_macs, state_dir, lab.faults,
                       tls_keylog=tls_keylog)
    pool = WorkerPool(workers, ctx, started=lab.started) if workers > 1 else None
    for name, ep in lab.endpoints.items():
        try:
            lab.services[name] = await (pool.start(name, getattr(plan, name), ep) if pool and name in POOLED
                                        else STARTERS[name](plan, ep, ctx))
        except StartError:
            await lab.close()
            raise
        except OSError as exc:
            await lab.close()
            raise _cannot_listen(name, ep, exc, loopback or port_offset is not None) from None
    lab.ca_path = ctx.ca_path
    if admin is not None:
        await _start_admin(lab, admin, state_dir, loopback or port_offset is not None)
    return lab


def _make_ops(plan: Plan, admin: Endpoint | None) -> LabOps:
    status = LabStatus.of_phones(phone_rows(plan))
    url = f"http://{admin.host}:{admin.port}/" if admin is not None else None
    inv = plan.inventory.lab
    return LabOps(status, lab={"name": inv.name, "domain": inv.domain}, faults=plan.faults, admin_url=url)


async def _start_admin(lab: RunningLab, admin: AdminSettings, state_dir: Path, local: bool) -> None:
    """The control socket (always) and the admin port (when on); a failure closes the lab."""
    from labkit.services.admin import ControlSocketError, start_admin

    assert lab.ops is not None
    lab.admin_token = admin.token
    try:
        server = await start_admin(lab.ops, lab.admin, state_dir, lab.admin_token)
    except ControlSocketError as exc:
        await lab.close()
        raise StartError(f"control socket: {exc}") from None
    except OSError as exc:
        await lab.close()
        assert lab.admin is not None
        problem = _cannot_listen("admin", lab.admin, exc, local)
        raise StartError(f"{problem} (--admin :PORT moves the dashboard, --admin off leaves it "
                         "out)") from None
    except ValueError as exc:
        await lab.close()
        raise StartError(f"admin: {exc}") from None
    lab.services["admin"] = server
    lab.control_socket = server.socket_path


async def _check_dhcp_segment(plan: Plan, eps: dict[str, Endpoint], allow_other_dhcp: bool) -> None:
    """Off loopback, DHCP needs the lab interface, and no other DHCP server on it."""
    if "dhcp" not in eps or eps["dhcp"].host == LOOPBACK:
        return
    interface = plan.interface
    if interface is not None and not Path(f"/sys/class/net/{interface}").exists():
        raise StartError(f"the lab interface {interface!r} (lab.interface) does not exist on this machine; "
                         "name the interface of your bench segment in the inventory, or try the lab "
                         "on this machine with --loopback")
    if allow_other_dhcp:
        return
    from labkit.services.preflight import PreflightError

    try:
        await asyncio.to_thread(preflight, plan)
    except (PreflightError, OSError) as exc:
        raise StartError(f"dhcp preflight on {interface}: {exc} (--loopback runs the lab on "
                         "127.0.0.1 without it)") from None


def _cannot_listen(name: str, ep: Endpoint, exc: OSError, local: bool) -> StartError:
    if exc.errno == errno.EADDRINUSE:
        hint = " - another program is listening there"
    elif local:
        hint = ""
    else:
        hint = (" - is the lab interface up with this address? "
                "`--loopback` runs the lab on 127.0.0.1 instead")
    return StartError(f"{name} cannot listen on {ep.host}:{ep.port}: {exc.strerror or exc}{hint}")


async def wait_for_stop(stop: asyncio.Event | None = None, *, on_reload: Callable[[], None] | None = None,
                        ready: Callable[[], None] | None = None) -> None:
    """Wait for SIGINT or SIGTERM (or `stop`); each ends the lab cleanly. SIGHUP calls
    `on_reload` (`labkit up`: reload the inventory) and waiting goes on; without `on_reload` it
    stops the lab cleanly too (its default action would end the process, the journal unflushed).
    `ready` is called once the handlers are in place (`labkit up` prints its banner then)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    handlers = {signal.SIGINT: stop.set, signal.SIGTERM: stop.set, signal.SIGHUP: on_reload or stop.set}
    for sig, handler in handlers.items():
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread (tests)
            loop.add_signal_handler(sig, handler)
            installed.append(sig)
    try:
        if ready is not None:
            ready()
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def serve_until_stopped(lab: RunningLab, stop: asyncio.Event | None = None) -> None:
    """Wait for SIGINT, SIGTERM or SIGHUP (or `stop`), then close every service."""
    try:
        await wait_for_stop(stop)
    finally:
        await lab.close()
