"""HTTP(S) connections: who may hold one, for how long, and what a malformed request becomes.

Every TCP connection passes a gate before a single TLS or HTTP byte is read: a bound per client
address and a bound on the whole service (file handles are shared with TFTP and DNS). TLS is
started here, so a handshake that never ends holds a counted slot for the header timeout at
most. aiohttp's request handler then reads requests with the plan's timeouts: its keep-alive
timer, armed from the moment the connection opens, closes a connection whose request head is
not complete in time (slowloris), and the lingering time bounds draining an unread body. A
request aiohttp cannot parse becomes one "malformed" report instead of a logged traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from labkit.protocols.http import DigestAuth, auth_challenge
from labkit.protocols.http_faults import HttpFaultAction
from labkit.protocols.http_quick import PlainGet
from labkit.protocols.http_wire import Fields, Framing, encode_response
from labkit.services.http_quick import QuickConnection

if TYPE_CHECKING:
    from labkit.plan.http import HttpAuthPlan

Peer = tuple[str, int]
OnRefused = Callable[[Peer, str], None]  # (peer, why) for a connection closed at once
OnMalformed = Callable[[Peer, str], None]  # (peer, what aiohttp could not parse)
Quick = Callable[[PlainGet, Peer], "bytes | None"]  # a plain GET's whole answer, or None for aiohttp
MAX_EARLY_BYTES = 64 * 1024  # bytes a TLS client may send before the HTTP handler exists
# connections the kernel may queue before they are accepted (asyncio's default is 100; Linux caps
# it at net.core.somaxconn): a bench of phones booting at once opens hundreds, and each SYN
# dropped at a full queue costs its phone a 1 s, then 3 s, retransmission (bench/README.md, round 6)
LISTEN_BACKLOG = 1024


class ConnectionGate:
    """Counts open connections, in total and per client address."""

    def __init__(self, total: int, per_client: int) -> None:
        self.total = total
        self.per_client = per_client
        self.open = 0
        self.by_address: Counter[str] = Counter()

    def admit(self, address: str) -> str | None:
        """None when the connection may stay (it is counted), else why it must be closed."""
        if self.open >= self.total:
            return f"{self.total} connections open (the service's bound)"
        if self.by_address[address] >= self.per_client:
            return f"{self.per_client} connections open from {address} (the per-client bound)"
        self.open += 1
        self.by_address[address] += 1
        return None

    def release(self, address: str) -> None:
        self.open -= 1
        self.by_address[address] -= 1
        if self.by_address[address] <= 0:
            del self.by_address[address]


class _RequestHandler(web.RequestHandler):
    """aiohttp's handler, reporting unparsable requests instead of logging their traceback."""

    def __init__(self, manager: web.Server, *, on_malformed: OnMalformed, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.on_malformed = on_malformed

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if isinstance(exc, HttpProcessingError):
            peer = self.transport.get_extra_info("peername") if self.transport is not None else None
            self.on_malformed(_peer(peer), _short(exc))
        return super().handle_error(request, status, exc, message)

    def log_exception(self, *args: Any, **kw: Any) -> None:
        if isinstance(kw.get("exc_info"), HttpProcessingError):
            return  # reported by handle_error as one event; a bug in labkit still logs its traceback
        super().log_exception(*args, **kw)


class _Connection(asyncio.Protocol):
    """One TCP connection: admitted by the gate, then TLS (if any), then aiohttp's handler."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.address: str | None = None  # set once admitted (and counted)
        self.transport: asyncio.BaseTransport | None = None
        self.handler: _RequestHandler | None = None
        self.early: list[bytes] = []  # decrypted bytes that came with the end of the handshake
        self.early_eof = False
        self.quick: QuickConnection | None = None  # plain GETs answered here until aiohttp takes over

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = _peer(transport.get_extra_info("peername"))
        refusal = self.listener.gate.admit(peer[0])
        if refusal is not None:
            assert isinstance(transport, asyncio.Transport)
            transport.abort()
            self.listener.on_refused(peer, refusal)
            return
        self.address, self.transport = peer[0], transport
        self.listener.live.add(self)
        if self.listener.quick is not None and self.listener.ssl_context is None:
            assert isinstance(transport, asyncio.Transport)
            self.quick = QuickConnection(self, transport, peer)
        elif self.listener.ssl_context is None:
            self._open(transport)
        else:
            assert isinstance(transport, asyncio.Transport)
            transport.pause_reading()  # start_tls takes the bytes from here
            handshake = asyncio.ensure_future(self._start_tls(transport))
            self.listener.handshakes.add(handshake)
            handshake.add_done_callback(self.listener.handshakes.discard)

    async def _start_tls(self, transport: asyncio.Transport) -> None:
        assert self.listener.ssl_context is not None
        loop = asyncio.get_running_loop()
        try:
            secure = await loop.start_tls(transport, self, self.listener.ssl_context, server_side=True,
                                          ssl_handshake_timeout=self.listener.handshake_timeout)
        except (TimeoutError, OSError, ConnectionError):
            self._release()  # start_tls closed the transport; asyncio tells no protocol of a
            return  # connection lost during the handshake
        if secure is None or secure.is_closing():
            self._release()
            return
        self.transport = secure
        self._open(secure)

    def _open(self, transport: asyncio.BaseTransport) -> None:
        self.handler = self.listener.make_handler()
        self.handler.connection_made(transport)
        early, self.early = self.early, []
        for data in early:
            self.handler.data_received(data)
        if self.early_eof:
            self.handler.eof_received()

    def data_received(self, data: bytes) -> None:
        if self.quick is not None:
            self.quick.received(data)
        elif self.handler is not None:
            self.handler.data_received(data)
        elif sum(map(len, self.early)) + len(data) <= MAX_EARLY_BYTES:
            self.early.append(data)
        elif self.transport is not None:
            self.transport.close()

    def eof_received(self) -> bool | None:
        if self.quick is not None:
            if not self.quick.buffer:  # a keep-alive client done: asyncio closes the transport
                self.quick.stop()
                return None
            self.quick.hand_over()
        if self.handler is not None:
            self.handler.eof_received()
        else:
            self.early_eof = True
        return None  # the transport closes itself once the peer has finished

    def pause_writing(self) -> None:
        if self.quick is not None:
            self.quick.pause()
        elif self.handler is not None:
            self.handler.pause_writing()

    def resume_writing(self) -> None:
        if self.quick is not None:
            self.quick.resume()
        elif self.handler is not None:
            self.handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.quick is not None:
            self.quick.stop()
            self.quick = None
        self._release()
        if self.handler is not None:
            self.handler.connection_lost(exc)
            self.handler = None

    def _release(self) -> None:
        """Give the slot back, once (a refused connection never held one)."""
        if self.address is not None:
            self.listener.gate.release(self.address)
            self.listener.live.discard(self)
            self.address = None

    def abort(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            assert isinstance(self.transport, asyncio.Transport)
            self.transport.abort()


class Listener:
    """The listening socket of one HTTP(S) service, with its gate, timeouts and TLS."""

    def __init__(self, runner: web.AppRunner, *, gate: ConnectionGate, header_timeout: float,
                 body_timeout: float, ssl_context: ssl.SSLContext | None, on_refused: OnRefused,
                 on_malformed: OnMalformed, quick: Quick | None = None) -> None:
        """`quick`: plain GETs over HTTP answered without aiohttp (labkit.services.http_quick)."""
        self.runner = runner
        self.quick = quick
        self.header_timeout = header_timeout
        self.gate = gate
        self.ssl_context = ssl_context
        self.handshake_timeout = header_timeout
        self.on_refused = on_refused
        self.live: set[_Connection] = set()
        self.handshakes: set[asyncio.Future[None]] = set()
        self.server: asyncio.Server | None = None
        # aiohttp arms its keep-alive timer when the connection opens and again after each
        # response, and closes the connection if no complete request head came meanwhile
        self.handler_options: dict[str, Any] = {
            "keepalive_timeout": header_timeout, "lingering_time": body_timeout,
            "access_log": None, "on_malformed": on_malformed}

    def make_handler(self) -> _RequestHandler:
        manager = self.runner.server
        assert manager is not None
        return _RequestHandler(manager, loop=asyncio.get_running_loop(), **self.handler_options)

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        """Listen; `reuse_port`: beside other worker processes on the same port (SO_REUSEPORT)."""
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _Connection(self), host, port, reuse_address=True,
                                               reuse_port=reuse_port or None, backlog=LISTEN_BACKLOG)

    @property
    def port(self) -> int:
        """The bound port (the one asked for, or the kernel's choice for 0)."""
        assert self.server is not None and self.server.sockets
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for connection in [c for c in self.live if c.handler is None]:
            connection.abort()  # still in the TLS handshake: aiohttp does not know it
        await self.runner.cleanup()
        for connection in list(self.live):
            connection.abort()
        for handshake in list(self.handshakes):
            handshake.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await handshake
        self.handshakes.clear()


def _peer(peer: object) -> Peer:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return str(peer[0]), int(peer[1])
    return "?", 0


def _short(exc: HttpProcessingError) -> str:
    """The parser's complaint in one line (it quotes the offending bytes)."""
    text = " ".join(str(exc.message or type(exc).__name__).split())
    return text if len(text) <= 160 else text[:157] + "..."


# -- answers framed by the kit itself (HTTP/1.0, chunked with extensions and trailers, to the close) --


def framing_of(actions: list[HttpFaultAction]) -> Framing | None:
    """The framing fault actions ask for (the first that says each thing), or None."""
    framers = [a for a in actions if a.frames]
    if not framers:
        return None
    version = next((a.version for a in framers if a.version), "1.1")
    extension = next((a.chunk_extension for a in framers if a.chunk_extension), None)
    name, _, value = (extension or "").partition("=")
    return Framing(version=version, chunked=any(a.chunked for a in framers),
                   chunk_size=next((a.chunk_size for a in framers if a.chunk_size), 1024),
                   extensions=((name, value),) if extension else (),
                   trailers=next((a.trailers for a in framers if a.trailers), ()),
                   length=not any(a.no_length for a in framers))


class RawResponse(web.StreamResponse):
    """An answer whose bytes the kit framed itself, written as they are; the connection then closes.

    aiohttp frames every answer its own way (and as the request's version); a firmware's framing
    bug is only reproduced by bytes labkit chooses."""

    def __init__(self, status: int, headers: Fields, body: bytes, framing: Framing, *,
                 cut: int | None = None) -> None:
        """`cut`: send only this many bytes after the head (a chunked or 1.0 body cut short)."""
        super().__init__(status=status)
        self.force_close()
        self.raw = encode_response(status, headers, body, framing)
        if cut is not None:
            self.raw = self.raw[: self.raw.index(b"\r\n\r\n") + 4 + cut]
        self.sent = False

    async def prepare(self, request: web.BaseRequest) -> None:
        if self.sent:
            return
        self.sent = True
        transport = request.transport
        if transport is not None and not transport.is_closing():
            transport.write(self.raw)
            transport.close()

    async def write_eof(self, data: bytes = b"") -> None:
        return None


def unauthorized(request: web.Request, auth: HttpAuthPlan | None, now: float, digest: DigestAuth | None,
                 server: str) -> web.Response | None:
    """The 401 (with its challenge) for a request the service's credentials refuse; None when the
    service asks for none or the request's Authorization is good (the decision is
    protocols.http.auth_challenge's)."""
    if auth is None:
        return None
    challenge = auth_challenge(request.headers.get("Authorization"), request.method, now, user=auth.user,
                               password=auth.password, realm=auth.realm, digest=digest)
    if challenge is None:
        return None
    return web.Response(status=401, headers={"WWW-Authenticate": challenge, "Server": server})
