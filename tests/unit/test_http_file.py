"""LocalFileResponse (labkit.services.http_file) answers every request as aiohttp's FileResponse
does, byte for byte but the Date header, and never uses the loop's thread pool."""

from __future__ import annotations

import asyncio
import gzip
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from labkit.services.http_file import SUPPORTED, LocalFileResponse, file_response

BODY = bytes(range(256)) * 40  # 10,240 bytes


class CountingPool(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.submitted = 0

    def submit(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.submitted += 1
        return super().submit(*args, **kwargs)


async def fetch(port: int, request: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request.encode("latin-1"))
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    return answer


def without_date(answer: bytes) -> bytes:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"date:")]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def requests(etag: str) -> list[str]:
    def get(path: str, *headers: str, method: str = "GET") -> str:
        extra = "".join(f"{header}\r\n" for header in headers)
        return f"{method} {path} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n{extra}\r\n"

    return [
        get("/f/firmware.loads"),
        get("/f/firmware.loads", method="HEAD"),
        get("/f/firmware.loads", "Range: bytes=10-99"),
        get("/f/firmware.loads", "Range: bytes=-100"),
        get("/f/firmware.loads", "Range: bytes=20000-"),  # past the end: 416
        get("/f/firmware.loads", f"If-None-Match: {etag}"),  # 304
        get("/f/firmware.loads", "If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT"),  # 304
        get("/f/firmware.loads", 'If-Match: "nope"'),  # 412
        get("/f/firmware.loads", "If-Range: Mon, 01 Jan 2001 00:00:00 GMT", "Range: bytes=0-9"),  # 200
        get("/f/profile.xml", "Accept-Encoding: gzip"),  # the .gz beside it
        get("/f/missing.bin"),  # 404
        get("/f/folder"),  # not a regular file: 403
    ]


@pytest.mark.skipif(not SUPPORTED, reason="this aiohttp has no FileResponse steps to reuse")
def test_local_file_response_answers_as_file_response_without_the_thread_pool(tmp_path: Path) -> None:
    (tmp_path / "firmware.loads").write_bytes(BODY)
    (tmp_path / "profile.xml").write_bytes(b"<flat-profile/>" * 50)
    (tmp_path / "profile.xml.gz").write_bytes(gzip.compress(b"<flat-profile/>" * 50, mtime=0))
    (tmp_path / "folder").mkdir()
    stat = os.stat(tmp_path / "firmware.loads")
    etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'

    async def scenario() -> tuple[list[bytes], list[bytes], int, int]:
        pool = CountingPool()
        asyncio.get_running_loop().set_default_executor(pool)
        kind: dict[str, type[web.FileResponse]] = {"local": LocalFileResponse}

        async def handle(request: web.Request) -> web.StreamResponse:
            return kind["local"](tmp_path / request.match_info["name"], headers={"Server": "t"})

        app = web.Application()
        app.router.add_route("*", "/f/{name}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            local = [await fetch(port, request) for request in requests(etag)]
            after_local = pool.submitted
            kind["local"] = web.FileResponse
            stock = [await fetch(port, request) for request in requests(etag)]
            return local, stock, after_local, pool.submitted
        finally:
            await runner.cleanup()

    local, stock, after_local, after_stock = asyncio.run(scenario())
    assert after_local == 0  # LocalFileResponse: no hand-off to the pool
    assert after_stock > 0  # while the stock FileResponse does use it (the point of the change)
    for ours, theirs in zip(local, stock, strict=True):
        assert without_date(ours) == without_date(theirs)
    statuses = [answer.split(b" ", 2)[1] for answer in local]
    assert statuses == [b"200", b"200", b"206", b"206", b"416", b"304", b"304", b"412", b"200", b"200",
                        b"404", b"403"]
    assert local[0].endswith(BODY) and local[2].endswith(BODY[10:100])
    assert b"Content-Encoding: gzip" in local[9]


def test_file_response_chooses_the_local_one_where_supported(tmp_path: Path) -> None:
    response = file_response(tmp_path / "x", {"Server": "t"})
    assert type(response) is (LocalFileResponse if SUPPORTED else web.FileResponse)
    assert response.headers["Server"] == "t"
