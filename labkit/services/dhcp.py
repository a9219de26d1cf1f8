"""The DHCP transport: one UDP socket, drained in batches; leases committed before replies leave.

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
import struct
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from labkit.events import EventSink, StaticDirectory, make_event
from labkit.faults import FaultHooks
from labkit.inventory.model import Inventory
from labkit.plan.build import Plan
from labkit.plan.dhcp import client_options
from labkit.protocols.dhcp.faults import apply_dhcp_fault
from labkit.protocols.dhcp.leases import Lease, LeaseChange, LeaseTable
from labkit.protocols.dhcp.server import DhcpServerCore, Outcome, PhoneEntry, ServerConfig
from labkit.services.leases import LEASES_FILE, LeaseStore

BATCH = 256  # datagrams read per wake-up: one lease transaction covers them all
RECEIVE_BUFFER = 4 << 20  # bytes of socket buffer (see _grow_receive_buffer)
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)


def server_config(plan: Plan, server_id: IPv4Address, *, server_port: int = 67,
                  client_port: int = 68) -> ServerConfig:
    inv: Inventory = plan.inventory
    phones = {p.mac: PhoneEntry(p.mac, p.ip, p.name or p.mac) for p in inv.phones}
    pool = (inv.lab.pool.start, inv.lab.pool.end) if inv.lab.pool else None
    reserved = frozenset({p.ip for p in inv.phones if p.ip is not None} | {inv.lab.address.ip})
    return ServerConfig(server_id=server_id, network=inv.lab.address.network, lease_time=inv.dhcp.lease_time,
                        pool=pool, answer_any=inv.lab.answer == "any", phones=phones,
                        options_for=client_options(inv), reserved=reserved, server_port=server_port,
                        client_port=client_port)


def ethernet_frame(dst_mac: bytes, src_mac: bytes, src_ip: IPv4Address, dst_ip: IPv4Address,
                   src_port: int, dst_port: int, payload: bytes) -> bytes:
    """Ethernet + IPv4 + UDP around `payload` (UDP checksum 0: optional over IPv4, RFC 768)."""
    udp = struct.pack("!HHHH", src_port, dst_port, 8 + len(payload), 0) + payload
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src_ip.packed,
                         dst_ip.packed)
    total = sum(struct.unpack("!10H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    header = header[:10] + struct.pack("!H", ~total & 0xFFFF) + header[12:]
    return dst_mac.ljust(6, b"\x00")[:6] + src_mac + b"\x08\x00" + header + udp


@dataclass
class DhcpService:
    sock: socket.socket
    core: DhcpServerCore
    store: LeaseStore
    sink: EventSink
    directory: StaticDirectory
    host: str
    port: int
    interface: str | None
    clock: Callable[[], float] = time.time
    faults: FaultHooks | None = None
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="labkit-leases"))
    closed: bool = False
    l2: socket.socket | None = None
    l2_mac: bytes = b""
    sent: int = 0
    stats: dict[str, int] = field(default_factory=dict)

    def start(self) -> None:
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._readable)

    def _readable(self) -> None:
        outcomes: list[tuple[Outcome, str]] = []
        now = self.clock()
        for _ in range(BATCH):
            try:
                data, source = self.sock.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            outcomes.append((self.core.handle(data, source, now), f"{source[0]}:{source[1]}"))
        if not outcomes:
            return
        changes = self.core.table.take_pending()
        if not changes:  # offers, NAKs, INFORMs: nothing to make durable, answer now
            self._deliver(outcomes, changes)
            return
        # the fsync runs on the lease thread (FIFO: commits stay in order), so a slow disk never
        # stalls DNS, TFTP or HTTP; this batch's replies leave once its bindings are on disk
        loop = asyncio.get_running_loop()
        future = self.executor.submit(self.store.commit, changes)
        future.add_done_callback(
            lambda done: loop.call_soon_threadsafe(self._committed, done, outcomes, changes))

    def _committed(self, done: Future[None], outcomes: list[tuple[Outcome, str]],
                   changes: list[LeaseChange]) -> None:
        if self.closed:
            return
        error = done.exception()
        if error is None:
            self._deliver(outcomes, changes)
            return
        # a lease we cannot keep is a lease we must not promise
        for outcome, client in outcomes:
            self.sink(make_event("dhcp", client, outcome.mac, outcome.action, outcome.request,
                                 f"not answered: lease store failed: {error}", "store-error", self.clock))
        reload = self.executor.submit(self.store.load)  # after every commit queued before it
        loop = asyncio.get_running_loop()
        reload.add_done_callback(lambda rows: loop.call_soon_threadsafe(self._reloaded, rows))

    def _reloaded(self, rows: Future[list[Lease]]) -> None:
        if not self.closed and rows.exception() is None:
            self.core.table = LeaseTable.from_rows(rows.result())

    def _deliver(self, outcomes: list[tuple[Outcome, str]], changes: list[LeaseChange]) -> None:
        for change in changes:
            if change.lease.state == "bound":
                self.directory.by_address[str(change.lease.ip)] = change.lease.mac
        for outcome, client in outcomes:
            if outcome.reply is not None and self.faults is not None:
                self._fault(outcome, client)
            if outcome.reply is not None:
                self._send(outcome)
            self.sink(make_event("dhcp", client, outcome.mac, outcome.action, outcome.request,
                                 outcome.answer, outcome.result, self.clock, **outcome.detail))

    def _fault(self, outcome: Outcome, client: str) -> None:
        """Fault rules for this reply: drop, NAK, rewrite, or send later."""
        assert self.faults is not None and outcome.reply is not None
        fired = self.faults.check("dhcp", mac=outcome.mac, client=client, request=outcome.request,
                                  message=outcome.action.upper())
        config = self.core.config
        for hit in fired:
            if outcome.reply is None:
                break
            outcome.reply = apply_dhcp_fault(outcome.reply, hit.action, config.server_id.packed,
                                             config.client_port)
            if hit.action.delay and outcome.reply is not None:
                held = Outcome(outcome.reply, outcome.action, outcome.request, outcome.answer, outcome.result,
                               outcome.mac, dict(outcome.detail))
                asyncio.get_running_loop().call_later(hit.action.delay, self._send, held)
                outcome.reply = None

    def _send(self, outcome: Outcome) -> None:
        reply = outcome.reply
        assert reply is not None
        try:
            if reply.l2_unicast and self.l2 is not None:
                frame = ethernet_frame(reply.message.chaddr, self.l2_mac, self.core.config.server_id,
                                       IPv4Address(reply.to[0]), self.port, reply.to[1], reply.wire)
                self.l2.send(frame)
            elif reply.l2_unicast:
                self.sock.sendto(reply.wire, ("255.255.255.255", reply.to[1]))
            else:
                self.sock.sendto(reply.wire, reply.to)
            self.sent += 1
        except OSError as exc:
            outcome.detail["send_error"] = str(exc)

    async def close(self) -> None:
        self.closed = True
        with contextlib.suppress(RuntimeError, ValueError):
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()
        if self.l2 is not None:
            self.l2.close()
        # commits already queued finish (their bindings were decided); then the store closes
        await asyncio.get_running_loop().run_in_executor(None, self.executor.shutdown, True)
        self.store.close()


def _grow_receive_buffer(sock: socket.socket) -> None:
    """Room for a few thousand requests: the commit's fsync can stall the loop for 300 ms on a
    busy disk, and with the default ~200 datagrams of buffer the requests of that time were lost."""
    for option in (getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF):  # FORCE: root only
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, RECEIVE_BUFFER)
            return
        except OSError:
            continue


def _interface_mac(interface: str) -> bytes | None:
    try:
        with open(f"/sys/class/net/{interface}/address", encoding="ascii") as f:
            return bytes.fromhex(f.read().strip().replace(":", ""))
    except OSError:
        return None


async def start_dhcp(plan: Plan, host: str, port: int, sink: EventSink, directory: StaticDirectory,
                     state_dir, *, interface: str | None = None, client_port: int = 68,
                     server_id: IPv4Address | None = None) -> DhcpService:
    """Bind and start serving. With `interface`, bind 0.0.0.0 on that device only."""
    inv = plan.inventory
    sid = server_id or inv.lab.address.ip
    store = LeaseStore(state_dir / LEASES_FILE)
    table = LeaseTable.from_rows(store.load())
    core = DhcpServerCore(server_config(plan, sid, server_port=port, client_port=client_port), table)
    for lease in table.by_mac.values():
        if lease.state == "bound":
            directory.by_address[str(lease.ip)] = lease.mac
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        _grow_receive_buffer(sock)
        if interface is not None:
            sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, interface.encode() + b"\x00")
            sock.bind(("0.0.0.0", port))
        else:
            sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        store.close()
        raise
    service = DhcpService(sock, core, store, sink, directory, host, port, interface)
    if interface is not None and os.geteuid() == 0:
        mac = _interface_mac(interface)
        if mac is not None:
            try:
                l2 = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
                l2.bind((interface, 0))
                service.l2, service.l2_mac = l2, mac
            except OSError:
                pass  # no packet socket: replies to address-less clients are broadcast instead
    service.start()
    return service
