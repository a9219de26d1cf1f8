"""Run virtual phones against a running lab: the effects of `Phone.run()` done with real sockets."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from labkit.errors import CodecError, LabkitError
from labkit.inventory import names
from labkit.inventory.model import Inventory
from labkit.inventory.names import is_ip
from labkit.macros import normalize_mac
from labkit.phone.clients import HttpClient, dns_query, pick_address, tftp_get
from labkit.phone.core import Outcome, Phone, PhoneConfig
from labkit.phone.cwmp import CwmpSettings, vendor_class
from labkit.phone.effects import (
    DhcpNak,
    DhcpOffer,
    DhcpTransmit,
    DnsAnswer,
    Fetch,
    FetchResult,
    Lease,
    Log,
    LookupA,
    LookupSrv,
    Now,
    Sleep,
)
from labkit.phone.loss import CURRENT, Loss, phone_loss
from labkit.phone.network import DhcpClient, DhcpSettings, Identity, InterfaceAddresses, NetworkMap
from labkit.phone.stopping import CancelOnSignals, Stopped
from labkit.protocols.dhcp.message import NAK, OFFER, Message
from labkit.protocols.dhcp.options import decode_value


class VirtualClock:
    """Wall time sped up by `scale`: a 3600 s retry delay takes 3600/scale seconds."""

    MIN_WAIT = 0.25  # wall seconds: an answer may take this long on a loaded machine, whatever the scale

    def __init__(self, scale: float = 1.0, start: float | None = None) -> None:
        self.scale = scale
        self.start = time.time() if start is None else start
        self.t0 = time.monotonic()

    def now(self) -> float:
        return self.start + (time.monotonic() - self.t0) * self.scale

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.scale)

    def wait(self, seconds: float) -> float:
        """The wall seconds to wait for an answer the phone waits `seconds` for."""
        return max(self.MIN_WAIT, seconds / self.scale)


@dataclass
class LabAccess:
    """How phones reach a lab: the address map, DHCP path, and the lab CA for HTTPS."""

    network: NetworkMap
    dhcp: DhcpSettings
    ca_file: str | None = None
    syslog_port: int = 514
    interface: str | None = None  # a real segment: leased addresses are added here and used as source


@dataclass
class PhoneRun:
    """One phone's effects, done against the lab."""

    config: PhoneConfig
    access: LabAccess
    dhcp: DhcpClient
    http: HttpClient
    clock: VirtualClock
    syslog: asyncio.DatagramTransport | None = None
    lease: Lease | None = None
    on_step: Callable[[str, Any], None] | None = None
    requests: dict[str, int] = field(default_factory=dict)
    local_ip: str | None = None  # the leased address, once it is on the interface
    loss: Loss | None = None  # the phone's own lossy link (bench knob)
    addresses: InterfaceAddresses | None = None  # what this swarm added to the interface
    _xid: int | None = None  # the DHCP transaction whose answers this phone still listens for
    # option 60 when it is not the model (TR-069 on: labkit.phone.cwmp.vendor_class(model, mode))
    vendor_class: str | None = None

    def _count(self, kind: str) -> None:
        self.requests[kind] = self.requests.get(kind, 0) + 1

    _own_http: bool = False
    _who: Identity | None = None

    async def run(self) -> Outcome:
        logic = Phone(self.config).run()
        reply: Any = None
        try:
            while True:
                effect = logic.send(reply)
                reply = await self._perform(effect)
        except StopIteration as stop:
            return stop.value
        finally:
            if self._xid is not None:
                self.dhcp.forget(self._xid)
            if self._own_http:
                await self.http.__aexit__(None, None, None)

    async def _perform(self, effect: Any) -> Any:
        if isinstance(effect, Now):
            return self.clock.now()
        if isinstance(effect, Sleep):
            await self.clock.sleep(effect.seconds)
            return None
        if isinstance(effect, DhcpTransmit):
            return await self._dhcp(effect)
        if isinstance(effect, LookupSrv):
            return await self._dns(effect.name, "SRV")
        if isinstance(effect, LookupA):
            return await self._dns(effect.name, "A")
        if isinstance(effect, Fetch):
            result = await self._fetch(effect)
            if self.on_step is not None:
                self.on_step(self.config.mac, (effect, result))
            return result
        if isinstance(effect, Log):
            self._log(effect.message)
            return None
        raise TypeError(f"unknown effect {effect!r}")

    def _identity(self) -> Identity:
        """Who the phone says it is (made once: every DHCP message and syslog line uses it)."""
        if self._who is None:
            mac = bytes.fromhex(normalize_mac(self.config.mac).replace(":", ""))
            self._who = Identity(mac, "SEP" + mac.hex().upper(), self.vendor_class or self.config.model)
        return self._who

    async def _dhcp(self, effect: DhcpTransmit) -> DhcpOffer | DhcpNak | Lease | None:
        """One transmission of the core's DHCP message, and what came back for it in time."""
        self._count("dhcp")
        if effect.xid != self._xid:
            if self._xid is not None:
                self.dhcp.forget(self._xid)
            self._xid = effect.xid
        reply = await self.dhcp.transmit(effect, self._identity(), self.clock.wait(effect.wait), self.loss)
        if reply is None:
            return None
        server = reply.ip_option(54)
        if reply.message_type == OFFER:
            return DhcpOffer(str(reply.yiaddr), str(server) if server else "")
        if reply.message_type == NAK:
            return DhcpNak(str(server) if server else "")
        held = effect.lease
        if held is not None:  # renewed: same address, same options
            return Lease(str(reply.yiaddr), held.server, held.options, held.lease_time)
        return await self._bound(reply)

    async def _bound(self, ack: Message) -> Lease:
        options = {code: _option_value(code, payload) for code, payload in ack.options.items()}
        server = ack.ip_option(54)
        self.lease = Lease(str(ack.yiaddr), str(server) if server else "", options,
                           int(options.get(51, 0)) if isinstance(options.get(51), int) else 0)
        if self.access.interface is not None and self.local_ip is None:
            mask = options.get(1)
            prefix = IPv4Network(f"0.0.0.0/{mask}").prefixlen if mask is not None else 24
            assert self.addresses is not None
            await self.addresses.add(f"{ack.yiaddr}/{prefix}")
            self.local_ip = str(ack.yiaddr)
            self.http = HttpClient(self.access.network, self.access.ca_file, self.local_ip)
            await self.http.__aenter__()
            self._own_http = True
        return self.lease

    def _dns_server(self) -> tuple[str, int]:
        servers = self.lease.options.get(6) if self.lease else None
        address = str(servers[0]) if servers else next(iter(self.access.network.lab_addresses), "127.0.0.1")
        return self.access.network.endpoint(address, 53)

    async def _dns(self, name: str, qtype: str) -> DnsAnswer:
        self._count("dns")
        return await dns_query(self._dns_server(), name, qtype, local_ip=self.local_ip)

    async def _resolve(self, host: str) -> str | None:
        if is_ip(host):
            return host
        answer = await self._dns(host, "A")
        return pick_address(answer.addresses) if answer.addresses else None

    async def _fetch(self, effect: Fetch) -> FetchResult:
        parts = urlsplit(effect.url)
        scheme, host = parts.scheme.lower(), parts.hostname or ""
        # through a proxy the proxy resolves the server's name, not the phone
        address = host if effect.proxy and scheme in ("http", "https") else await self._resolve(host)
        if address is None:
            return FetchResult(None, error=f"DNS: {host} does not resolve")
        self._count(scheme)
        if scheme == "tftp":
            endpoint = self.access.network.endpoint(address, parts.port or 69)
            return await tftp_get(endpoint, parts.path or "/", local_ip=self.local_ip)
        if scheme in ("http", "https"):
            return await self.http.fetch(effect, address, self._lookup)
        return FetchResult(None, error=f"unsupported scheme {scheme}")

    async def _lookup(self, name: str) -> tuple[str, tuple[str, ...]]:
        """The phone's DNS lookup for its HTTP client (a proxy's name, a certificate's name)."""
        answer = await self._dns(name, "A")
        return answer.rcode, answer.addresses

    def _log(self, message: str) -> None:
        if self.syslog is None or self.lease is None or (self.loss is not None and self.loss.drops()):
            return
        servers = self.lease.options.get(7)
        address = str(servers[0]) if servers else self.lease.server
        if not address:
            return
        endpoint = self.access.network.endpoint(address, self.access.syslog_port)
        # RFC 3164 framing, facility local0, severity info, as an embedded device would
        stamp = time.strftime("%b %d %H:%M:%S", time.gmtime(self.clock.now()))
        host = self._identity().hostname  # "SEP" and the MAC's hex digits, upper case
        data = f"<134>{stamp} {host} prov: {message}".encode("ascii", "replace")
        if self.local_ip is not None:
            # from the phone's own address, so the lab tags the line with this phone
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind((self.local_ip, 0))
                sock.sendto(data, endpoint)
            return
        self.syslog.sendto(data, endpoint)


OPTION_CACHE = 1024  # (code, payload) -> value: a swarm's ACKs share most of their options
_option_values: dict[tuple[int, bytes], Any] = {}


def _option_value(code: int, payload: bytes) -> Any:
    """The typed value of an ACK's option (decode_value's, immutable: ints, strings, addresses
    and tuples), or the payload itself when the phone cannot read it; each distinct option of a
    swarm is decoded once."""
    key = (code, bytes(payload))
    value = _option_values.get(key)
    if value is None:
        try:
            value = decode_value(code, payload)
        except CodecError:
            value = payload  # kept raw: the phone ignores what it cannot read
        if len(_option_values) >= OPTION_CACHE:
            _option_values.clear()
        _option_values[key] = value
    return value


@dataclass
class SwarmResult:
    outcomes: list[Outcome]
    wall_seconds: float
    requests: dict[str, int]
    dropped: int = 0  # datagrams the phones' own lossy links lost (sent and received)


async def run_swarm(configs: list[PhoneConfig], access: LabAccess, *, concurrency: int = 64,
                    time_scale: float = 1.0, on_done: Callable[[Outcome], None] | None = None,
                    on_step: Callable[[str, Any], None] | None = None, loss: float = 0.0,
                    seed: int = 0, cwmp: CwmpSettings | None = None) -> SwarmResult:
    """Boot `configs` against the lab, at most `concurrency` at once; with `loss`, every phone
    loses that fraction of the datagrams it sends and receives (seeded by `seed` and its MAC).

    On a real interface the leased addresses put on it are taken off again however the run
    ends: normally, by an error, or by SIGTERM/SIGINT/SIGHUP (then `Stopped` is raised).
    With `cwmp`, each phone then speaks TR-069 when those settings or its profile enable it."""
    dhcp = DhcpClient(access.dhcp)
    try:
        await dhcp.open()
    except OSError as exc:
        raise LabkitError(str(exc.strerror or exc)) from None
    addresses = InterfaceAddresses(access.interface) if access.interface else None
    loop = asyncio.get_running_loop()
    syslog, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("0.0.0.0", 0))
    swarm = _Swarm(access, dhcp, VirtualClock(time_scale), syslog, addresses, asyncio.Semaphore(concurrency),
                   on_done, on_step, loss, seed, cwmp=cwmp)
    started = time.monotonic()
    signals = CancelOnSignals(enabled=addresses is not None)
    try:
        with signals:
            async with HttpClient(access.network, access.ca_file) as http:
                outcomes = await asyncio.gather(*(swarm.one(c, http) for c in configs))
    except asyncio.CancelledError:
        if signals.signum is not None:
            raise Stopped(signals.signum) from None
        raise
    finally:
        dhcp.close()
        syslog.close()
        if addresses is not None:
            addresses.remove_all()
    return SwarmResult(list(outcomes), time.monotonic() - started, swarm.requests, swarm.dropped)


@dataclass
class _Swarm:
    """What the phones of one swarm share, and what they add up to."""

    access: LabAccess
    dhcp: DhcpClient
    clock: VirtualClock
    syslog: asyncio.DatagramTransport
    addresses: InterfaceAddresses | None
    gate: asyncio.Semaphore
    on_done: Callable[[Outcome], None] | None
    on_step: Callable[[str, Any], None] | None
    loss: float
    seed: int
    requests: dict[str, int] = field(default_factory=dict)
    dropped: int = 0
    cwmp: CwmpSettings | None = None  # TR-069 after provisioning (labkit.phone.cwmp_driver)

    async def one(self, config: PhoneConfig, http: HttpClient) -> Outcome:
        async with self.gate:
            lossy = phone_loss(self.loss, self.seed, config.mac)
            CURRENT.set(lossy)  # this phone's task only: its UDP and TCP clients read it
            cwmp = self.cwmp
            dslforum = vendor_class(config.model, cwmp.vendor_class_mode) if cwmp and cwmp.enabled else None
            run = PhoneRun(config, self.access, self.dhcp, http, self.clock, self.syslog,
                           on_step=self.on_step, loss=lossy, addresses=self.addresses, vendor_class=dslforum)
            outcome = await run.run()
            if self.cwmp is not None:
                from labkit.phone.cwmp_driver import run_cwmp  # it builds on this module

                await run_cwmp(run, outcome, self.cwmp)
            for kind, count in run.requests.items():
                self.requests[kind] = self.requests.get(kind, 0) + count
            self.dropped += lossy.dropped if lossy is not None else 0
            if self.on_done is not None:
                self.on_done(outcome)
            return outcome


def loopback_access(inv: Inventory, target: str, offset: int, ca_file: Path | None) -> LabAccess:
    """How phones reach a lab served on loopback at `offset`: the lab's own addresses map to
    `target`, and DHCP goes relay-style from another loopback address (no root needed)."""
    lab_addresses = frozenset(str(a) for a in names.kit_addresses(inv))
    relay = "127.0.0.2" if target != "127.0.0.2" else "127.0.0.3"
    return LabAccess(NetworkMap(lab_addresses, target, offset),
                     DhcpSettings((target, 67 + offset), relay_ip=relay, client_port=68 + offset),
                     ca_file=str(ca_file) if ca_file and ca_file.is_file() else None)
