"""The DNS service: UDP and TCP on one port around the pure AuthoritativeResolver.

UDP skips asyncio's datagram transport on purpose: that transport reads one datagram per
event-loop turn and sends through its own buffering layer. We register the socket with
`loop.add_reader` and drain up to UDP_BATCH datagrams per wake-up (labkit/services/dns_udp.py).
A reply that cannot be sent at once (socket buffer full) is dropped and counted: the client
retries.

The UDP hot path (issue 15) answers from `UdpReplies`: the resolver's whole reply to a query
seen before, kept by the query's bytes after its ID (byte-identical by construction; the
resolver runs for the first asking only). Per datagram that leaves one dict look-up and one
join; the Event is stamped with one clock reading per drain, and one peer asking the same
question again within a drain gets the same (frozen, equal) Event object. Where the compiled
module labkit.native._udp is built (and LABKIT_NATIVE is not 0), the drain receives and sends
in batches (recvmmsg/sendmmsg) and looks the kept replies up in C; the pure drain is the
reference and the tests hold the two byte for byte. While a fault rule concerns DNS every query
takes the reference path (resolver, fault hooks), none the table.

TCP (RFC 7766) uses asyncio streams: 2-byte length framing, any number of queries per
connection answered in order. Connections are bounded so that idle or hostile clients cannot
lock others out (issue 10): an idle timeout between complete queries, a much shorter one for
finishing a message once its first byte arrived (a 1-byte "slow loris" connection ends after
a few seconds), a cap on connections per client address (a client over it is closed at once,
everyone else is still served) and a cap on all connections.

The service is started as every service is: `start_dns(config, endpoint, ctx)`, with the
plan's DnsPlan (the zones as the core's own input), where to listen, and the shared start
context (event bus, phone directory, typed fault hooks in `ctx.faults.dns`).

The resolver returns the shared Result vocabulary (one Datagram, one Fact per query); every
fact becomes one Event (service "dns", action "query") through `labkit.events.fact_event`, the
quick equivalent of `events_from` for per-packet services.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from labkit.errors import LabkitError
from labkit.events import EventSink, PhoneDirectory, fact_event
from labkit.native import load
from labkit.protocols.dns import AuthoritativeResolver, DnsFact
from labkit.protocols.dns.faults import DnsFaultAction, apply_dns_fault, negative_probe
from labkit.protocols.dns.replies import KEY_MAX, UdpReplies
from labkit.protocols.result import Result
from labkit.services import dns_pump
from labkit.services.dns_udp import NATIVE_BATCH, SERVICE, UDP_BATCH, UDP_RECV_SIZE, drain_native, drain_pure
from labkit.services.sockets import DropCounter, DropWatch

if TYPE_CHECKING:  # annotations only: the service imports nothing of the plan or the inventory
    from labkit.faults.hooks import ServiceFaults
    from labkit.plan.zones import DnsPlan
    from labkit.services.context import Endpoint, StartContext

UDP_RCVBUF = 1 << 20  # ask for 1 MiB of socket buffer to ride out bursts (the kernel may cap it)
TCP_IDLE_TIMEOUT = 10.0  # seconds a connection may wait for its next query to start (RFC 7766 §6.2.3)
TCP_PARTIAL_TIMEOUT = 3.0  # seconds to finish a message (length prefix and body) once it started
TCP_MAX_CONNECTIONS = 256
TCP_MAX_PER_CLIENT = 16  # open connections per client address: one address cannot fill the table
TCP_BACKLOG = 128
_PORT_ATTEMPTS = 20  # port 0: tries at finding a port free for both UDP and TCP
_TCP_DETAIL = {"transport": "tcp"}


@dataclass(frozen=True)
class TcpLimits:
    """How long and how many TCP connections the service keeps (tests use small values)."""

    idle_timeout: float = TCP_IDLE_TIMEOUT  # between complete queries
    partial_timeout: float = TCP_PARTIAL_TIMEOUT  # from a message's first byte to its last
    max_connections: int = TCP_MAX_CONNECTIONS
    max_per_client: int = TCP_MAX_PER_CLIENT


class DnsServiceError(LabkitError):
    """The DNS service could not start (address in use, bad host, ...)."""


class DnsService:
    """A running DNS service; `await close()` stops UDP and TCP and ends open connections."""

    def __init__(self, resolver: AuthoritativeResolver, host: str, sink: EventSink,
                 directory: PhoneDirectory, *, faults: ServiceFaults[DnsFaultAction] | None = None,
                 limits: TcpLimits = TcpLimits()) -> None:
        self.resolver = resolver
        self.replies = UdpReplies(resolver)  # whole UDP replies by query bytes (the hot path)
        self.host = host
        self.port = 0
        self._sink = sink
        self._phone_at = directory.phone_at
        self.limits = limits
        self._loop = asyncio.get_running_loop()
        self._udp: socket.socket | None = None
        self._tcp: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self._per_client: dict[str, int] = {}  # open connections by client address
        self.udp_send_errors = 0
        self.udp_receive_errors = 0
        self.tcp_connections = 0
        self.tcp_rejected = 0
        self.sink_errors = 0
        self._faults = faults  # None when no fault rule concerns DNS
        self.drops = DropCounter("dns", sink)  # datagrams the kernel dropped on the UDP socket
        self.drop_watch: DropWatch | None = None
        self._native: Any = None  # labkit.native._udp.Drain on the UDP socket, when built
        self.native_udp = False  # whether the UDP socket is drained by the compiled module
        self.pump: dns_pump.UdpPump | None = None  # a worker's: the Drain's thread reads the socket
        # a worker's drain: per peer its template indexes while the sink's generation and the
        # reply table stay (labkit.services.dns_udp._index_peers)
        self.index_peers: tuple[int, UdpReplies, Any] | None = None

    def _fault(self, query: bytes, result: Result, ip: str, client: str) -> bytes | None:
        """The answer to send once fault rules had their say (only called when some rule concerns DNS)."""
        assert self._faults is not None
        wire = _wire(result)
        fact = result.facts[0] if result.facts else None
        qname, qtype = (fact.qname, fact.qtype) if isinstance(fact, DnsFact) else ("", "")
        fired = self._faults.check(mac=self._phone_at(ip), client=client, request=f"{qtype} {qname}",
                                   name=qname)
        for hit in fired:
            negative = None
            if hit.action.rcode == "NXDOMAIN" and (probe := negative_probe(query)) is not None:
                negative = _wire(self.resolver.answer(probe))
            wire = apply_dns_fault(query, wire, hit.action, negative)
        return wire

    def reload(self, config: DnsPlan, ctx: StartContext) -> None:
        """Serve a new plan's zones and fault rules from the next datagram on (same sockets)."""
        self.resolver = AuthoritativeResolver(config.zones, max_udp=config.max_udp)
        if self.pump is not None:  # what the thread logged from the old table goes first
            self.pump.collect()
        self.replies = UdpReplies(self.resolver)  # a new, empty table: nothing of the old zones
        self._faults = ctx.faults.dns
        if self.pump is not None:
            self.pump.reload()
        self._choose_reader()

    @property
    def counters(self) -> dict[str, object]:
        if self.pump is not None:
            self.pump.collect()
        return {**self.resolver.counters, "udp_send_errors": self.udp_send_errors,
                "udp_receive_errors": self.udp_receive_errors, "tcp_connections": self.tcp_connections,
                "tcp_rejected": self.tcp_rejected, "sink_errors": self.sink_errors}

    # -- events -------------------------------------------------------------------------------

    def _emit(self, result: Result, ip: str, client: str, detail: dict[str, Any] | None) -> None:
        """The result's facts as Events (the TCP path; the UDP loop does the same inline)."""
        when, phone = time.time(), self._phone_at(ip)
        try:
            for fact in result.facts:
                self._sink(fact_event(SERVICE, client, phone, fact, when, detail))
        except Exception:  # a failing sink must not stop the answers
            self.sink_errors += 1

    # -- UDP ----------------------------------------------------------------------------------

    def _on_udp_readable(self) -> None:
        if self._udp is None:
            return
        if self._faults is not None:
            self._drain_with_faults(self._udp)
        elif self._native is not None:
            drain_native(self, self._native)
        else:
            drain_pure(self)

    def _drain_with_faults(self, sock: socket.socket) -> None:
        """The reference path, while some fault rule concerns DNS: every query goes through the
        resolver and the fault hooks (a rule may fire on any query), none through the table."""
        for _ in range(UDP_BATCH):
            try:
                data, address = sock.recvfrom(UDP_RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.udp_receive_errors += 1
                continue
            result = self.resolver.answer(data)
            client = f"{address[0]}:{address[1]}"
            wire = self._fault(data, result, address[0], client)
            self._emit(result, address[0], client, None)
            if wire is not None:
                try:
                    sock.sendto(wire, address)
                except OSError:
                    self.udp_send_errors += 1

    def _choose_reader(self) -> None:
        """Who reads the UDP socket: a worker's Drain thread (dns_pump) while no fault rule concerns
        DNS, else the event loop (`_on_udp_readable`). Called at bind and at each reload."""
        if self._udp is None:
            return
        thread = self._faults is None and dns_pump.wanted(self._native, self._sink)
        if thread and self.pump is None:
            self._loop.remove_reader(self._udp.fileno())
            from labkit.services.worker_main import BATCH_EVENTS

            self.pump = dns_pump.UdpPump(self, self._native, BATCH_EVENTS)
        elif not thread:
            if self.pump is not None:
                self.pump.stop(closing=False)
                self.pump = None
            self._loop.add_reader(self._udp.fileno(), self._on_udp_readable)

    # -- TCP ----------------------------------------------------------------------------------

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        peer = writer.get_extra_info("peername") or ("?", 0)
        ip = str(peer[0])
        held = self._per_client.get(ip, 0)
        if (task is None or len(self._connections) >= self.limits.max_connections
                or held >= self.limits.max_per_client):
            self.tcp_rejected += 1  # the others keep being served; this client may retry later
            writer.close()
            return
        self._connections.add(task)
        self._per_client[ip] = held + 1
        self.tcp_connections += 1
        client = f"{ip}:{peer[1]}"
        try:
            while (message := await self._read_message(reader)) is not None:
                if not await self._answer_tcp(message, ip, client, writer):
                    return
        finally:
            self._connections.discard(task)
            if self._per_client[ip] > 1:
                self._per_client[ip] -= 1
            else:
                del self._per_client[ip]
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read_message(self, reader: asyncio.StreamReader) -> bytes | None:
        """The next message; None when the client closed, stayed idle too long between messages,
        or took too long to finish one it had started (RFC 7766 §6.2.3, §10)."""
        try:
            async with asyncio.timeout(self.limits.idle_timeout):
                first = await reader.readexactly(1)
            async with asyncio.timeout(self.limits.partial_timeout):
                second = await reader.readexactly(1)
                return await reader.readexactly((first[0] << 8) | second[0])
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            return None

    async def _answer_tcp(self, message: bytes, ip: str, client: str, writer: asyncio.StreamWriter) -> bool:
        """Answer one message; False when the connection should end (the client does not read)."""
        result = self.resolver.answer(message, tcp=True)
        wire = self._fault(message, result, ip, client) if self._faults is not None else _wire(result)
        self._emit(result, ip, client, dict(_TCP_DETAIL))
        if wire is None:
            return True  # nothing to say to a response or a runt; keep the connection
        writer.write(len(wire).to_bytes(2, "big") + wire)
        try:
            async with asyncio.timeout(self.limits.idle_timeout):
                await writer.drain()
        except (TimeoutError, ConnectionError):
            return False  # a client that does not read its answers loses the connection
        return True

    # -- life cycle ---------------------------------------------------------------------------

    async def _bind(self, port: int, reuse_port: bool = False) -> None:
        family = _family(self.host)
        for _ in range(_PORT_ATTEMPTS if port == 0 else 1):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            tcp = socket.socket(family, socket.SOCK_STREAM)
            try:
                if reuse_port:  # worker processes share the port; the kernel spreads the clients
                    udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                udp.setblocking(False)
                with contextlib.suppress(OSError):
                    udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
                udp.bind((self.host, port))
                bound = udp.getsockname()[1]
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.bind((self.host, bound))
            except OSError as exc:
                udp.close()
                tcp.close()
                if port == 0 and exc.errno == errno.EADDRINUSE:
                    continue  # the port UDP got is taken for TCP: draw another
                raise DnsServiceError(f"DNS cannot bind {self.host} port {port}: {exc.strerror}") from None
            tcp.listen(TCP_BACKLOG)
            tcp.setblocking(False)
            self._udp, self.port = udp, bound
            udp_module = load("_udp")  # None: not built here, or LABKIT_NATIVE=0
            self._native = udp_module.Drain(udp.fileno(), NATIVE_BATCH, KEY_MAX) if udp_module else None
            self.native_udp = self._native is not None
            self._tcp = await asyncio.start_server(self._serve_tcp, sock=tcp)
            self._choose_reader()
            self.drop_watch = DropWatch(udp, self.drops)
            self.drop_watch.start()
            return
        raise DnsServiceError(f"DNS found no port free for both UDP and TCP on {self.host}")

    async def close(self) -> None:
        """Stop listening, end open TCP connections, close the sockets."""
        if self.drop_watch is not None:
            self.drop_watch.stop()
            self.drop_watch = None
        if self.pump is not None:
            self.pump.stop(closing=True)
            self.pump = None
        if self._udp is not None:
            self._loop.remove_reader(self._udp.fileno())
            self._udp.close()
            self._udp = None
            self._native = None
        if self._tcp is not None:
            self._tcp.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._tcp.wait_closed()
            self._tcp = None


def _wire(result: Result) -> bytes | None:
    """The one datagram a DNS result sends back, if any (the resolver never sends more than one)."""
    return result.send[0].data if result.send else None


def _family(host: str) -> socket.AddressFamily:
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        try:
            return socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)[0][0]
        except OSError as exc:
            raise DnsServiceError(f"DNS cannot use host {host!r}: {exc}") from None


async def start_dns(config: DnsPlan, endpoint: Endpoint, ctx: StartContext, *,
                    limits: TcpLimits = TcpLimits()) -> DnsService:
    """Serve the plan's zones on the endpoint over UDP and TCP (port 0: a free port, see .port);
    with `endpoint.reuse_port`, with SO_REUSEPORT on both sockets (`labkit up --workers N`)."""
    resolver = AuthoritativeResolver(config.zones, max_udp=config.max_udp)
    service = DnsService(resolver, endpoint.host, ctx.bus, ctx.directory, faults=ctx.faults.dns,
                         limits=limits)
    await service._bind(endpoint.port, endpoint.reuse_port)
    return service
