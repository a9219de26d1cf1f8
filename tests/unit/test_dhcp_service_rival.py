"""The DHCP service told of a rival server (as RivalWatch tells it): a "rival" event, at most one
per server every RIVAL_EVENT_EVERY seconds when warning, and with `stop` no more answers. On
loopback: the service's own socket, no packet socket, no namespace."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path
from typing import Literal

from labkit.events import EventRecorder, StaticDirectory
from labkit.plan.dhcp import DhcpPlan
from labkit.protocols.dhcp.message import DISCOVER, OFFER, build, parse, request_message
from labkit.services.context import Endpoint, StartContext
from labkit.services.dhcp import start_dhcp
from labkit.services.filetree import FileTree
from labkit.services.preflight import RivalServer
from tests.unit.dhcp_configs import PHONE, default_lab

RELAY = "127.0.0.2"
RIVAL = RivalServer("10.42.0.250", "02:00:00:00:00:99", "10.42.0.150", "OFFER", PHONE)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def discover(port: int, recorder: EventRecorder) -> bytes | None:
    """One DISCOVER from the phone to the server; its OFFER, or None when the service logged the
    DISCOVER as not answered (the phone relays itself, as the virtual phone does on loopback:
    the reply goes to giaddr:port). Waits for an event, never for silence."""
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.bind((RELAY, port))
        client.setblocking(False)
        message = request_message(DISCOVER, bytes.fromhex(PHONE.replace(":", "")), 5, {60: b"CP-8851-3PCC"},
                                  giaddr=IPv4Address(RELAY), hops=1)
        seen = len(recorder.events)
        client.sendto(build(message), ("127.0.0.1", port))
        for _ in range(600):  # the service logs every datagram it handles: at most 30 s
            if any(e.action in ("discover", "dropped") for e in recorder.events[seen:]):
                break
            await asyncio.sleep(0.05)
        if any(e.result == "silenced" for e in recorder.events[seen:]):
            try:
                return client.recv(4096)  # nothing may be there: the service sent nothing
            except BlockingIOError:
                return None
        return await asyncio.wait_for(loop.sock_recv(client, 4096), 30)


def run(tmp_path: Path, on_rival: Literal["warn", "stop"]) -> tuple[EventRecorder, list[bytes | None]]:
    recorder = EventRecorder()

    async def main() -> list[bytes | None]:
        port = free_udp_port()
        ctx = StartContext(FileTree({}), recorder, StaticDirectory(), frozenset({PHONE}), tmp_path)
        config = DhcpPlan(default_lab(), None, on_rival=on_rival)
        service = await start_dhcp(config, Endpoint("dhcp", "127.0.0.1", port, "udp"), ctx)
        try:
            before = await discover(port, recorder)
            service.rival(RIVAL)
            service.rival(RIVAL)  # the same server again at once: said once only
            service.rival(replace(RIVAL, server_id="10.42.0.251"))
            after = await discover(port, recorder)
        finally:
            await service.close()
        return [before, after]

    return recorder, asyncio.run(main())


def test_warn_tells_each_rival_once_and_keeps_answering(tmp_path: Path) -> None:
    recorder, (before, after) = run(tmp_path, "warn")
    rivals = [e for e in recorder.events if e.result == "rival"]
    assert [e.detail["server_id"] for e in rivals] == ["10.42.0.250", "10.42.0.251"]
    assert all(e.service == "dhcp" and e.phone == PHONE and "warning" in e.answer for e in rivals)
    assert before is not None and after is not None and parse(after).message_type == OFFER


def test_stop_silences_the_service(tmp_path: Path) -> None:
    recorder, (before, after) = run(tmp_path, "stop")
    assert before is not None and after is None
    rivals = [e for e in recorder.events if e.result == "rival"]
    assert "stops answering" in rivals[0].answer and "not answering" in rivals[1].answer
    silenced = [e for e in recorder.events if e.result == "silenced"]
    assert len(silenced) == 1 and "10.42.0.250" in silenced[0].answer
