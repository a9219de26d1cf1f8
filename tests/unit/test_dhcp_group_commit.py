"""Group commit: the bindings read while a lease commit is on disk go in ONE next transaction, and
no ACK leaves before the commit that holds its lease has returned. On loopback, with the store's
commit held at a gate (a slow disk), no timing assumptions: every wait is for a state."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator
from ipaddress import IPv4Address
from itertools import pairwise
from pathlib import Path

from labkit.events import EventRecorder, StaticDirectory
from labkit.plan.dhcp import DhcpPlan
from labkit.protocols.dhcp.leases import LeaseChange
from labkit.protocols.dhcp.message import ACK, DISCOVER, OFFER, REQUEST, build, parse, request_message
from labkit.services import dhcp as dhcp_service
from labkit.services.context import Endpoint, StartContext
from labkit.services.dhcp import DhcpService, start_dhcp
from labkit.services.filetree import FileTree
from labkit.services.leases import read_leases
from tests.unit.dhcp_configs import SERVER, default_lab
from tests.unit.test_dhcp_service_rival import RELAY, free_udp_port

MACS = [bytes([2, 0, 0, 0, 0, n]) for n in range(3)]
ADDRESSES = [IPv4Address("10.42.0.100") + n for n in range(3)]


class GatedCommits:
    """The store's commit, held until `gate` opens the first time; records each batch's size."""

    def __init__(self, service: DhcpService) -> None:
        self.inner = service.store.commit
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.sizes: list[int] = []

    def __call__(self, changes: list[LeaseChange]) -> None:
        self.sizes.append(len(changes))
        self.entered.set()
        self.gate.wait(60)
        self.inner(changes)


def request(n: int) -> bytes:
    return build(request_message(REQUEST, MACS[n], 100 + n, {50: ADDRESSES[n].packed, 54: SERVER.packed},
                                 giaddr=IPv4Address(RELAY), hops=1))


async def wait_for(condition: object, what: str) -> None:
    for _ in range(600):  # at most 30 s, checked every 50 ms: waits for a state, asserts no duration
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


Gated = tuple[DhcpService, GatedCommits, socket.socket, int]


@contextlib.asynccontextmanager
async def gated_service(tmp_path: Path) -> AsyncIterator[Gated]:
    """The DHCP service on loopback with its commits held at a gate, and a relay's socket to it:
    (service, gated commits, relay socket, the service's port)."""
    port = free_udp_port()
    ctx = StartContext(FileTree({}), EventRecorder(), StaticDirectory(), frozenset(), tmp_path)
    service = await start_dhcp(DhcpPlan(default_lab(answer_any=True), None),
                               Endpoint("dhcp", "127.0.0.1", port, "udp"), ctx)
    gated = GatedCommits(service)
    service.store.commit = gated  # type: ignore[method-assign]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as relay:
        relay.bind((RELAY, port))
        relay.setblocking(False)
        try:
            yield service, gated, relay, port
        finally:
            await service.close()


def test_batches_read_during_a_commit_share_the_next_one_and_acks_wait_for_it(tmp_path: Path) -> None:
    async def main() -> tuple[list[int], list[bytes], list[bytes]]:
        loop = asyncio.get_running_loop()
        async with gated_service(tmp_path) as (service, gated, relay, port):
            relay.sendto(request(0), ("127.0.0.1", port))
            await wait_for(gated.entered.is_set, "the first commit started")
            for n in (1, 2):  # two reads while the first commit is held
                relay.sendto(request(n), ("127.0.0.1", port))
                await wait_for(lambda n=n: ADDRESSES[n] in service.core.table.by_ip,
                               f"binding {n} decided")
            early = []
            with contextlib.suppress(BlockingIOError):
                early.append(relay.recv(4096))
            gated.gate.set()
            replies = [await asyncio.wait_for(loop.sock_recv(relay, 4096), 30) for _ in range(3)]
        return gated.sizes, early, replies

    sizes, early, replies = asyncio.run(main())
    assert early == []  # nothing left before its lease was committed
    assert sizes == [1, 2]  # the two later bindings: one transaction
    acks = [parse(r) for r in replies]
    assert all(a.options[53] == bytes([ACK]) for a in acks)
    assert sorted(a.yiaddr for a in acks) == ADDRESSES
    stored = {lease.ip for lease in read_leases(tmp_path) if lease.state == "bound"}
    assert stored == set(ADDRESSES)


def discover(n: int) -> bytes:
    return build(request_message(DISCOVER, bytes([2, 0, 0, 0, 1, n]), 200 + n, {},
                                 giaddr=IPv4Address(RELAY), hops=1))


def test_an_offer_leaves_at_once_while_a_commit_is_on_disk(tmp_path: Path) -> None:
    """An OFFER needs nothing made durable: it does not wait for the group commit in flight (an
    ACK decided in the same read does)."""
    async def main() -> tuple[list[bytes], list[bytes]]:
        loop = asyncio.get_running_loop()
        async with gated_service(tmp_path) as (_, gated, relay, port):
            relay.sendto(request(0), ("127.0.0.1", port))
            await wait_for(gated.entered.is_set, "the first commit started")
            relay.sendto(request(1), ("127.0.0.1", port))  # held: its binding waits
            relay.sendto(discover(1), ("127.0.0.1", port))
            offers = [await asyncio.wait_for(loop.sock_recv(relay, 4096), 30)]
            gated.gate.set()
            acks = [await asyncio.wait_for(loop.sock_recv(relay, 4096), 30) for _ in range(2)]
        return offers, acks

    offers, acks = asyncio.run(main())
    assert [parse(o).options[53] for o in offers] == [bytes([OFFER])]
    assert [parse(a).options[53] for a in acks] == [bytes([ACK])] * 2
    assert sorted(parse(a).yiaddr for a in acks) == ADDRESSES[:2]


class Counted:
    """The service socket's sendto, recorded (the rest of the socket stays the real one)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.sent = sock, []  # type: list[bytes]

    def sendto(self, data: bytes, to: tuple[str, int]) -> int:
        self.sent.append(data)
        return len(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self.sock, name)


def test_committed_replies_leave_in_chunks_one_per_loop_turn_in_order(tmp_path: Path) -> None:
    """A group commit that returns with many ACKs releases RELEASE_CHUNK of them per turn of the
    loop (a client socket absorbs that much), all of them in the order they were decided."""
    count = 3 * dhcp_service.RELEASE_CHUNK + 5

    async def main() -> tuple[list[int], list[bytes]]:
        ctx = StartContext(FileTree({}), EventRecorder(), StaticDirectory(), frozenset(), tmp_path)
        service = await start_dhcp(DhcpPlan(default_lab(answer_any=True), None),
                                   Endpoint("dhcp", "127.0.0.1", free_udp_port(), "udp"), ctx)
        counted = Counted(service.sock)
        service.sock = counted  # type: ignore[assignment]
        now = service.clock()
        for n in range(count):
            message = request_message(REQUEST, bytes([2, 0, 0, 0, 2, n]), 300 + n,
                                      {50: (IPv4Address("10.42.0.100") + n).packed, 54: SERVER.packed},
                                      giaddr=IPv4Address(RELAY), hops=1)
            service.outbox.append((service.core.handle(build(message), (RELAY, 67), now), RELAY))
        after_turn = []
        try:
            service._release()
            while service.outbox or service.releasing:
                after_turn.append(len(counted.sent))
                await asyncio.sleep(0)  # one turn of the loop: the next chunk
            after_turn.append(len(counted.sent))
        finally:
            service.sock = counted.sock
            await service.close()
        return after_turn, counted.sent

    after_turn, sent = asyncio.run(main())
    chunk = dhcp_service.RELEASE_CHUNK
    assert after_turn[0] == chunk  # the first chunk at once, the rest on later turns
    assert all(b - a <= chunk for a, b in pairwise(after_turn))
    assert after_turn[-1] == count
    assert [parse(s).xid for s in sent] == [300 + n for n in range(count)]
    assert all(parse(s).op == 2 for s in sent)  # each a reply (ACK or NAK: the pool's size decides)
