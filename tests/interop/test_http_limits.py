"""HTTP(S) under hostile clients (issue 10, item 4): slowloris heads and bodies, TLS handshakes
that never finish, one address holding every connection. Real sockets on loopback, a real
service with small limits; every wait is bounded and generous, nothing asserts a duration."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from labkit.events import EventRecorder, StaticDirectory
from labkit.plan.http import HttpLimits, HttpPlan
from labkit.services.context import Endpoint, StartContext
from labkit.services.filetree import FileTree
from labkit.services.http import HttpServer, start_http
from labkit.tls import ensure_server_certificate, server_ssl_context

BOUND = 30.0  # seconds: a generous ceiling on any wait, never an expected duration
PARTIAL_HEAD = b"GET /known.txt HTTP/1.1\r\nHost: lab\r\nX-Slow: "


@asynccontextmanager
async def serving(tmp_path: Path, limits: HttpLimits, *, tls: bool = False
                  ) -> AsyncIterator[tuple[HttpServer, EventRecorder, ssl.SSLContext | None]]:
    root = tmp_path / "files"
    root.mkdir(exist_ok=True)
    (root / "known.txt").write_bytes(b"hello from labkit\n")
    recorder = EventRecorder()
    server_context = client_context = None
    if tls:
        credentials = ensure_server_certificate(tmp_path / "state", "limits", ["prov.lab.example"],
                                                ["127.0.0.1"])
        server_context = server_ssl_context(credentials)
        client_context = ssl.create_default_context(cafile=str(credentials.ca_path))
    ctx = StartContext(FileTree({}, root), recorder, StaticDirectory(), frozenset(), tmp_path / "state")
    scheme = "https" if tls else "http"
    server = await start_http(HttpPlan(scheme, limits=limits), Endpoint(scheme, "127.0.0.1", 0, "tcp"), ctx,
                              ssl_context=server_context)
    try:
        yield server, recorder, client_context
    finally:
        await server.close()


async def connect(server: HttpServer, source: str, context: ssl.SSLContext | None = None
                  ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection(
        "127.0.0.1", server.port, local_addr=(source, 0), ssl=context,
        server_hostname="prov.lab.example" if context else None), BOUND)


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent until it closed the connection (bounded wait)."""
    try:
        return await asyncio.wait_for(reader.read(), BOUND)
    except (ConnectionResetError, ssl.SSLError):
        return b""


async def get_known(server: HttpServer, source: str, context: ssl.SSLContext | None = None) -> bytes:
    reader, writer = await connect(server, source, context)
    writer.write(b"GET /known.txt HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), BOUND)
    writer.close()
    return answer


async def served_again(server: HttpServer, source: str, context: ssl.SSLContext | None = None) -> bytes:
    """GET once the server has noticed closed connections (it may take a turn of its loop)."""
    answer = b""
    for _ in range(100):
        try:
            answer = await get_known(server, source, context)
        except (ConnectionResetError, ssl.SSLError):
            answer = b""
        if answer:
            break
        await asyncio.sleep(0.1)
    return answer


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 4 * BOUND))


def test_half_open_heads_are_closed_and_one_address_cannot_take_every_slot(tmp_path: Path) -> None:
    limits = HttpLimits(header_timeout=1.0, body_timeout=1.0, per_client=4, total=64)

    async def scenario() -> None:
        async with serving(tmp_path, limits) as (server, events, _):
            slow = [await connect(server, "127.0.0.1") for _ in range(4)]
            for _, writer in slow:
                writer.write(PARTIAL_HEAD)  # a head that never ends
            extra_reader, _ = await connect(server, "127.0.0.1")
            assert await closed_by_server(extra_reader) == b""  # over the per-client bound
            # another address is served meanwhile
            assert (await get_known(server, "127.0.0.2")).startswith(b"HTTP/1.1 200")
            # the half-open heads are closed by the server, without an answer
            for reader, _ in slow:
                assert await closed_by_server(reader) == b""
            # and their slots come back: 127.0.0.1 is served again
            assert (await served_again(server, "127.0.0.1")).startswith(b"HTTP/1.1 200")
            assert server.listener.gate.open <= 1
        refused = [e for e in events.events if e.result == "refused"]
        assert len(refused) == 1 and refused[0].client is not None
        assert refused[0].client.startswith("127.0.0.1:") and "per-client" in refused[0].answer

    run(scenario)


def test_the_total_bound_refuses_new_connections_from_any_address(tmp_path: Path) -> None:
    limits = HttpLimits(header_timeout=60.0, body_timeout=60.0, per_client=8, total=3)

    async def scenario() -> None:
        async with serving(tmp_path, limits) as (server, events, _):
            held = [await connect(server, f"127.0.0.{n}") for n in (1, 2, 3)]
            for _, writer in held:
                writer.write(PARTIAL_HEAD)
            reader, _ = await connect(server, "127.0.0.4")
            assert await closed_by_server(reader) == b""
            for _, writer in held:
                writer.close()
            # once they are gone, the service answers again
            assert (await served_again(server, "127.0.0.4")).startswith(b"HTTP/1.1 200")
        assert any("the service's bound" in e.answer for e in events.events if e.result == "refused")

    run(scenario)


def test_a_body_that_never_comes_gets_408_and_the_connection_closes(tmp_path: Path) -> None:
    limits = HttpLimits(header_timeout=60.0, body_timeout=1.0, per_client=4, total=8)

    async def scenario() -> None:
        async with serving(tmp_path, limits) as (server, events, _):
            reader, writer = await connect(server, "127.0.0.1")
            writer.write(b"POST /known.txt HTTP/1.1\r\nHost: lab\r\nContent-Length: 1000\r\n\r\n0123456789")
            answer = await closed_by_server(reader)
            assert answer.startswith(b"HTTP/1.1 408"), answer
        assert [e.result for e in events.events] == ["timeout"]

    run(scenario)


def test_tls_handshakes_that_never_finish_are_bounded_and_counted(tmp_path: Path) -> None:
    limits = HttpLimits(header_timeout=1.0, body_timeout=1.0, per_client=3, total=64)

    async def scenario() -> None:
        async with serving(tmp_path, limits, tls=True) as (server, events, client_context):
            # plain TCP connections that never send a ClientHello
            silent = [await connect(server, "127.0.0.1") for _ in range(3)]
            extra_reader, _ = await connect(server, "127.0.0.1")
            assert await closed_by_server(extra_reader) == b""  # the handshakes hold the slots
            assert (await get_known(server, "127.0.0.2", client_context)).startswith(b"HTTP/1.1 200")
            for reader, _ in silent:
                assert await closed_by_server(reader) == b""  # the handshake timeout closed them
            assert (await served_again(server, "127.0.0.1", client_context)).startswith(b"HTTP/1.1 200")
        assert [e.result for e in events.events].count("refused") == 1

    run(scenario)


def test_a_client_reset_in_the_middle_of_its_body_is_an_event_not_a_traceback(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    limits = HttpLimits(header_timeout=60.0, body_timeout=60.0, per_client=4, total=8)

    async def scenario() -> None:
        async with serving(tmp_path, limits) as (server, events, _):
            _, writer = await connect(server, "127.0.0.1")
            writer.write(b"POST /known.txt HTTP/1.1\r\nHost: lab\r\nContent-Length: 1000\r\n\r\n0123456789")
            await writer.drain()
            for _ in range(100):  # until the handler waits for the rest of the body
                if server.listener.gate.open == 1 and server.listener.runner.server is not None \
                        and server.listener.runner.server.requests_count == 1:
                    break
                await asyncio.sleep(0.05)
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()  # RST
            for _ in range(100):
                if events.events:
                    break
                await asyncio.sleep(0.05)
        assert [e.result for e in events.events] == ["aborted"]

    with caplog.at_level(logging.DEBUG, logger="aiohttp"):
        run(scenario)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
