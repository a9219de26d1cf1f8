"""Issue 10 item 8: datagrams the kernel drops on a service's socket are counted and reported as
one "kernel-drops" event, for DNS and DHCP too (their hot paths read with recvfrom, so the count
is polled from the kernel's per-socket table rather than carried by every datagram)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from labkit.events import EventRecorder, StaticDirectory
from labkit.plan.dhcp import DhcpPlan
from labkit.protocols.dns.resolver import AuthoritativeResolver
from labkit.services.context import Endpoint, StartContext
from labkit.services.dhcp import start_dhcp
from labkit.services.dns import DnsService
from labkit.services.filetree import FileTree
from labkit.services.sockets import kernel_drops
from tests.unit.dhcp_configs import default_lab


async def _dns(ctx: StartContext) -> tuple[Any, socket.socket]:
    service = DnsService(AuthoritativeResolver([]), "127.0.0.1", ctx.bus, ctx.directory)
    await service._bind(0)
    assert service._udp is not None and service.drop_watch is not None
    return service, service._udp


async def _dhcp(ctx: StartContext) -> tuple[Any, socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    service = await start_dhcp(DhcpPlan(default_lab(), None), Endpoint("dhcp", "127.0.0.1", port, "udp"), ctx)
    assert service.drop_watch is not None
    return service, service.sock


@pytest.mark.parametrize("starter", [_dns, _dhcp], ids=["dns", "dhcp"])
def test_kernel_drops_become_a_counted_event(
        tmp_path: Path, starter: Callable[[StartContext], Awaitable[tuple[Any, socket.socket]]]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        if kernel_drops(probe) is None:
            pytest.skip("no per-socket drop counts here (/proc/net/udp)")
    recorder = EventRecorder()

    async def scenario() -> None:
        ctx = StartContext(FileTree({}), recorder, StaticDirectory(), frozenset(), tmp_path)
        service, sock = await starter(ctx)
        watch = service.drop_watch
        watch.every, watch.drops.every = 0.05, 0.0
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for _ in range(2000):  # the loop is not reading while this runs: most are dropped
                sender.sendto(b"\x00" * 300, sock.getsockname())
            for _ in range(600):  # bounded: at most 30 s
                await asyncio.sleep(0.05)
                if any(e.action == "kernel-drops" for e in recorder.events):
                    break
            (event,) = [e for e in recorder.events if e.action == "kernel-drops"][:1]
            assert 0 < event.detail["total"] <= 2000 and watch.drops.count == kernel_drops(sock)
        finally:
            sender.close()
            await service.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))
