"""A plain GET of a lab file answered without aiohttp: the same bytes, fewer steps.

In a storm every phone fetches three files with a plain GET (labkit.protocols.http_quick), and
aiohttp's per-request work (a task per connection, its parser, request and response objects,
the router, FileResponse and sendfile) was most of an HTTP worker's CPU (bench/README.md,
storm, round 4). `QuickFiles.answer` gives the whole answer to such a GET as bytes, written by
the connection at once, when the answer is a plain 200 of a file: no authentication, no
redirect, dynamic route, cloud path or fault rule concerns it and it is not encrypted. The head
is the one aiohttp writes for the same request, header for header in aiohttp's order, with
aiohttp's own Date (tests/unit/test_http_quick.py compares them byte for byte). Anything else
returns None and aiohttp answers as before.

Files on disk are kept in memory while small (`MAX_FILE`, `MAX_TOTAL` bound it), checked against
a stat of the file on every request (size, mtime, inode), as FileResponse's ETag is; a larger
file goes out through aiohttp's sendfile. The head is made once per kept file; each answer is
that head, the Date and the body put together (one copy of the body per request).
"""

from __future__ import annotations

import asyncio
import math
import os
import stat
import time
from typing import TYPE_CHECKING

from aiohttp.helpers import rfc822_formatted_time
from aiohttp.tcp_helpers import tcp_keepalive
from aiohttp.web_fileresponse import CONTENT_TYPES, FALLBACK_CONTENT_TYPE

from labkit.events import make_event
from labkit.plan.cloud import ACTIVATION_PATH
from labkit.protocols.http_quick import INCOMPLETE, PlainGet, parse_plain_get
from labkit.services.http_send import SERVER_HEADER, content_type

if TYPE_CHECKING:
    from labkit.services.http import _Handler
    from labkit.services.http_conn import Peer, _Connection

MAX_FILE = 1024 * 1024  # bytes: a file on disk kept in memory (a real firmware image, tens of
# megabytes, is above it and goes out through aiohttp's sendfile)
MAX_TOTAL = 16 * 1024 * 1024  # bytes kept in memory for all files


class QuickFiles:
    """Plain GETs of the handler's files, answered from bytes (None: aiohttp answers)."""

    def __init__(self, handler: _Handler) -> None:
        self.handler = handler
        self.kept: dict[str, tuple[tuple[int, int, int, int], bytes, bytes]] = {}  # path -> (key, head, body)
        self.kept_bytes = 0
        self.answered = 0  # requests answered here (the rest went to aiohttp)

    def answer(self, get: PlainGet, peer: tuple[str, int]) -> bytes | None:
        """The whole answer (head and body) to `get` from `peer`, its event sent; None when it is
        not a plain 200 of a file."""
        handler = self.handler
        config, path = handler.config, get.target
        if (handler.faults is not None or config.auth is not None or path in config.redirects
                or (config.cloud is not None and path == ACTIVATION_PATH)
                or handler.extras.routes.match(path, "GET") is not None):
            return None
        try:
            served = handler.tree.lookup(path)
        except Exception:  # ForbiddenPath, or anything odd: aiohttp's path answers and logs it
            return None
        if served is None or handler.encrypts(served):
            return None
        if served.data is not None:
            answer = _memory(served.data, served.path, get.close)
        elif served.disk_path is not None:
            answer = self._disk(str(served.disk_path), get.close)
        else:
            return None
        if answer is None:
            return None
        handler.handled += 1
        self.answered += 1
        phone, detail = handler.identify(get.user_agent, peer[0])
        handler.sink(make_event(handler.scheme, f"{peer[0]}:{peer[1]}", phone, "get", path,
                                f"200 {served.size} bytes", "ok", handler.clock, **detail))
        return answer

    def _disk(self, path: str, close: bool) -> bytes | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode) or not 0 < st.st_size <= MAX_FILE:
            return None
        key = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)
        kept = self.kept.get(path)
        if kept is None or kept[0] != key:
            kept = self._keep(path, key, st)
            if kept is None:
                return None
        return _finish(kept[1], close) + kept[2]

    def _keep(self, path: str, key: tuple[int, int, int, int], st: os.stat_result
              ) -> tuple[tuple[int, int, int, int], bytes, bytes] | None:
        """Read `path` into memory (bounded), with the head FileResponse gives it."""
        old = self.kept.pop(path, None)
        if old is not None:
            self.kept_bytes -= len(old[2])
        if self.kept_bytes + st.st_size > MAX_TOTAL:
            return None
        try:
            with open(path, "rb") as f:
                body = f.read(st.st_size + 1)
                now = os.fstat(f.fileno())
        except OSError:
            return None
        if len(body) != st.st_size or (now.st_mtime_ns, now.st_size, now.st_ino, now.st_dev) != key:
            return None  # changing under us: aiohttp streams it
        kind = CONTENT_TYPES.guess_type(path)[0] or FALLBACK_CONTENT_TYPE
        modified = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(math.ceil(st.st_mtime)))
        head = (f"HTTP/1.1 200 OK\r\nServer: {SERVER_HEADER}\r\nContent-Type: {kind}\r\n"
                f'Etag: "{st.st_mtime_ns:x}-{st.st_size:x}"\r\nLast-Modified: {modified}\r\n'
                f"Content-Length: {st.st_size}\r\nAccept-Ranges: bytes\r\n").encode("latin-1")
        kept = (key, head, body)
        self.kept[path] = kept
        self.kept_bytes += len(body)
        return kept


def _memory(data: bytes, path: str, close: bool) -> bytes | None:
    """web.Response(body=data) with the headers labkit.services.http gives a file in memory."""
    if not data:
        return None
    head = (f"HTTP/1.1 200 OK\r\nServer: {SERVER_HEADER}\r\nAccept-Ranges: bytes\r\n"
            f"Content-Type: {content_type(path)}\r\nContent-Length: {len(data)}\r\n").encode("latin-1")
    return _finish(head, close) + data


def _finish(head: bytes, close: bool) -> bytes:
    """The Date aiohttp writes (its own clock and format), the Connection it writes, the end."""
    ending = "\r\nConnection: close\r\n\r\n" if close else "\r\n\r\n"
    return head + b"Date: " + (rfc822_formatted_time() + ending).encode("latin-1")


class QuickConnection:
    """A connection before aiohttp: plain GETs answered from the listener's `quick` (whole answers
    written at once), with aiohttp's keep-alive bound (a request head within the header timeout
    of the connection's start or of the last answer, else the connection closes, as aiohttp
    closes it). The first request that is not a plain GET, or that `quick` will not answer, goes
    to aiohttp with every byte after it, and aiohttp has the connection from then on."""

    def __init__(self, connection: _Connection, transport: asyncio.Transport, peer: Peer) -> None:
        self.connection, self.transport, self.peer = connection, transport, peer
        tcp_keepalive(transport)  # as aiohttp's handler does: a peer that vanished is found out
        self.buffer = b""
        self.paused = False  # the client is not reading its answers: read nothing more meanwhile
        self.timer: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        loop = asyncio.get_running_loop()
        self.timer = loop.call_at(loop.time() + self.connection.listener.header_timeout, self._expired)

    def _expired(self) -> None:
        self.timer = None
        self.transport.close()  # no complete request head in time (aiohttp's keep-alive close)

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def received(self, data: bytes) -> None:
        self.buffer = self.buffer + data if self.buffer else data
        self._serve()

    def _serve(self) -> None:
        answer_with = self.connection.listener.quick
        assert answer_with is not None
        while self.buffer and not self.paused:
            parsed = parse_plain_get(self.buffer)
            if parsed == INCOMPLETE:
                return
            if not isinstance(parsed, PlainGet) or (answer := answer_with(parsed, self.peer)) is None:
                self.hand_over()  # not a plain GET, or not one answered here
                return
            self.transport.write(answer)
            if parsed.close:
                self.stop()
                self.buffer = b""
                self.transport.close()
                return
            self.buffer = self.buffer[parsed.end:]
            self._arm()

    def hand_over(self) -> None:
        """aiohttp takes the connection, and the bytes not answered here."""
        self.stop()
        connection, early = self.connection, self.buffer
        connection.quick, self.buffer = None, b""
        if self.paused:
            self.transport.resume_reading()
        connection.early = [early] if early else []
        connection._open(self.transport)
        if self.paused and connection.handler is not None:
            connection.handler.pause_writing()

    def pause(self) -> None:
        self.paused = True
        self.transport.pause_reading()

    def resume(self) -> None:
        self.paused = False
        self.transport.resume_reading()
        self._serve()
