"""The virtual phone's HTTP(S) client: its own HTTP/1.1 wire, as a phone's is its own.

One request per connection (`Connection: close`); the answer is read by
`labkit.protocols.http_wire.ResponseReader`: HTTP/1.0 or 1.1, by Content-Length, chunked, or to
the close (reference §5: "HTTP/1.0 and 1.1, chunked accepted on 1.1"); framing it cannot trust
is a fetch error saying what was wrong.

Through a proxy (`Fetch.proxy`, from `labkit.phone.proxy.proxy_for`): http:// URLs go in
absolute form to the proxy, https:// ones through a `CONNECT` tunnel. A 407 is answered with
`Proxy-Authorization` (Basic or Digest, as the proxy's challenge asks; RFC 9110 §11.7), never
with `Authorization`, retried at once at most twice (reference §5: "401/407 → immediate retry
with credentials, max 2 retries").

HTTPS: the lab CA; the certificate's names are checked as `labkit.phone.certs` says (the DHCP
domain under SRV, and its address against a DNS lookup of its name), each switched by a Fetch field.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

from labkit.errors import CodecError
from labkit.phone import certs
from labkit.phone.effects import Fetch, FetchResult
from labkit.phone.loss import CURRENT
from labkit.phone.network import NetworkMap
from labkit.protocols.http import digest_authorization
from labkit.protocols.http_wire import MAX_BODY, Response, ResponseReader

Resolve = Callable[[str], Awaitable[tuple[str, tuple[str, ...]]]]  # name -> (rcode, addresses)
TOTAL_TIMEOUT = 30.0
CONNECT_TIMEOUT = 5.0
MAX_PROXY_AUTH_RETRIES = 2  # reference §5
_NOTHING: tuple[str, ...] = ()
T = TypeVar("T")


class FetchError(Exception):
    """A fetch that got no usable answer; the text is the phone's error."""


def credentials(challenge: str, method: str, uri: str, user: str, password: str) -> str:
    """Basic or Digest, as the challenge (WWW- or Proxy-Authenticate) asks; Basic without one."""
    if challenge.lower().startswith("digest"):
        return digest_authorization(challenge, method, uri, user, password)
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def request_bytes(method: str, target: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in headers)]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class _Route:
    """Where the bytes go: the server itself, or a proxy (and the tunnel's authority for https)."""

    endpoint: tuple[str, int]  # the real (possibly loopback-mapped) address to connect to
    proxy: str | None = None  # "host:port" as the phone knows the proxy
    authority: str = ""  # host:port of the origin (CONNECT target, Host header)


async def read_answer(reader: asyncio.StreamReader, method: str, max_body: int = MAX_BODY) -> Response:
    parser = ResponseReader(method, max_body=max_body)
    while not parser.done:
        data = await reader.read(65536)
        if not data:
            parser.eof()
            break
        parser.feed(data)
    return parser.response()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError, ConnectionError):
        await writer.wait_closed()


class _Exchange(asyncio.Protocol):
    """One answer read from one connection as `read_answer` reads it: fed to a `ResponseReader`
    until it is complete or the server closes; a reset or bad framing is the answer's error."""

    def __init__(self, method: str, answer: asyncio.Future[Response]) -> None:
        self.parser = ResponseReader(method, max_body=MAX_BODY)
        self.answer = answer
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def finish(self) -> None:
        """Close the connection (if it came), and drop an answer nobody will take: connecting
        failed or was cancelled (SIGTERM), or the phone was cancelled as the answer came (no
        'Future exception was never retrieved')."""
        if self.transport is not None:
            self.transport.close()
        if not self.answer.done():
            self.answer.cancel()
        elif not self.answer.cancelled():
            self.answer.exception()  # marks it retrieved

    def data_received(self, data: bytes) -> None:
        if self.answer.done():
            return
        try:
            self.parser.feed(data)
            if self.parser.done:
                self.answer.set_result(self.parser.response())
        except CodecError as exc:
            self.answer.set_exception(exc)

    def eof_received(self) -> bool:
        self._closed(None)
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed(exc)

    def _closed(self, exc: Exception | None) -> None:
        if self.answer.done():
            return
        if exc is not None:
            self.answer.set_exception(exc)
            return
        try:
            self.parser.eof()
            self.answer.set_result(self.parser.response())
        except CodecError as error:
            self.answer.set_exception(error)


class HttpClient:
    """HTTP(S) as the phone does it: its User-Agent, the lab CA, Basic or Digest on request."""

    def __init__(self, network: NetworkMap, ca_file: str | None, local_ip: str | None = None) -> None:
        self.network = network
        self.local_ip = local_ip
        self.ssl = ssl.create_default_context(cafile=ca_file)
        self.ssl_any_name = ssl.create_default_context(cafile=ca_file)
        self.ssl_any_name.check_hostname = False  # still verified against the CA; names by certs.py
        self.challenges: dict[str, str] = {}  # origin host -> the last WWW-Authenticate seen
        self.proxy_challenges: dict[str, str] = {}  # proxy host:port -> the last Proxy-Authenticate

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None

    async def fetch(self, effect: Fetch, address: str, resolve: Resolve | None = None) -> FetchResult:
        """`address`: what the URL's host resolved to in the lab; `resolve` looks names up with
        the phone's DNS (the proxy's name, the certificate's name)."""
        scheme = urlsplit(effect.url).scheme.lower()
        loss = CURRENT.get()
        if loss is not None:  # TCP recovers a lost segment itself, after its retransmission timeout
            await asyncio.sleep(loss.tcp_delay())
        try:
            async with asyncio.timeout(TOTAL_TIMEOUT):
                return await self._fetch(effect, address, resolve)
        except FetchError as exc:
            return FetchResult(None, error=str(exc))
        except ssl.SSLCertVerificationError as exc:
            return FetchResult(None, error=f"TLS: {exc.verify_message or exc}")
        except ssl.SSLError as exc:
            return FetchResult(None, error=f"TLS: {exc.reason or exc}")
        except CodecError as exc:
            return FetchResult(None, error=f"{scheme.upper()}: malformed response: {exc}")
        except TimeoutError:
            return FetchResult(None, error=f"{scheme.upper()}: no complete answer in {TOTAL_TIMEOUT:g} s")
        except OSError as exc:
            return FetchResult(None, error=f"{scheme.upper()}: {type(exc).__name__}: {exc.strerror or exc}")

    async def _route(self, effect: Fetch, address: str, resolve: Resolve | None) -> _Route:
        parts = urlsplit(effect.url)
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        authority = f"{parts.hostname}:{port}"
        if not effect.proxy:
            return _Route(self.network.endpoint(address, port), authority=authority)
        proxy = urlsplit(effect.proxy if "://" in effect.proxy else f"http://{effect.proxy}")
        host, proxy_port = proxy.hostname or "", proxy.port or 3128
        proxy_address = host
        if not certs.is_address(host):
            if resolve is None:
                raise FetchError(f"HTTP: proxy {host}: no resolver")
            rcode, found = await resolve(host)
            if not found:
                raise FetchError(f"HTTP: proxy {host} does not resolve ({rcode})")
            proxy_address = found[0]
        return _Route(self.network.endpoint(proxy_address, proxy_port), f"{host}:{proxy_port}", authority)

    async def _fetch(self, effect: Fetch, address: str, resolve: Resolve | None) -> FetchResult:
        route = await self._route(effect, address, resolve)
        tries = 0
        while True:
            result = await self._once(effect, route, address, resolve)
            if result.status != 407 or route.proxy is None or effect.proxy_uid is None \
                    or tries >= MAX_PROXY_AUTH_RETRIES:
                return result
            tries += 1  # answer the proxy's challenge at once, on a new connection

    def _proxy_authorization(self, effect: Fetch, route: _Route, method: str,
                             uri: str) -> list[tuple[str, str]]:
        assert route.proxy is not None
        challenge = self.proxy_challenges.get(route.proxy)
        if challenge is None or effect.proxy_uid is None or effect.proxy_pwd is None:
            return []
        answer = credentials(challenge, method, uri, effect.proxy_uid, effect.proxy_pwd)
        return [("Proxy-Authorization", answer)]

    def _remember(self, response: Response, route: _Route, origin: str) -> None:
        if response.status == 407:  # by the proxy's name, or the server's when none was configured
            self.proxy_challenges[route.proxy or origin] = response.header("Proxy-Authenticate") or ""
        elif response.status == 401:
            self.challenges[origin] = response.header("WWW-Authenticate") or ""

    async def _once(self, effect: Fetch, route: _Route, address: str, resolve: Resolve | None) -> FetchResult:
        parts = urlsplit(effect.url)
        https = parts.scheme.lower() == "https"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        names: tuple[str, ...] = ()
        if https or route.proxy is not None:
            answer = await self._streamed(effect, route, address, resolve)
            if isinstance(answer, FetchResult):
                return answer
            response, names = answer
        else:
            response = await self._plain(effect, route, path)
        self._remember(response, route, parts.netloc)
        headers = {k: v for k, v in response.headers}
        return FetchResult(response.status, response.body, headers, tls_names=names)

    async def _connect(self, route: _Route, connect: Callable[[], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                return await connect()
        except TimeoutError:
            raise FetchError(f"{self._who(route)}: no connection in {CONNECT_TIMEOUT:g} s") from None
        except OSError as exc:
            raise FetchError(f"{self._who(route)}: {type(exc).__name__}: {exc.strerror or exc}") from None

    async def _plain(self, effect: Fetch, route: _Route, path: str) -> Response:
        """http:// straight to the server: the same request and reading as `_streamed`, on a
        protocol instead of a stream pair (a phone's three fetches are most of its CPU here)."""
        loop = asyncio.get_running_loop()
        exchange = _Exchange(effect.method, loop.create_future())
        local = (self.local_ip, 0) if self.local_ip else None
        try:
            transport, _ = await self._connect(
                route, lambda: loop.create_connection(lambda: exchange, *route.endpoint, local_addr=local))
        except BaseException:  # no connection in time, or the phone stopped (SIGTERM) meanwhile
            exchange.finish()
            raise
        try:
            headers = self._headers(effect, route, path)
            transport.write(request_bytes(effect.method, path, headers, effect.body))
            return await exchange.answer
        finally:
            exchange.finish()

    async def _streamed(self, effect: Fetch, route: _Route, address: str,
                        resolve: Resolve | None) -> FetchResult | tuple[Response, tuple[str, ...]]:
        """https://, or through a proxy: on a stream pair (CONNECT, then TLS on the same socket)."""
        parts = urlsplit(effect.url)
        https = parts.scheme.lower() == "https"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        local = (self.local_ip, 0) if self.local_ip else None
        reader, writer = await self._connect(
            route, lambda: asyncio.open_connection(*route.endpoint, local_addr=local))
        try:
            if https and route.proxy is not None:
                refused = await self._tunnel(effect, route, reader, writer)
                if refused is not None:
                    return refused
            names: tuple[str, ...] = ()
            if https:
                names = await self._start_tls(effect, writer, parts.hostname or "", address, route, resolve)
            target = effect.url if route.proxy is not None and not https else path
            request = request_bytes(effect.method, target, self._headers(effect, route, target), effect.body)
            writer.write(request)
            await writer.drain()
            return await read_answer(reader, effect.method), names
        finally:
            await _close(writer)

    def _who(self, route: _Route) -> str:
        return f"HTTP: proxy {route.proxy}" if route.proxy else "HTTP"

    def _headers(self, effect: Fetch, route: _Route, target: str) -> list[tuple[str, str]]:
        parts = urlsplit(effect.url)
        headers = [("Host", parts.netloc), ("User-Agent", effect.user_agent), ("Accept", "*/*"),
                   ("Connection", "close"), *effect.headers]
        if effect.uid is not None and effect.pwd is not None:
            # a 407 from the server's own address (an intercepting proxy the phone was not told
            # about) is answered with Proxy-Authorization too, never Authorization (RFC 9110 §11.7)
            intercepted = route.proxy is None and parts.netloc in self.proxy_challenges \
                and parts.netloc not in self.challenges
            challenge = (self.proxy_challenges if intercepted else self.challenges).get(parts.netloc, "")
            header = "Proxy-Authorization" if intercepted else "Authorization"
            headers.append((header, credentials(challenge, effect.method, target, effect.uid, effect.pwd)))
        if route.proxy is not None and parts.scheme.lower() == "http":
            headers += self._proxy_authorization(effect, route, effect.method, target)
        return headers

    async def _tunnel(self, effect: Fetch, route: _Route, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> FetchResult | None:
        """CONNECT through the proxy; None once the tunnel is up, else the proxy's answer."""
        headers = [("Host", route.authority), ("User-Agent", effect.user_agent),
                   *self._proxy_authorization(effect, route, "CONNECT", route.authority)]
        writer.write(request_bytes("CONNECT", route.authority, headers))
        await writer.drain()
        try:
            answer = await read_answer(reader, "CONNECT")
        except CodecError as exc:
            raise FetchError(f"HTTP: proxy {route.proxy}: CONNECT {route.authority}: {exc}") from None
        if 200 <= answer.status < 300:
            return None
        self._remember(answer, route, "")
        return FetchResult(answer.status, answer.body, {k: v for k, v in answer.headers})

    async def _start_tls(self, effect: Fetch, writer: asyncio.StreamWriter, host: str, address: str,
                         route: _Route, resolve: Resolve | None) -> tuple[str, ...]:
        context = self.ssl_any_name if effect.cert_domain else self.ssl
        await writer.start_tls(context, server_hostname=host)
        cert = writer.get_extra_info("peercert") or {}
        names = certs.certificate_names(cert)
        if effect.cert_domain:
            problem = certs.domain_problem(names, effect.cert_domain)
            if problem is not None:
                raise FetchError(problem)
        if effect.check_cert_address and route.proxy is None:  # through a tunnel the phone knows no
            name = certs.lookup_name(names)  # server address to compare with [I]
            rcode, found = "", _NOTHING
            if name is not None and not certs.is_address(name) and resolve is not None:
                rcode, found = await resolve(name)
            problem = certs.address_problem(name, found, address, rcode)
            if problem is not None:
                raise FetchError(problem)
        return names
