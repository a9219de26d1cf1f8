"""The DHCP transport: one UDP socket, drained in batches; leases committed before replies leave.

A reply that needs nothing made durable (OFFER, NAK, INFORM's ACK) leaves as soon as it is decided;
an ACK leaves after the group commit holding its lease returns, at most RELEASE_CHUNK per turn
of the event loop, so a commit that waited on the disk does not release hundreds of replies into
one client socket (a relay's) at once. With labkit.native built, a batch is read with one
recvmmsg (_udp's Drain) and parsed in C (_dhcp); the pure paths stay the reference.

On a real segment it also watches for another DHCP server (services.preflight.RivalWatch): each
one heard is a "rival" event, and with `lab.on_rival_dhcp: stop` the kit stops answering.

On a real segment the socket binds 0.0.0.0:67 on the one interface named in the inventory
(SO_BINDTODEVICE), so it hears broadcasts there and nowhere else. A reply to a client that has
no address yet goes out as an Ethernet frame to its MAC when the kit may open a packet socket
(root), else as a broadcast, which every client accepts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any, Literal

from labkit import native
from labkit.events import EventSink, StaticDirectory, events_from, fact_event, make_event
from labkit.faults.hooks import ServiceFaults
from labkit.plan.dhcp import DhcpPlan
from labkit.protocols.dhcp.faults import DhcpFaultAction, apply_dhcp_fault
from labkit.protocols.dhcp.leases import Lease, LeaseChange, LeaseTable
from labkit.protocols.dhcp.server import DhcpServerCore
from labkit.protocols.result import NO_DETAIL, Datagram, Fact, Result
from labkit.services.context import Endpoint, StartContext
from labkit.services.dhcp_sockets import bind_server, ethernet_frame, packet_socket
from labkit.services.leases import LEASES_FILE, LeaseStore
from labkit.services.sockets import DropCounter, DropWatch

if TYPE_CHECKING:
    from labkit.services.preflight import RivalServer, RivalWatch

BATCH = 64  # datagrams read per wake-up (a group commit covers every batch read during the last)
RECEIVE_SIZE = 4096  # bytes read of a datagram (a DHCP message is at most a few hundred)
NOTHING_KEPT: dict[bytes, Any] = {}  # the Drain's table of kept replies: DHCP keeps none
RELEASE_CHUNK = 32  # committed replies sent per loop turn (see DhcpService._release)
CHADDR = slice(28, 34)  # the client's Ethernet address in a BOOTP message
RIVAL_EVENT_EVERY = 10.0  # seconds between two "rival" events about the same server
Batch = tuple[list[tuple[Result, str]], list[LeaseChange]]  # one read's replies, the changes they need


@dataclass
class DhcpService:
    sock: socket.socket
    core: DhcpServerCore
    store: LeaseStore
    sink: EventSink
    leases_seen: dict[str, str]  # address -> MAC of bound leases (the phone directory's table)
    host: str
    port: int
    interface: str | None
    clock: Callable[[], float] = time.time
    hooks: ServiceFaults[DhcpFaultAction] | None = None
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="labkit-leases"))
    closed: bool = False
    l2: socket.socket | None = None
    l2_mac: bytes = b""
    sent: int = 0
    stats: dict[str, int] = field(default_factory=dict)
    on_rival: Literal["warn", "stop"] = "warn"
    watch: RivalWatch | None = None
    rivals: dict[str, float] = field(default_factory=dict)  # server id -> when last told
    drops: DropCounter | None = None  # datagrams the kernel dropped on the server socket
    drop_watch: DropWatch | None = None
    # batches whose bindings wait for the commit in flight to finish: (replies, their changes)
    waiting: list[Batch] = field(default_factory=list)
    committing: bool = False
    outbox: deque[tuple[Result, str]] = field(default_factory=deque)  # committed, not yet sent
    releasing: bool = False  # a _release is scheduled on the loop
    drain: Any = None  # labkit.native._udp's Drain on `sock` (recvmmsg), or None: recvfrom

    def start(self) -> None:
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._readable)
        self.drops = DropCounter("dhcp", self.sink)
        self.drop_watch = DropWatch(self.sock, self.drops)
        self.drop_watch.start()

    def _readable(self) -> None:
        """Read up to BATCH datagrams (one recvmmsg where labkit.native._udp's Drain is built,
        keeping no replies: every datagram goes to the core) and answer them."""
        if self.drain is None:
            self._handle(self._read_each())
            return
        try:
            sources, datagrams = self.drain.receive(NOTHING_KEPT)
        except OSError:  # BlockingIOError: nothing waiting
            return
        self._handle(zip(sources, datagrams, strict=True))

    def _read_each(self) -> Iterator[tuple[Any, bytes]]:
        """The pure read: recvfrom per datagram, up to BATCH."""
        recvfrom = self.sock.recvfrom
        for _ in range(BATCH):
            try:
                data, source = recvfrom(RECEIVE_SIZE)
            except OSError:  # BlockingIOError and InterruptedError included: the batch is over
                return
            yield source, data

    def _handle(self, batch: Iterable[tuple[Any, bytes]]) -> None:
        """A reply that needs nothing made durable (OFFER, NAK, INFORM's ACK) leaves at once, one
        at a time as Kea answers; the others wait for their group commit."""
        held: list[tuple[Result, str]] = []
        pending, handle = self.core.table.pending, self.core.handle
        now, last, client = self.clock(), None, ""
        for source, data in batch:
            if source is not last:  # the Drain hands out one address object per peer
                last, client = source, f"{source[0]}:{source[1]}"
            before = len(pending)
            result = handle(data if len(data) <= RECEIVE_SIZE else data[:RECEIVE_SIZE], source, now)
            if len(pending) == before:
                self._answer(result, client, now)
            else:
                held.append((result, client))
        self._hold(held)

    def _hold(self, held: list[tuple[Result, str]]) -> None:
        """The read's bindings go to the next group commit, with the replies that wait for it."""
        changes = self.core.table.take_pending()
        if not changes:
            return
        self.waiting.append((held, changes))
        if not self.committing:
            self._commit_waiting()

    def _commit_waiting(self) -> None:
        """Group commit: every batch read while the previous commit was on disk goes in one
        transaction (one fsync), so a slow disk makes transactions larger, not the queue longer.
        The fsync runs on the lease thread, so a slow disk never stalls DNS, TFTP or HTTP; each
        batch's replies leave once its bindings are on disk."""
        group, self.waiting = self.waiting, []
        self.committing = True
        changes = [change for _, batch in group for change in batch]
        loop = asyncio.get_running_loop()
        future = self.executor.submit(self.store.commit, changes)
        future.add_done_callback(lambda done: loop.call_soon_threadsafe(self._committed, done, group))

    def _committed(self, done: Future[None], group: list[Batch]) -> None:
        self.committing = False
        if self.closed:
            return
        error = done.exception()
        if error is None:
            text, seen = self.core.address_text, self.leases_seen
            for results, changes in group:
                for change in changes:
                    if change.lease.state == "bound":
                        seen[text(change.lease.ip)] = change.lease.mac
                self.outbox.extend(results)
            if not self.releasing:
                self._release()
            if self.waiting:
                self._commit_waiting()
            return
        # a lease we cannot keep is a lease we must not promise
        now = self.clock()
        for results, _ in [*group, *self.waiting]:
            for result, client in results:
                facts = [replace(f, answer=f"not answered: lease store failed: {error}", result="store-error",
                                 detail=NO_DETAIL) for f in result.facts]
                for event in events_from("dhcp", client, facts, now):
                    self.sink(event)
        self.waiting = []  # decided on the table the reload below replaces
        reload = self.executor.submit(self.store.load)  # after every commit queued before it
        loop = asyncio.get_running_loop()
        reload.add_done_callback(lambda rows: loop.call_soon_threadsafe(self._reloaded, rows))

    def _reloaded(self, rows: Future[list[Lease]]) -> None:
        if not self.closed and rows.exception() is None:
            self.core.table = LeaseTable.from_rows(rows.result())

    def _release(self) -> None:
        """Send up to RELEASE_CHUNK committed replies, and come back on the loop's next turn for
        the rest: a commit that waited on the disk releases hundreds of ACKs at once, which one
        client socket (a relay's, perfdhcp's) cannot absorb; between two chunks the loop reads
        and answers new requests."""
        self.releasing = False
        if self.closed:
            return
        outbox, now = self.outbox, self.clock()
        for _ in range(min(RELEASE_CHUNK, len(outbox))):
            result, client = outbox.popleft()
            self._answer(result, client, now)
        if outbox:
            self.releasing = True
            asyncio.get_running_loop().call_soon(self._release)

    def _answer(self, result: Result, client: str, now: float) -> None:
        """Send a result's datagrams and log its facts (the events, made without a generator or
        dataclass __init__)."""
        facts = result.facts
        for datagram in result.send:
            error = self._send(datagram) if self.hooks is None else self._out(
                datagram, facts[0] if facts else None, client)
            if error is not None:
                facts = tuple(replace(f, detail={**f.detail, "send_error": error}) for f in facts)
        sink = self.sink
        for fact in facts:
            sink(fact_event("dhcp", client, None, fact, now, None))

    def _out(self, datagram: Datagram, fact: Fact | None, client: str) -> str | None:
        """Send one reply through the fault rules (drop, NAK, rewrite, or send later); the send
        error, if any."""
        if self.hooks is not None and fact is not None:
            config = self.core.config
            for hit in self.hooks.check(mac=fact.phone, client=client, request=fact.request,
                                        message=fact.action.upper()):
                faulted = apply_dhcp_fault(datagram, hit.action, config.server_id.packed, config.client_port)
                if faulted is None:
                    return None
                datagram = faulted
                if hit.action.delay:
                    asyncio.get_running_loop().call_later(hit.action.delay, self._send, datagram)
                    return None
        return self._send(datagram)

    def _send(self, datagram: Datagram) -> str | None:
        to = datagram.to
        assert to is not None  # the core always says where a reply goes
        try:
            if datagram.l2_unicast and self.l2 is not None:
                frame = ethernet_frame(datagram.data[CHADDR], self.l2_mac, self.core.config.server_id,
                                       IPv4Address(to[0]), self.port, to[1], datagram.data)
                self.l2.send(frame)
            elif datagram.l2_unicast:
                self.sock.sendto(datagram.data, ("255.255.255.255", to[1]))
            else:
                self.sock.sendto(datagram.data, to)
            self.sent += 1
        except OSError as exc:
            return str(exc)
        return None

    def rival(self, rival: RivalServer) -> None:
        """Another server answered on the segment: say so (at most every RIVAL_EVENT_EVERY s per
        server), and with `on_rival: stop` stop answering."""
        now = self.clock()
        stop = self.on_rival == "stop" and self.core.silenced is None
        last = self.rivals.get(rival.server_id)
        if not stop and last is not None and now - last < RIVAL_EVENT_EVERY:
            return
        self.rivals[rival.server_id] = now
        if stop:
            self.core.silenced = f"another DHCP server ({rival.server_id}) answers on this segment"
            answer = "DHCP stops answering (lab.on_rival_dhcp: stop)"
        elif self.core.silenced is not None:
            answer = "DHCP is not answering"
        else:
            answer = "warning: two DHCP servers race for every phone"
        phone = rival.client if rival.client in self.core.config.phones else None
        self.sink(make_event("dhcp", f"{rival.server_id}:67", phone, "rival",
                             f"{rival.kind} {rival.offered} to {rival.client} from server {rival.server_id} "
                             f"(MAC {rival.mac})", answer, "rival", lambda: now, server_id=rival.server_id,
                             mac=rival.mac, offered=rival.offered, chaddr=rival.client))

    def reload(self, config: DhcpPlan, ctx: StartContext) -> None:
        """Take a new plan's config between two datagrams: the lease table (and its store) stay,
        the server's ports and interface stay those it bound."""
        server = replace(config.server, server_port=self.core.config.server_port,
                         client_port=self.core.config.client_port)
        core = DhcpServerCore(server, self.core.table)
        core.counters, core.silenced = self.core.counters, self.core.silenced
        if self.core.native is not None:  # the codec chosen at start
            core.use_native(self.core.native)
        self.core, self.hooks, self.on_rival = core, ctx.faults.dhcp, config.on_rival

    async def close(self) -> None:
        self.closed = True
        if self.drop_watch is not None:
            self.drop_watch.stop()
        if self.watch is not None:
            self.watch.close()
        with contextlib.suppress(RuntimeError, ValueError):
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()
        if self.l2 is not None:
            self.l2.close()
        # commits already queued finish, and the batches waiting for them are written too (their
        # bindings were decided; their replies never leave); then the store closes
        if self.waiting:
            waiting, self.waiting = self.waiting, []
            self.executor.submit(self.store.commit, [c for _, batch in waiting for c in batch])
        await asyncio.get_running_loop().run_in_executor(None, self.executor.shutdown, True)
        self.store.close()


async def start_dhcp(config: DhcpPlan, endpoint: Endpoint, ctx: StartContext) -> DhcpService:
    """Bind and start serving: on the plan's lab interface only, or on the loopback endpoint.
    Clients listen one port above the server (67/68, or both shifted under loopback)."""
    interface = None if endpoint.loopback else config.interface
    server = replace(config.server, server_port=endpoint.port, client_port=endpoint.port + 1)
    store = LeaseStore(ctx.state_dir / LEASES_FILE)
    try:
        core = DhcpServerCore(server, LeaseTable.from_rows(store.load()))
        codec = native.load("_dhcp")  # None: not built here, or LABKIT_NATIVE=0 (the pure parse)
        if codec is not None:
            core.use_native(codec)
        core.tidy(time.time())
        store.commit(core.table.take_pending())  # quarantines over or out of bounds end on disk too
    except Exception:
        store.close()
        raise
    seen = ctx.directory.by_address if isinstance(ctx.directory, StaticDirectory) else {}
    for lease in core.table.by_mac.values():
        if lease.state == "bound":
            seen[str(lease.ip)] = lease.mac
    try:
        sock = bind_server(endpoint, interface)
    except OSError:
        store.close()
        raise
    service = DhcpService(sock, core, store, ctx.bus, seen, endpoint.host, endpoint.port, interface,
                          hooks=ctx.faults.dhcp, on_rival=config.on_rival)
    udp = native.load("_udp")  # None: not built here, or LABKIT_NATIVE=0 (recvfrom per datagram)
    if udp is not None:
        service.drain = udp.Drain(sock.fileno(), BATCH, 0)  # key_max 0: no look-ups, all to the core
    if interface is not None:
        packet = packet_socket(interface)
        if packet is not None:
            service.l2, service.l2_mac = packet
        service.watch = _watch(interface, service)
    service.start()
    if service.watch is not None:
        service.watch.start()
    return service


def _watch(interface: str, service: DhcpService) -> RivalWatch | None:
    """Watch the segment for other servers (root only: a packet socket)."""
    from labkit.services.preflight import RivalWatch

    if os.geteuid() != 0:
        return None
    config = service.core.config
    try:
        return RivalWatch(interface, config.server_id, service.rival, server_port=config.server_port,
                          client_port=config.client_port)
    except OSError:
        return None
