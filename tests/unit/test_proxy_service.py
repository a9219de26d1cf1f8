"""The lab proxy service on its own: forwarding to a loopback-mapped lab address, Digest, reload."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

from labkit.events import EventRecorder, StaticDirectory
from labkit.plan.proxy import ProxyPlan
from labkit.protocols.http import digest_authorization
from labkit.protocols.http_wire import encode_response, parse_request_head, read_response
from labkit.services.context import Endpoint, StartContext
from labkit.services.filetree import FileTree
from labkit.services.proxy import start_proxy

UA = "Cisco-CP-8851-3PCC/12.0.1 (00562b000001)"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _ask(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    data = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    return data


def test_forward_digest_and_reload(tmp_path: Path) -> None:
    recorder = EventRecorder()
    seen: list[bytes] = []

    async def origin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head)
        writer.write(encode_response(200, (), b"profile", ))
        writer.close()

    async def main() -> list[bytes]:
        upstream = await asyncio.start_server(origin, "127.0.0.1", 0)
        origin_port = upstream.sockets[0].getsockname()[1]
        listen = _free_port()
        # on loopback the lab's port 80 is at 80 + (listening port - configured port)
        plan = ProxyPlan(mode="auth", scheme="digest", user="pu", password="pp",
                         port=listen - origin_port + 80, kit_addresses=("10.42.0.1",),
                         hosts=MappingProxyType({"prov.lab.example": "10.42.0.1"}))
        phones = frozenset({"00:56:2b:00:00:01"})
        ctx = StartContext(FileTree({}), recorder, StaticDirectory(), phones, tmp_path)
        proxy = await start_proxy(plan, Endpoint("proxy", "127.0.0.1", listen, "tcp"), ctx)
        try:
            target = "http://prov.lab.example/a.xml"
            ask = f"GET {target} HTTP/1.1\r\nHost: prov.lab.example\r\nUser-Agent: {UA}\r\n"
            first = await _ask(proxy.port, (ask + "\r\n").encode())
            challenge = read_response(first).header("Proxy-Authenticate") or ""
            answer = digest_authorization(challenge, "GET", target, "pu", "pp")
            second = await _ask(proxy.port, (ask + f"Proxy-Authorization: {answer}\r\n\r\n").encode())
            proxy.reload(replace(plan, mode="fail"), ctx)
            third = await _ask(proxy.port, (ask + "\r\n").encode())
            return [first, second, third]
        finally:
            await proxy.close()
            upstream.close()

    first, second, third = asyncio.run(main())
    assert read_response(first).status == 407
    assert read_response(second).status == 200 and read_response(second).body == b"profile"
    relayed = parse_request_head(seen[0][:-4])
    assert relayed.target == "/a.xml" and relayed.header("Proxy-Authorization") is None
    assert relayed.header("User-Agent") == UA
    assert read_response(third).status == 502
    events = [(e.phone, e.answer, e.result) for e in recorder.events]
    assert events[0] == ("00:56:2b:00:00:01", "407 proxy credentials asked", "unauthorized")
    assert events[1][2] == "ok" and events[2] == ("00:56:2b:00:00:01", "502 (mode fail)", "fault")
