"""HTTP and HTTPS (aiohttp): the same tree as TFTP, phones identified by their User-Agent.

GET and HEAD serve files, POST is accepted (the `--post` resync sends a body and expects the
profile back); firmware on disk goes out with sendfile and byte ranges; profiles can carry
RFC 8188 `Content-Encoding: aes128gcm`; optional Basic or Digest authentication. Connections
pass labkit.services.http_conn first (per-client and total bounds, read timeouts, malformed
requests as events).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web

from labkit.events import make_event
from labkit.faults.hooks import ServiceFaults
from labkit.formats import aes128gcm, openssl_enc
from labkit.plan.http import HttpPlan
from labkit.protocols.http import (
    DigestAuth,
    RangeNotSatisfiable,
    parse_range,
    parse_user_agent,
)
from labkit.protocols.http_faults import HttpFaultAction
from labkit.services.context import Endpoint, StartContext
from labkit.services.filetree import ForbiddenPath, ServedFile
from labkit.services.http_conn import ConnectionGate, Listener, Peer, RawResponse, framing_of, unauthorized
from labkit.services.http_extras import Extras
from labkit.services.http_file import file_response
from labkit.services.http_forward import Forwarder, ForwardFailed, HttpLink, as_forwarded, forwarded_peer
from labkit.services.http_quick import QuickFiles
from labkit.services.http_send import (
    SERVER_HEADER,
    Exchange,
    close_with,
    content_type,
    fault_status,
    send_shaped,
)

MAX_BODY = 4 * 1024 * 1024  # a POST or PUT body (reports.max_bytes bounds uploads below it)
PROFILE_KINDS = {"phone profile"}  # RFC 8188 applies to per-phone files: a factory phone has no IKM


@dataclass
class HttpServer:
    listener: Listener
    endpoint: Endpoint
    port: int  # the bound port (the endpoint's, or the kernel's choice for 0)
    handler: _Handler | None = None

    @property
    def counters(self) -> dict[str, int]:
        """Requests this service answered (each worker's own, with `--workers N`)."""
        return {"requests": self.handler.handled if self.handler is not None else 0}

    def reload(self, config: HttpPlan, ctx: StartContext) -> None:
        """Requests from now on see the new plan's tree, authentication, redirects, encryption and
        fault rules; connection limits stay those the listener started with."""
        if self.handler is not None:
            self.handler.take(config, ctx)

    async def close(self) -> None:
        await self.listener.close()
        if self.handler is not None and self.handler.forward is not None:
            await self.handler.forward.close()


class _Handler:
    """`link`: HTTP served by worker processes; in a worker (`forwarding`) what needs the main
    process goes there, in the main process the worker's forwarded requests are trusted."""

    def __init__(self, config: HttpPlan, ctx: StartContext, clock: Callable[[], float],
                 link: HttpLink | None = None, *, forwarding: bool = False) -> None:
        self.scheme, self.clock, self.sink = config.scheme, clock, ctx.bus
        self.secret = link.digest_secret if link is not None else None
        self.forward = Forwarder(link) if link is not None and forwarding else None
        self.trust = link if not forwarding else None
        self.config, self.digest = config, _digest(config, self.secret)
        self.handled = 0
        self.extras = Extras(self.emit)
        self.take(config, ctx)
        self.quick = QuickFiles(self)

    def take(self, config: HttpPlan, ctx: StartContext) -> None:
        """Use `config` and the context's tree, phones and fault hooks (at start and on reload;
        digest nonces already given stay valid while the credentials stay)."""
        if config.auth != self.config.auth:
            self.digest = _digest(config, self.secret)
        self.config, self.tree, self.directory = config, ctx.tree, ctx.directory
        self.known_macs = ctx.known_macs
        self.faults: ServiceFaults[HttpFaultAction] | None = ctx.faults.http
        self.extras.take(config, ctx)

    def identify(self, user_agent: str | None, address: str) -> tuple[str | None, dict[str, str]]:
        """The phone asking (its MAC or None) and how it was named, from its User-Agent or address."""
        agent = parse_user_agent(user_agent)
        detail: dict[str, str] = {}
        if agent is not None:
            detail = {"ua_model": agent.model, "ua_version": agent.version, "ua_mac": agent.mac}
            if agent.mac in self.known_macs:
                detail["identified_by"] = "user-agent"
                return agent.mac, detail
            detail["identified_by"] = "user-agent (not in the inventory)"
        phone = self.directory.phone_at(address)
        if phone is not None:
            detail["identified_by"] = "address"
        elif "identified_by" not in detail:
            detail["identified_by"] = "unknown"
        return phone, detail

    def _authorized(self, request: web.Request) -> web.Response | None:
        return unauthorized(request, self.config.auth, self.clock(), self.digest, SERVER_HEADER)

    def emit(self, exchange: Exchange, answer: str, result: str) -> None:
        self.sink(exchange.event(answer, result))

    def _exchange(self, request: web.Request) -> Exchange:
        port = _peer_port(request)
        peer = forwarded_peer(request, self.trust) if self.trust is not None else None
        if peer is not None:  # a worker's client: named, logged and answered as if it came here
            request, port = as_forwarded(request, peer[0]), peer[1]
        phone, detail = self.identify(request.headers.get("User-Agent"), request.remote or "")
        return Exchange(self.scheme, request, phone, f"{request.remote}:{port}",
                        unquote(request.raw_path.split("?", 1)[0]), self.clock, detail)

    async def _main(self, exchange: Exchange) -> web.StreamResponse | None:
        """In a worker: the main process's answer to a request only it can answer (else None)."""
        if self.forward is None:
            return None
        try:
            return await self.forward(exchange, (exchange.request.remote or "", _peer_port(exchange.request)))
        except ForwardFailed as exc:
            self.emit(exchange, str(exc), "error")
            return web.Response(status=502, text="the lab's main process did not answer\n",
                                headers={"Server": SERVER_HEADER})

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.handled += 1
        exchange = self._exchange(request)
        request = exchange.request
        if request.method in ("POST", "PUT"):
            cut = await self._read_body(exchange)
            if cut is not None:
                return cut
        if request.method not in ("GET", "HEAD", "POST", "PUT"):
            self.emit(exchange, "405", "method-not-allowed")
            return web.Response(status=405, headers={"Allow": "GET, HEAD, POST, PUT",
                                                     "Server": SERVER_HEADER})
        if self.extras.is_activation(exchange):  # the emulated cloud asks for no lab credentials
            return (await self._main(exchange) or await self._fault(exchange, None)
                    or self.extras.activation(exchange))
        denied = self._authorized(request)
        if denied is not None:
            self.emit(exchange, "401", "unauthorized")
            return denied
        if self.extras.is_report(exchange, self._serves):
            return (await self._main(exchange) or await self._fault(exchange, None)
                    or await self.extras.report(exchange))
        if request.method == "PUT":
            self.emit(exchange, "405 (a served path, or reports are off)", "method-not-allowed")
            return web.Response(status=405, headers={"Allow": "GET, HEAD, POST", "Server": SERVER_HEADER})
        moved = self.config.redirects.get(exchange.path)
        if moved is not None:
            self.emit(exchange, f"{moved.status} -> {moved.to}", "redirect")
            return web.Response(status=moved.status, headers={"Location": moved.to, "Server": SERVER_HEADER})
        route = self.extras.route_for(exchange)
        if route is not None:
            return (await self._main(exchange) or await self._fault(exchange, None)
                    or await self.extras.render(exchange, route))
        try:
            served = self.tree.lookup(exchange.path)
        except ForbiddenPath as exc:
            self.emit(exchange, f"403 {exc}", "forbidden")
            return web.Response(status=403, text=f"forbidden: {exc}\n", headers={"Server": SERVER_HEADER})
        faulty = await self._fault(exchange, served)
        if faulty is not None:
            return faulty
        if served is None:
            self.emit(exchange, "404", "not-found")
            return web.Response(status=404, text="not found\n", headers={"Server": SERVER_HEADER})
        return self._serve(exchange, served)

    def _serves(self, path: str) -> bool:
        """Does this service answer GET `path` (a file, a redirect or a dynamic route)?"""
        if path in self.config.redirects or self.extras.routes.match(path, "GET") is not None:
            return True
        try:
            return self.tree.lookup(path) is not None
        except ForbiddenPath:
            return True

    async def _fault(self, exchange: Exchange, served: ServedFile | None) -> web.StreamResponse | None:
        """The answer the fault rules give this request (an event sent), or None to answer normally."""
        if self.faults is None:
            return None
        request = exchange.request
        fired = self.faults.check(mac=exchange.phone, client=exchange.client,
                                  request=f"{request.method} {exchange.path}", path=exchange.path)
        if not fired:
            return None
        faulty = await self._faulty(request, served, [hit.action for hit in fired])
        if faulty is not None:
            self.emit(exchange, f"{faulty.status} (fault)", "fault")
        return faulty

    async def _read_body(self, exchange: Exchange) -> web.StreamResponse | None:
        """Read a POST or PUT body within the body timeout; None when it came, else the answer sent."""
        timeout = self.config.limits.body_timeout
        try:
            body = await asyncio.wait_for(exchange.request.read(), timeout)
        except TimeoutError:
            self.emit(exchange, f"408 (no body within {timeout:g} s)", "timeout")
            return await close_with(exchange.request, 408)
        except web.RequestPayloadError as exc:
            self.emit(exchange, f"400 {exc}", "malformed")
            return await close_with(exchange.request, 400)
        except web.HTTPRequestEntityTooLarge:
            self.emit(exchange, f"413 (a body over {MAX_BODY} bytes)", "refused")
            return await close_with(exchange.request, 413)
        except ConnectionError as exc:  # the client went away in the middle of its body
            self.emit(exchange, f"- ({type(exc).__name__} while reading the body)", "aborted")
            return web.Response(status=400, headers={"Server": SERVER_HEADER, "Connection": "close"})
        exchange.detail["post_bytes" if exchange.method == "POST" else "put_bytes"] = str(len(body))
        exchange.body = body
        return None

    def encrypts(self, served: ServedFile) -> bool:
        """Whether `served` goes out encrypted (RFC 8188: the plan's per-phone files)."""
        return served.kind in PROFILE_KINDS and self.config.encrypt is not None

    def _serve(self, exchange: Exchange, served: ServedFile) -> web.StreamResponse:
        asked = exchange.request.headers.get("Range")
        if self.encrypts(served):
            response = self._encrypted(served)
        elif served.data is None and served.disk_path is not None:
            whole = f"200 {served.size} bytes"
            self.emit(exchange, f"206 {asked} of {served.size} bytes" if asked else whole, "ok")
            return file_response(served.disk_path, {"Server": SERVER_HEADER})
        else:
            try:
                response = self._memory(served, asked)
            except RangeNotSatisfiable:
                self.emit(exchange, "416", "range-not-satisfiable")
                return web.Response(status=416, headers={"Content-Range": f"bytes */{served.size}",
                                                         "Server": SERVER_HEADER})
        self.emit(exchange, f"{response.status} {response.content_length} bytes", "ok")
        return response

    async def _faulty(self, request: web.Request, served: ServedFile | None,
                      actions: list[HttpFaultAction]) -> web.StreamResponse | None:
        """Misbehave as the fault rules say; None when only a delay applied (serve normally)."""
        for action in actions:
            if action.delay:
                await asyncio.sleep(action.delay)
        for action in actions:
            if action.status is not None:
                return fault_status(action)
        shaping = [a for a in actions if a.slow or a.truncate is not None or a.wrong_length is not None
                   or a.corrupt or a.wrong_key or a.frames]
        if not shaping or served is None:
            return None
        with served.open() as reader:
            body = reader.read_at(0, served.size)
        for action in shaping:
            if action.corrupt:  # flip every 61st byte: the profile no longer parses, the size is right
                body = bytes(b ^ 0x5A if i % 61 == 0 else b for i, b in enumerate(body))
            if action.wrong_key:
                body = openssl_enc.encrypt(body, action.wrong_key)
        cut = next((a.truncate for a in shaping if a.truncate is not None), None)
        framing = framing_of(shaping)
        if framing is not None:  # HTTP/1.0, chunked, or to the close, as the rule says
            headers = (("Server", SERVER_HEADER), ("Content-Type", content_type(served.path)))
            return RawResponse(200, headers, body, framing, cut=cut)
        announced = next((a.wrong_length for a in shaping if a.wrong_length is not None), len(body))
        rate = next((a.slow for a in shaping if a.slow), None)
        return await send_shaped(request, served, body if cut is None else body[:cut], announced, rate)

    def _memory(self, served: ServedFile, range_header: str | None) -> web.Response:
        data = served.data or b""
        headers = {"Server": SERVER_HEADER, "Accept-Ranges": "bytes",
                   "Content-Type": content_type(served.path)}
        span = parse_range(range_header, len(data))
        if span is None:
            return web.Response(body=data, headers=headers)
        first, last = span
        headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
        return web.Response(status=206, body=data[first : last + 1], headers=headers)

    def _encrypted(self, served: ServedFile) -> web.Response:
        enc = self.config.encrypt
        assert enc is not None
        body = aes128gcm.encrypt(served.data or b"", enc.ikm, record_size=enc.record_size, keyid=enc.keyid)
        return web.Response(body=body, headers={"Server": SERVER_HEADER, "Content-Encoding": "aes128gcm",
                                                "Content-Type": content_type(served.path)})


def _digest(config: HttpPlan, secret: bytes | None = None) -> DigestAuth | None:
    auth = config.auth
    if auth is None or auth.scheme != "digest":
        return None
    return DigestAuth(auth.user, auth.password, auth.realm, secret=secret)


def _peer_port(request: web.Request) -> int | str:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return peer[1] if peer else "?"


async def start_http(config: HttpPlan, endpoint: Endpoint, ctx: StartContext, *,
                     ssl_context: ssl.SSLContext | None = None,
                     clock: Callable[[], float] = time.time, link: HttpLink | None = None,
                     forwarding: bool = False, quick: bool = True) -> HttpServer:
    """Serve `ctx.tree` over HTTP (or HTTPS with `ssl_context`) at `endpoint`. `link`: served by
    worker processes (labkit.services.http_forward); `forwarding`: this is one of the workers;
    `quick`: plain GETs of files over HTTP are answered by labkit.services.http_quick."""
    handler = _Handler(config, ctx, clock, link, forwarding=forwarding)
    if ssl_context is not None:
        handler.extras.cloud_tls.install(ssl_context)  # the cloud's names get the cloud's certificate
    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_route("*", "/{tail:.*}", handler.handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    scheme, sink, directory = config.scheme, ctx.bus, ctx.directory

    def refused(peer: Peer, why: str) -> None:
        sink(make_event(scheme, f"{peer[0]}:{peer[1]}", directory.phone_at(peer[0]), "connect", "",
                        f"closed: {why}", "refused", clock))

    def malformed(peer: Peer, what: str) -> None:
        sink(make_event(scheme, f"{peer[0]}:{peer[1]}", directory.phone_at(peer[0]), "malformed", what,
                        "400", "malformed", clock))

    limits = config.limits
    listener = Listener(runner, gate=ConnectionGate(limits.total, limits.per_client_on(endpoint.loopback)),
                        header_timeout=limits.header_timeout, body_timeout=limits.body_timeout,
                        ssl_context=ssl_context, on_refused=refused, on_malformed=malformed,
                        quick=handler.quick.answer if quick and ssl_context is None else None)
    try:
        await listener.start(endpoint.host, endpoint.port, reuse_port=endpoint.reuse_port)
    except BaseException:
        await runner.cleanup()
        raise
    return HttpServer(listener, endpoint, listener.port, handler)
