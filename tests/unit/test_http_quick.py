"""A plain GET answered by labkit.services.http_quick gets aiohttp's own answer, byte for byte but
the Date header, and the same event; everything else still goes to aiohttp."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from labkit.events import Event, EventRecorder, StaticDirectory
from labkit.plan.http import HttpLimits, HttpPlan
from labkit.plan.profiles import PlannedFile
from labkit.protocols.http_quick import INCOMPLETE, MAX_HEAD, PlainGet, parse_plain_get
from labkit.services.context import Endpoint, StartContext
from labkit.services.filetree import FileTree
from labkit.services.http import HttpServer, start_http
from labkit.services.http_quick import MAX_FILE

BOUND = 30.0  # seconds: a ceiling on any wait, never an expected duration
UA = "Cisco-CP-8851-3PCC/12.0.1 (024C4B000001)"
FIRMWARE = bytes(range(256)) * 1200  # 307,200 bytes
PROFILE = b"<flat-profile><Display_Name_1_>x</Display_Name_1_></flat-profile>\n"


def get(path: str, *headers: str, line: str = "") -> bytes:
    extra = "".join(f"{header}\r\n" for header in headers)
    return (line or f"GET {path} HTTP/1.1") .encode("latin-1") + f"\r\n{extra}\r\n".encode("latin-1")


def phone(path: str) -> bytes:
    return get(path, "Host: prov.lab.example", f"User-Agent: {UA}", "Accept: */*", "Connection: close")


REQUESTS: list[tuple[bytes, bool]] = [  # (request bytes, answered by the quick path)
    (phone("/CP-8851-3PCC.xml"), True),  # a profile in memory, a known phone
    (phone("/sip88xx.loads"), True),  # firmware on disk (planned)
    (phone("/disk/notes.txt"), True),  # a file found under the root (its own content type)
    (phone("/disk/../disk/notes.txt"), False),  # a dot segment: 403 as before
    (get("/sip88xx.loads", "Host: lab", "user-agent:  Cisco-CP-7841-3PCC/1 (024c4b0000ff) ",
         "CONNECTION: Close"), True),  # odd case and spacing
    (get("/CP-8851-3PCC.xml", "Host: lab", "Connection: close"), True),  # no User-Agent
    (get("/CP-8851-3PCC.xml", "Host: lab") + get("/sip88xx.loads", "Host: lab:80", "Connection: keep-alive")
     + get("/CP-8851-3PCC.xml", "Host: 10.0.0.1", "Connection: close"), True),  # keep-alive, pipelined
    (get("/CP-8851-3PCC.xml", "Host: lab") + get("/CP-8851-3PCC.xml", "Host: lab", "Range: bytes=0-3",
                                                 "Connection: close"),
     True),  # a plain GET, then one for aiohttp on the same connection
    (get("/CP-8851-3PCC.xml", "Connection: close"), False),  # no Host: aiohttp's 400
    (get("/CP-8851-3PCC.xml", "Host: ", "Connection: close"), False),
    (get("/CP-8851-3PCC.xml", "Host: a:99999", "Connection: close"), False),
    (get("/CP-8851-3PCC.xml", "Host: [::1]:80", "Connection: close"), False),
    (phone("/missing.bin"), False),  # 404
    (phone("/disk/empty.bin"), False),  # an empty file
    (phone("/big.bin"), False),  # over MAX_FILE: sendfile
    (phone("/../etc/passwd"), False),  # forbidden
    (phone("//disk/notes.txt"), False),  # doubled or dot segments, a trailing slash: aiohttp's
    (phone("/disk//notes.txt"), False),
    (phone("/disk/./notes.txt"), False),
    (phone("/./CP-8851-3PCC.xml"), False),
    (phone("/CP-8851-3PCC.xml/"), False),
    (phone("/disk"), False),  # a folder
    (phone("/CP-8851-3PCC.xml?x=1"), False),  # a query
    (phone("/CP%2D8851-3PCC.xml"), False),  # an escape
    (get("/sip88xx.loads", "Host: lab", "Range: bytes=10-99", "Connection: close"), False),
    (get("/sip88xx.loads", "Host: lab", "If-None-Match: *", "Connection: close"), False),
    (get("/sip88xx.loads", "Host: lab", "Accept-Encoding: gzip", "Connection: close"), False),
    (get("/sip88xx.loads", "Host: lab", "Host: again", "Connection: close"), False),  # twice
    (get("/sip88xx.loads", "Host: lab", " folded", "Connection: close"), False),
    (get("/sip88xx.loads", "Host: lab", "Connection: upgrade, close"), False),
    (get("/sip88xx.loads", "Host: l\xe4b", "Connection: close"), False),  # not ASCII
    (get("", "Host: lab", "Connection: close", line="HEAD /sip88xx.loads HTTP/1.1"), False),
    (get("", "Host: lab", line="GET /sip88xx.loads HTTP/1.0"), False),
    (get("", "Host: lab", "Connection: close", line="GET  /sip88xx.loads HTTP/1.1"), False),
    (get("", "Content-Length: 3", "Connection: close", line="POST /sip88xx.loads HTTP/1.1") + b"a=b",
     False),
    (get("", "Host: lab", "Connection: close", line="GET /sip88xx.loads HTTP/1.1 x"), False),  # malformed
]


def tree(tmp_path: Path) -> FileTree:
    """The lab's files (written once: both servers must see the same mtimes)."""
    root = tmp_path / "root"
    firmware = tmp_path / "firmware" / "sip88xx.12-0-1MPP-0001.loads"
    if not root.exists():
        (root / "disk").mkdir(parents=True)
        (root / "disk" / "notes.txt").write_text("notes\n")
        (root / "disk" / "empty.bin").write_bytes(b"")
        (root / "big.bin").write_bytes(b"b" * (MAX_FILE + 1))
        firmware.parent.mkdir()
        firmware.write_bytes(FIRMWARE)
    files = {"CP-8851-3PCC.xml": PlannedFile("CP-8851-3PCC.xml", "model profile", data=PROFILE),
             "sip88xx.loads": PlannedFile("sip88xx.loads", "firmware", disk_path=firmware)}
    return FileTree(files, root, sources=[firmware.parent])


async def exchange(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), BOUND)
    writer.write(request)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), BOUND)
    finally:
        writer.close()


def without_date(answer: bytes) -> bytes:
    return b"\r\n".join(line for line in answer.split(b"\r\n") if not line.lower().startswith(b"date: "))


def seen(event: Event) -> tuple[object, ...]:
    """An event less its time and the client's port."""
    return (event.service, (event.client or "").rsplit(":", 1)[0], event.phone, event.action,
            event.request, event.answer, event.result, tuple(sorted(event.detail.items())))


async def serve_all(tmp_path: Path, quick: bool) -> tuple[list[bytes], list[Event], HttpServer]:
    recorder = EventRecorder()
    ctx = StartContext(tree(tmp_path), recorder, StaticDirectory(), frozenset({"02:4c:4b:00:00:01"}),
                       tmp_path / "state")
    limits = HttpLimits(header_timeout=BOUND, body_timeout=BOUND, per_client=64, total=64)
    server = await start_http(HttpPlan("http", limits=limits), Endpoint("http", "127.0.0.1", 0, "tcp"),
                              ctx, quick=quick)
    try:
        answers = [await exchange(server.port, request) for request, _ in REQUESTS]
    finally:
        await server.close()
    return answers, recorder.events, server


def test_plain_gets_get_aiohttps_answer_byte_for_byte(tmp_path: Path) -> None:
    assert all(b"\r\nHost: " in request for request, plain in REQUESTS if plain)
    quick, quick_events, server = asyncio.run(serve_all(tmp_path, True))
    stock, stock_events, stock_server = asyncio.run(serve_all(tmp_path, False))
    for (request, _), ours, theirs in zip(REQUESTS, quick, stock, strict=True):
        assert without_date(ours) == without_date(theirs), request
        assert b"\r\nDate: " in ours or not theirs
    assert [seen(e) for e in quick_events] == [seen(e) for e in stock_events]
    assert quick[1].endswith(FIRMWARE) and quick[0].endswith(PROFILE)
    assert quick[0].startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close\r\n" in quick[0]
    assert quick[6].count(b"HTTP/1.1 200 OK") == 3
    assert b"HTTP/1.1 206 Partial Content" in quick[7]
    assert quick_events[0].phone == "02:4c:4b:00:00:01"
    # the quick path took every plain GET and nothing else (each counts once; 3 in the pipeline)
    assert server.handler is not None and stock_server.handler is not None
    expected = sum(request.count(b"\r\n\r\n") if plain else 0 for request, plain in REQUESTS) - 1
    assert server.handler.quick.answered == expected
    assert stock_server.handler.quick.answered == 0
    assert server.handler.handled == stock_server.handler.handled


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    async def scenario() -> tuple[bytes, bytes]:
        ctx = StartContext(tree(tmp_path), EventRecorder(), StaticDirectory(), frozenset(), tmp_path / "s")
        server = await start_http(HttpPlan("http"), Endpoint("http", "127.0.0.1", 0, "tcp"), ctx)
        try:
            first = await exchange(server.port, phone("/disk/notes.txt"))
            path = tmp_path / "root" / "disk" / "notes.txt"
            path.write_text("other notes, longer\n")
            os.utime(path, ns=(1, 10**18))
            second = await exchange(server.port, phone("/disk/notes.txt"))
            return first, second
        finally:
            await server.close()

    first, second = asyncio.run(scenario())
    assert first.endswith(b"\r\n\r\nnotes\n") and second.endswith(b"\r\n\r\nother notes, longer\n")
    assert b"Content-Length: 20\r\n" in second


def test_a_head_that_never_ends_is_closed_without_an_answer(tmp_path: Path) -> None:
    async def scenario() -> bytes:
        ctx = StartContext(tree(tmp_path), EventRecorder(), StaticDirectory(), frozenset(), tmp_path / "s")
        limits = HttpLimits(header_timeout=0.5, body_timeout=0.5, per_client=4, total=8)
        endpoint = Endpoint("http", "127.0.0.1", 0, "tcp")
        server = await start_http(HttpPlan("http", limits=limits), endpoint, ctx)
        try:
            return await exchange(server.port, b"GET /sip88xx.loads HTTP/1.1\r\nHost: lab\r\n")
        finally:
            await server.close()

    assert asyncio.run(scenario()) == b""


@pytest.mark.parametrize(("data", "expected"), [
    (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", PlainGet("/", False, None, 27)),
    (b"GET /a HTTP/1.1\r\nConnection:close\r\nUser-Agent: x y \r\nHost:b:80\r\n\r\nrest",
     PlainGet("/a", True, "x y", 66)),
    (b"GET / HTTP/1.1\r\n\r\n", None),
    (b"GET /a HTTP/1.1\r\nHost: x", INCOMPLETE),
    (b"GET /a HTTP/1.1\r\nHost: " + b"x" * MAX_HEAD, None),
    (b"get /a HTTP/1.1\r\n\r\n", None),
    (b"GET a HTTP/1.1\r\n\r\n", None),
    (b"GET /a HTTP/1.1\r\nHost : x\r\n\r\n", None),
    (b"GET /a HTTP/1.1\r\nX-Other: 1\r\n\r\n", None),
    (b"GET /a HTTP/1.1\r\nHost: \x00\r\n\r\n", None),
    (b"GET /a HTTP/1.1\r\nHost\r\n\r\n", None),
    (b"GET /a\tb HTTP/1.1\r\n\r\n", None),
])
def test_only_the_plain_shape_is_plain(data: bytes, expected: object) -> None:
    assert parse_plain_get(data) == expected


def test_a_connection_the_quick_path_keeps_has_tcp_keepalive(tmp_path: Path) -> None:
    """aiohttp's handler turns SO_KEEPALIVE on for its connections; a keep-alive connection that
    only the quick path ever serves gets it too, so a phone that vanishes is found out."""
    import socket

    async def scenario() -> tuple[int, int]:
        ctx = StartContext(tree(tmp_path), EventRecorder(), StaticDirectory(), frozenset(), tmp_path / "s")
        server = await start_http(HttpPlan("http"), Endpoint("http", "127.0.0.1", 0, "tcp"), ctx)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(get("/disk/notes.txt", "Host: lab", "Connection: keep-alive"))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\nnotes\n"), BOUND)
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            (connection,) = server.listener.live
            assert connection.quick is not None and connection.handler is None  # aiohttp never saw it
            sock = connection.transport.get_extra_info("socket")
            return sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), server.handler.quick.answered
        finally:
            writer.close()
            await server.close()

    keepalive, answered = asyncio.run(scenario())
    assert keepalive == 1 and answered == 1
