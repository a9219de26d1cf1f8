"""A forward HTTP proxy for the lab: the proxy of a phone's "HTTP Proxy Settings".

Requests come in absolute form (`GET http://prov.lab.example/x.cfg HTTP/1.1`) or as `CONNECT
host:443` for https://. As its plan's `mode` says, the proxy passes them on, demands credentials
first (407 with `Proxy-Authenticate`, Basic or Digest; RFC 9110 §11.7), or fails (502, or the
connection closed at once), so proxy trouble seen in the field can be reproduced. It resolves the
lab's names from the lab zone and forwards only to the kit's own addresses (on loopback, to the
loopback ports where the lab listens). One request per connection (a tunnel lasts until either
side closes or goes idle for the plan's timeout); connections are bounded; one event per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from labkit.errors import CodecError
from labkit.events import make_event
from labkit.plan.proxy import ProxyPlan
from labkit.protocols.http import DigestAuth, basic_challenge, check_basic, parse_user_agent
from labkit.protocols.http_wire import MAX_HEAD, RequestHead, encode_response, parse_request_head
from labkit.services.context import Endpoint, StartContext

MAX_BODY = 4 * 1024 * 1024  # a request body the proxy relays (a report, a --post resync)
HOP_BY_HOP = {"proxy-authorization", "proxy-connection", "connection", "keep-alive", "te", "upgrade"}


class Refused(Exception):
    """A request the proxy answers itself: (status, what the event says)."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status, self.why = status, why


@dataclass
class ProxyServer:
    config: ProxyPlan
    endpoint: Endpoint
    ctx: StartContext
    clock: Callable[[], float] = time.time
    server: asyncio.Server | None = None
    open: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    digest: DigestAuth | None = None

    @property
    def port(self) -> int:
        assert self.server is not None and self.server.sockets
        return int(self.server.sockets[0].getsockname()[1])

    def reload(self, config: ProxyPlan, ctx: StartContext) -> None:
        """New mode, credentials and names from now on; the listening port stays."""
        def who(plan: ProxyPlan) -> tuple[str, ...]:
            return plan.mode, plan.scheme, plan.user, plan.password, plan.realm

        if who(config) != who(self.config):
            self.digest = _digest(config)  # nonces given stay valid while the credentials stay
        self.config, self.ctx = config, ctx

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self.server.wait_closed()

    # -- one connection ------------------------------------------------------------------------------
    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        peer = writer.get_extra_info("peername") or ("?", 0)
        client = f"{peer[0]}:{peer[1]}"
        if self.open >= self.config.connections:
            writer.transport.abort()
            self._event(client, None, "connect", "", f"closed: {self.config.connections} connections open",
                        "refused")
            return
        self.open += 1
        if task is not None:
            self.tasks.add(task)
        try:
            await self._serve(reader, writer, client, str(peer[0]))
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, OSError):
            pass  # the client or the upstream went away; the event (if any) was sent
        finally:
            self.open -= 1
            if task is not None:
                self.tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: str,
                     address: str) -> None:
        try:
            async with asyncio.timeout(self.config.timeout):
                block = await reader.readuntil(b"\r\n\r\n")
            head = parse_request_head(block[:-4])
        except (asyncio.LimitOverrunError, CodecError, ValueError) as exc:
            self._event(client, None, "malformed", "", f"400 {exc}", "malformed")
            writer.write(encode_response(400, (), b"bad request\n"))
            return
        phone = self._phone(head, address)
        try:
            await self._handle(head, reader, writer, client, phone)
        except Refused as refused:
            self._event(client, phone, head.method.lower(), head.target, f"{refused.status} {refused.why}",
                        "unauthorized" if refused.status == 407 else "error")
            headers: tuple[tuple[str, str], ...] = (("Server", "labkit-proxy"),)
            if refused.status == 407:
                headers += (("Proxy-Authenticate", self._challenge()),)
            writer.write(encode_response(refused.status, headers, f"{refused.why}\n".encode()))

    async def _handle(self, head: RequestHead, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      client: str, phone: str | None) -> None:
        config = self.config
        if config.mode == "fail":
            self._event(client, phone, head.method.lower(), head.target,
                        "502 (mode fail)" if config.failure == "502" else "closed (mode fail)", "fault")
            if config.failure == "502":
                writer.write(encode_response(502, (("Server", "labkit-proxy"),), b"proxy failure\n"))
            else:
                writer.transport.abort()
            return
        if config.mode == "auth" and not self._authorized(head):
            given = "refused" if head.header("Proxy-Authorization") else "asked"
            raise Refused(407, f"proxy credentials {given}")
        if head.method == "CONNECT":
            await self._tunnel(head, reader, writer, client, phone)
        else:
            await self._forward(head, reader, writer, client, phone)

    def _authorized(self, head: RequestHead) -> bool:
        header = head.header("Proxy-Authorization")
        if self.digest is not None:
            return self.digest.check(header, head.method, self.clock())[0]
        return check_basic(header, self.config.user, self.config.password)

    def _challenge(self) -> str:
        if self.digest is not None:
            return self.digest.challenge(self.clock())
        return basic_challenge(self.config.realm)

    def _upstream(self, host: str, port: int) -> tuple[str, int]:
        """Where to connect for host:port: a lab address only (mapped to loopback when the lab is)."""
        name = host.rstrip(".").lower()
        address = name if _is_ip(name) else self.config.hosts.get(name)
        if address is None:
            raise Refused(502, f"{host} is not a lab name")
        if address not in self.config.kit_addresses:
            raise Refused(502, f"{host} ({address}) is not a lab address")
        if self.endpoint.loopback:
            return self.endpoint.host, port + (self.endpoint.port - self.config.port)
        return address, port

    async def _tunnel(self, head: RequestHead, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      client: str, phone: str | None) -> None:
        host, _, port_text = head.target.rpartition(":")
        if not host or not port_text.isdigit():
            raise Refused(400, f"CONNECT needs host:port, not {head.target!r}")
        where = self._upstream(host.strip("[]"), int(port_text))
        up_reader, up_writer = await self._connect(where)
        self._event(client, phone, "connect", head.target, f"200 tunnel to {where[0]}:{where[1]}", "ok")
        writer.write(b"HTTP/1.1 200 Connection established\r\nServer: labkit-proxy\r\n\r\n")
        await self._relay(reader, writer, up_reader, up_writer)

    async def _forward(self, head: RequestHead, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       client: str, phone: str | None) -> None:
        parts = urlsplit(head.target)
        if parts.scheme.lower() != "http" or not parts.hostname:
            raise Refused(400, f"not a proxy request: {head.target[:80]}")
        length = head.header("Content-Length") or "0"
        if not length.isdigit() or int(length) > MAX_BODY or head.header("Transfer-Encoding"):
            raise Refused(400, "request body not relayed (Content-Length up to 4 MiB only)")
        body = await reader.readexactly(int(length)) if int(length) else b""
        where = self._upstream(parts.hostname, parts.port or 80)
        up_reader, up_writer = await self._connect(where)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"{head.method} {path} HTTP/1.1",
                 *(f"{k}: {v}" for k, v in head.headers if k.lower() not in HOP_BY_HOP),
                 "Connection: close"]
        up_writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        first = await asyncio.wait_for(up_reader.read(65536), self.config.timeout)
        status = first.split(b"\r\n", 1)[0].decode("latin-1", "replace")
        self._event(client, phone, head.method.lower(), head.target, f"{status} via {where[0]}:{where[1]}",
                    "ok" if first else "error")
        writer.write(first)
        await self._relay(reader, writer, up_reader, up_writer, upstream_only=True)

    async def _connect(self, where: tuple[str, int]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            async with asyncio.timeout(min(self.config.timeout, 10.0)):
                return await asyncio.open_connection(*where)
        except (OSError, TimeoutError) as exc:
            raise Refused(502, f"upstream {where[0]}:{where[1]}: {type(exc).__name__}") from None

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter, *,
                     upstream_only: bool = False) -> None:
        """Copy bytes both ways (or upstream to client only) until a side closes or goes idle."""
        pipes = [_pipe(up_reader, writer, self.config.timeout)]
        if not upstream_only:
            pipes.append(_pipe(reader, up_writer, self.config.timeout))
        try:
            await asyncio.gather(*pipes)
        finally:
            up_writer.close()

    def _phone(self, head: RequestHead, address: str) -> str | None:
        agent = parse_user_agent(head.header("User-Agent"))
        if agent is not None and agent.mac in self.ctx.known_macs:
            return agent.mac
        return self.ctx.directory.phone_at(address)

    def _event(self, client: str, phone: str | None, action: str, request: str, answer: str,
               result: str) -> None:
        self.ctx.bus(make_event("proxy", client, phone, action, request, answer, result, self.clock,
                                mode=self.config.mode))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, idle: float) -> None:
    try:
        while True:
            data = await asyncio.wait_for(reader.read(65536), idle)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, TimeoutError, OSError):
        pass  # one side closed, reset or stayed idle past the bound: the tunnel ends either way
    with contextlib.suppress(OSError, RuntimeError):
        if writer.can_write_eof():
            writer.write_eof()


def _is_ip(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)


def _digest(config: ProxyPlan) -> DigestAuth | None:
    if config.mode != "auth" or config.scheme != "digest":
        return None
    return DigestAuth(config.user, config.password, config.realm)


async def start_proxy(config: ProxyPlan, endpoint: Endpoint, ctx: StartContext, *,
                      clock: Callable[[], float] = time.time) -> ProxyServer:
    proxy = ProxyServer(config, endpoint, ctx, clock, digest=_digest(config))
    proxy.server = await asyncio.start_server(proxy.accept, endpoint.host, endpoint.port, limit=MAX_HEAD,
                                              reuse_address=True, reuse_port=endpoint.reuse_port or None)
    return proxy
