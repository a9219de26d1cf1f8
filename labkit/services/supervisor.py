"""Run every enabled service of a plan in one asyncio process, and stop them all cleanly.

Services are started from a table of starters, in a fixed order; a service that cannot bind
stops the whole start (what was already started is closed) with a message naming the address.
DHCP joins the table in its own milestone.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.errors import LabkitError
from labkit.events import Event, EventSink, StaticDirectory
from labkit.faults import FaultEngine, FaultHooks, FaultRule
from labkit.faults.hooks import Faults
from labkit.inventory import names
from labkit.plan.build import Plan
from labkit.services.context import Closable, Endpoint, StartContext
from labkit.services.filetree import FileTree

STANDARD_PORTS = {"dns": 53, "tftp": 69, "http": 80, "https": 443, "syslog": 514, "dhcp": 67}
LOOPBACK = "127.0.0.1"
LOOPBACK_OFFSET = 10000
# DHCP last: phones arrive only once everything they will ask for next is up
START_ORDER = ("syslog", "dns", "tftp", "http", "https", "dhcp")


def free_port_offset(host: str = LOOPBACK) -> int:
    """An offset at which every service port (TCP and UDP, DHCP's client port too) is free on `host`."""
    import random
    import socket

    ports = (*STANDARD_PORTS.values(), STANDARD_PORTS["dhcp"] + 1)
    for _ in range(200):
        offset = random.randrange(20000, 60000, 100)
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
              "dhcp": "udp"}


def endpoints(plan: Plan, *, loopback: bool = False, port_offset: int | None = None) -> dict[str, Endpoint]:
    """Where each enabled service listens: the inventory's address and ports, or loopback + offset."""
    inv = plan.inventory
    offset = port_offset if port_offset is not None else (LOOPBACK_OFFSET if loopback else 0)
    out: dict[str, Endpoint] = {}
    for service in START_ORDER:
        config = getattr(inv.services, service)
        if not config.enabled:
            continue
        port = (config.port or STANDARD_PORTS[service]) + offset
        if not 1 <= port <= 65535:
            raise StartError(f"{service}: port {port} (offset {offset}) is outside 1..65535")
        if loopback or port_offset is not None:
            host = LOOPBACK
        else:
            host = str(config.bind or names.kit_address(inv))
        out[service] = Endpoint(service, host, port, TRANSPORTS[service])
    return out


class EventBus:
    """Fans events out to every sink; a failing sink is dropped, never the service."""

    def __init__(self) -> None:
        self.sinks: list[EventSink] = []
        self.count = 0

    def __call__(self, event: Event) -> None:
        self.count += 1
        for sink in list(self.sinks):
            try:
                sink(event)
            except Exception:  # a broken log or board must not stop the lab
                self.sinks.remove(sink)


class JsonLinesLog:
    """Events as JSON lines. Flushed by `flush_periodically` and at close, not per event: a
    syscall per DNS query would cost more than answering it."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("a", encoding="utf-8")

    def __call__(self, event: Event) -> None:
        self.file.write(event.to_json() + "\n")

    def flush(self) -> None:
        self.file.flush()

    async def flush_periodically(self, every: float = 0.5) -> None:
        while True:
            await asyncio.sleep(every)
            self.file.flush()

    def close(self) -> None:
        if not self.file.closed:
            self.file.flush()
            self.file.close()


@dataclass
class RunningLab:
    plan: Plan
    endpoints: dict[str, Endpoint]
    services: dict[str, Closable] = field(default_factory=dict)
    bus: EventBus = field(default_factory=EventBus)
    ca_path: Path | None = None
    faults: FaultEngine | None = None
    directory: StaticDirectory | None = None  # who is at which address (fixed IPs, then leases)

    async def close(self) -> None:
        for name in reversed(list(self.services)):
            await self.services.pop(name).close()


Starter = Callable[[Plan, Endpoint, StartContext], Awaitable[Closable]]


async def _start_dns(plan: Plan, ep: Endpoint, ctx: StartContext) -> Closable:
    from labkit.protocols.dns.resolver import AuthoritativeResolver
    from labkit.services.dns import start_dns

    return await start_dns(AuthoritativeResolver(plan.zones), ep.host, ep.port, ctx.bus, ctx.directory)


async def _start_tftp(plan: Plan, ep: Endpoint, ctx: StartContext) -> Closable:
    from labkit.services.tftp import start_tftp

    upload = plan.inventory.services.tftp.upload_dir
    upload_dir = plan.loaded.base_dir / upload if upload else None
    return await start_tftp(ctx.tree, ep.host, ep.port, ctx.bus, ctx.directory, upload_dir=upload_dir)


async def _start_http(plan: Plan, ep: Endpoint, ctx: StartContext) -> Closable:
    from labkit.services.http import start_http

    return await start_http(plan.http, ep, ctx)


async def _start_https(plan: Plan, ep: Endpoint, ctx: StartContext) -> Closable:
    from labkit.services.http import start_http
    from labkit.tls import ServerCredentials, ensure_server_certificate, server_ssl_context

    inv = plan.inventory  # until the plan carries its TLS choice (plan.tls)
    if inv.tls.cert and inv.tls.key:
        base = plan.loaded.base_dir
        credentials = ServerCredentials(base / inv.tls.cert, base / inv.tls.key, None)
    else:
        addresses = sorted({str(a) for a in names.kit_addresses(inv)} | {ep.host})
        credentials = ensure_server_certificate(ctx.state_dir, inv.lab.name, plan.tls_names, addresses)
    ctx.ca_path = credentials.ca_path
    return await start_http(plan.https, ep, ctx, ssl_context=server_ssl_context(credentials))


async def _start_dhcp(plan: Plan, ep: Endpoint, ctx: StartContext) -> Closable:
    from labkit.services.dhcp import start_dhcp

    inv = plan.inventory
    loopback = ep.host == LOOPBACK
    interface = None if loopback else inv.lab.interface
    if not loopback and interface is None:
        raise StartError("dhcp: the inventory names no `lab.interface`; DHCP binds to one named "
                         "interface only (or run with --loopback)")
    # under loopback, clients listen one port above the server, as 67/68 do
    return await start_dhcp(plan, ep.host, ep.port, ctx.bus, ctx.directory, ctx.state_dir,
                            interface=interface, client_port=ep.port + 1)


async def _start_syslog(plan: Plan, ep: Endpoint, ctx: StartContext) -> Closable:
    from labkit.services.syslog import start_syslog

    return await start_syslog(ep.host, ep.port, ctx.bus, ctx.directory, known_macs=frozenset(ctx.known_macs))


STARTERS: dict[str, Starter] = {
    "syslog": _start_syslog,
    "dns": _start_dns,
    "tftp": _start_tftp,
    "http": _start_http,
    "https": _start_https,
    "dhcp": _start_dhcp,
}


def _http_faults(rules: list[FaultRule], bus: EventBus, inv: Any, seed: int | None) -> Faults:
    """Transitional (until the hub's labkit.plan.faults builds every service's hooks): typed
    HTTP hooks from the rules, for the services that take theirs from the start context."""
    import random
    import time

    from labkit.faults.engine import FaultEngine as PureEngine
    from labkit.faults.engine import Match, Rule, When
    from labkit.protocols.http_faults import HttpFaultAction

    http = [Rule(rule.label(index), "http", HttpFaultAction(**rule.http.model_dump()),
                 Match(**rule.match.model_dump()), When(**rule.when.model_dump()))
            for index, rule in enumerate(rules) if rule.http is not None]
    if not http:
        return Faults()
    engine = PureEngine(http, random.Random(seed))
    return Faults.build(engine, bus, {p.mac: (p.model, p.group) for p in inv.phones}, started=time.time())


def preflight(plan: Plan, *, listen: float = 2.0) -> None:
    """Refuse to serve DHCP on a segment where another DHCP server answers."""
    from labkit.services.preflight import probe

    interface = plan.inventory.lab.interface
    if interface is None:
        return
    rivals = probe(interface, listen=listen)
    if rivals:
        named = "; ".join(f"server {r.server_id} (MAC {r.mac}) offered {r.offered}" for r in rivals)
        raise StartError(f"another DHCP server answers on {interface}: {named}. Two servers race for "
                         "every phone; stop it, or start with --allow-other-dhcp if you mean it")


async def start_lab(plan: Plan, *, loopback: bool = False, port_offset: int | None = None,
                    state_dir: Path = Path(".labkit"), sinks: list[EventSink] | None = None,
                    allow_other_dhcp: bool = False, faults: list[FaultRule] | None = None,
                    fault_seed: int | None = None) -> RunningLab:
    """Start every enabled service; on any failure close what started and raise StartError."""
    inv = plan.inventory
    lab = RunningLab(plan, endpoints(plan, loopback=loopback, port_offset=port_offset))
    interface = inv.lab.interface
    if "dhcp" in lab.endpoints and lab.endpoints["dhcp"].host != LOOPBACK and interface is not None \
            and not Path(f"/sys/class/net/{interface}").exists():
        raise StartError(f"the lab interface {interface!r} (lab.interface) does not exist on this machine; "
                         "name the interface of your bench segment in the inventory, or try the lab "
                         "on this machine with --loopback")
    if "dhcp" in lab.endpoints and lab.endpoints["dhcp"].host != LOOPBACK and not allow_other_dhcp:
        from labkit.services.preflight import PreflightError

        try:
            await asyncio.to_thread(preflight, plan)
        except (PreflightError, OSError) as exc:
            raise StartError(f"dhcp preflight on {inv.lab.interface}: {exc} (--loopback runs the lab on "
                             "127.0.0.1 without it)") from None
    lab.bus.sinks.extend(sinks or [])
    state_dir.mkdir(parents=True, exist_ok=True)
    directory = StaticDirectory({str(p.ip): p.mac for p in inv.phones if p.ip is not None})
    rules = [*inv.faults, *(faults or [])]
    ctx = StartContext(FileTree(plan.files), lab.bus, directory, frozenset(p.mac for p in inv.phones),
                       state_dir, faults=_http_faults(rules, lab.bus, inv, fault_seed))
    for name, ep in lab.endpoints.items():
        try:
            lab.services[name] = await STARTERS[name](plan, ep, ctx)
        except StartError:
            await lab.close()
            raise
        except OSError as exc:
            await lab.close()
            if exc.errno == errno.EADDRINUSE:
                hint = " - another program is listening there"
            elif loopback or port_offset is not None:
                hint = ""
            else:
                hint = (" - is the lab interface up with this address? "
                        "`--loopback` runs the lab on 127.0.0.1 instead")
            raise StartError(f"{name} cannot listen on {ep.host}:{ep.port}: {exc.strerror or exc}{hint}"
                             ) from None
    lab.ca_path = ctx.ca_path
    lab.directory = directory
    if rules:
        import time

        engine = FaultEngine(rules, started=time.time(), seed=fault_seed)
        hooks = FaultHooks(engine, lab.bus, {p.mac: (p.model, p.group) for p in inv.phones})
        for name, service in lab.services.items():
            if hasattr(service, "faults") and (name in ("http", "https") or engine.wants(name)):  # type: ignore[arg-type]
                service.faults = hooks  # type: ignore[attr-defined]
        lab.faults = engine
    return lab


async def serve_until_stopped(lab: RunningLab, stop: asyncio.Event | None = None) -> None:
    """Wait for SIGINT/SIGTERM (or `stop`), then close every service."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread (tests)
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await lab.close()
