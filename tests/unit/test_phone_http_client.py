"""The phone's HTTP client against raw loopback servers: framings, proxies and certificate names."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from labkit.phone.effects import Fetch, FetchResult
from labkit.phone.http_client import HttpClient
from labkit.phone.network import NetworkMap
from labkit.protocols.http import DigestAuth
from labkit.protocols.http_wire import Framing, encode_response, parse_request_head
from labkit.tls import ensure_server_certificate, server_ssl_context

Handler = Callable[[bytes, bytes], Awaitable[bytes]]  # (request head, body) -> raw answer
UA = "Cisco-CP-8851-3PCC/12.0.1 (00562b000001)"


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    parsed = parse_request_head(head[:-4])
    length = int(parsed.header("Content-Length") or 0)
    return head[:-4], await reader.readexactly(length) if length else b""


async def _serve(handler: Handler, **kw: object) -> asyncio.Server:
    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head, body = await _read_request(reader)
            writer.write(await handler(head, body))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client gave up (a refused certificate)
        finally:
            writer.close()

    return await asyncio.start_server(one, "127.0.0.1", 0, **kw)  # type: ignore[arg-type]


def _port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


def _run_with(handler: Handler, url: str = "http://prov.lab.example/a.xml", **fields: object) -> FetchResult:
    async def go() -> FetchResult:
        server = await _serve(handler)
        try:
            network = NetworkMap(frozenset({"10.42.0.1"}), "127.0.0.1", _port(server) - 80)
            return await HttpClient(network, None).fetch(Fetch(url, user_agent=UA, **fields),  # type: ignore[arg-type]
                                                          "10.42.0.1")
        finally:
            server.close()

    return asyncio.run(go())


def _answer(raw: bytes) -> Handler:
    async def handler(head: bytes, body: bytes) -> bytes:
        return raw
    return handler


@pytest.mark.parametrize("framing", [Framing("1.0"), Framing("1.0", length=False), Framing("1.1"),
                                     Framing("1.1", chunked=True, chunk_size=7, extensions=(("a", "b c"),),
                                             trailers=(("X-Check", "1"),)),
                                     Framing("1.1", length=False)])
def test_each_framing_gives_the_body(framing: Framing) -> None:
    body = b"<flat-profile><Profile_Rule/></flat-profile>" * 50
    result = _run_with(_answer(encode_response(200, (("Server", "t"),), body, framing)))
    assert result.status == 200 and result.body == body


@pytest.mark.parametrize("raw, error", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nshort", "HTTP: malformed response: connection closed 94"),
    (b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     "HTTP: malformed response: Transfer-Encoding in an HTTP/1.0 response"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nnothex\r\n", "malformed chunk-size line"),
    (b"", "HTTP: malformed response: connection closed without a response"),
])
def test_bad_framing_is_a_clear_fetch_error(raw: bytes, error: str) -> None:
    result = _run_with(_answer(raw))
    assert result.status is None and result.error is not None and error in result.error


def test_request_is_origin_form_with_the_phone_headers() -> None:
    seen: list[bytes] = []

    async def handler(head: bytes, body: bytes) -> bytes:
        seen.append(head + b"|" + body)
        return encode_response(200, (), b"ok")

    result = _run_with(handler, "http://prov.lab.example/x.cfg?mac=1", method="PUT", body=b"report")
    assert result.status == 200
    head = parse_request_head(seen[0].split(b"|")[0])
    assert (head.method, head.target) == ("PUT", "/x.cfg?mac=1")
    assert head.header("User-Agent") == UA and head.header("Host") == "prov.lab.example"
    assert seen[0].endswith(b"|report") and head.header("Proxy-Authorization") is None


# -- proxies --------------------------------------------------------------------------------------


class FakeProxy:
    """A forward proxy in a test: 407 until Proxy-Authorization is right, then relays to `origin`."""

    def __init__(self, origin: int, scheme: str = "basic") -> None:
        self.origin, self.scheme = origin, scheme
        self.digest = DigestAuth("pu", "pp", "proxy")
        self.heads: list[str] = []

    def _ok(self, method: str, header: str | None) -> bool:
        if self.scheme == "digest":
            return self.digest.check(header, method, 0)[0]
        return header == "Basic " + base64.b64encode(b"pu:pp").decode()

    def _challenge(self) -> str:
        return self.digest.challenge(0) if self.scheme == "digest" else 'Basic realm="proxy"'

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head, body = await _read_request(reader)
            request = parse_request_head(head)
            self.heads.append(head.decode())
            if not self._ok(request.method, request.header("Proxy-Authorization")):
                writer.write(encode_response(407, (("Proxy-Authenticate", self._challenge()),), b"auth"))
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.origin)
            if request.method == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
                return
            up_writer.write(head.replace(request.target.encode(), b"/relayed", 1) + b"\r\n\r\n" + body)
            writer.write(await up_reader.read())
            up_writer.close()
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()


def _through_proxy(url: str, scheme: str, *, ssl_origin: object = None, ca: str | None = None,
                   **fields: object) -> tuple[FetchResult, FakeProxy]:
    async def go() -> tuple[FetchResult, FakeProxy]:
        origin = await _serve(_answer(encode_response(200, (), b"profile")), ssl=ssl_origin)
        proxy = FakeProxy(_port(origin), scheme)
        front = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
        try:
            network = NetworkMap(frozenset({"10.42.0.7"}), "127.0.0.1", _port(front) - 3128)

            async def resolve(name: str) -> tuple[str, tuple[str, ...]]:
                return ("NOERROR", ("10.42.0.7",)) if name == "proxy.lab.example" else ("NXDOMAIN", ())

            fetch = Fetch(url, user_agent=UA, proxy="http://proxy.lab.example:3128", **fields)  # type: ignore[arg-type]
            result = await HttpClient(network, ca).fetch(fetch, "10.42.0.1", resolve)
            return result, proxy
        finally:
            origin.close()
            front.close()

    return asyncio.run(go())


@pytest.mark.parametrize("scheme", ["basic", "digest"])
def test_407_answered_with_proxy_authorization(scheme: str) -> None:
    result, proxy = _through_proxy("http://prov.lab.example/a.xml", scheme, proxy_uid="pu", proxy_pwd="pp")
    assert result.status == 200 and result.body == b"profile"
    first, second = proxy.heads[:2]
    assert first.startswith("GET http://prov.lab.example/a.xml HTTP/1.1")  # absolute form
    assert "Proxy-Authorization" not in first and "Proxy-Authorization: " + scheme.capitalize() in second
    assert "\r\nAuthorization" not in second  # never the origin's header


def test_407_without_credentials_stays_407() -> None:
    result, proxy = _through_proxy("http://prov.lab.example/a.xml", "basic")
    assert result.status == 407 and len(proxy.heads) == 1


def test_407_with_wrong_credentials_retried_twice() -> None:
    result, proxy = _through_proxy("http://prov.lab.example/a.xml", "basic", proxy_uid="pu", proxy_pwd="no")
    assert result.status == 407 and len(proxy.heads) == 3  # the first, then two answers


def _lab_tls(tmp_path: Path, names: list[str]) -> tuple[object, str]:
    creds = ensure_server_certificate(tmp_path, "t", names, ["127.0.0.1"])
    assert creds.ca_path is not None
    return server_ssl_context(creds), str(creds.ca_path)


@pytest.mark.parametrize("scheme", ["basic", "digest"])
def test_https_through_connect(tmp_path: Path, scheme: str) -> None:
    context, ca = _lab_tls(tmp_path, ["prov.lab.example", "lab.example"])
    result, proxy = _through_proxy("https://prov.lab.example/a.xml", scheme, ssl_origin=context, ca=ca,
                                   proxy_uid="pu", proxy_pwd="pp", check_cert_address=True)
    assert result.status == 200 and result.body == b"profile", result.error
    assert proxy.heads[0].startswith("CONNECT prov.lab.example:443 HTTP/1.1")
    assert "Proxy-Authorization" in proxy.heads[1]
    assert result.tls_names[0] == "prov.lab.example"


# -- certificate names ------------------------------------------------------------------------------


def _https(tmp_path: Path, names: list[str], resolve: object = None, **fields: object) -> FetchResult:
    context, ca = _lab_tls(tmp_path, names)

    async def go() -> FetchResult:
        server = await _serve(_answer(encode_response(200, (), b"secure")), ssl=context)
        try:
            network = NetworkMap(frozenset({"10.42.0.1"}), "127.0.0.1", _port(server) - 443)
            fetch = Fetch("https://prov.lab.example/a.xml", user_agent=UA, **fields)  # type: ignore[arg-type]
            return await HttpClient(network, ca).fetch(fetch, "10.42.0.1", resolve)  # type: ignore[arg-type]
        finally:
            server.close()

    return asyncio.run(go())


async def _lab_dns(name: str) -> tuple[str, tuple[str, ...]]:
    table = {"prov.lab.example": ("10.42.0.1",), "other.lab.example": ("10.42.0.99",)}
    return ("NOERROR", table[name]) if name in table else ("NXDOMAIN", ())


def test_cert_domain_must_be_named(tmp_path: Path) -> None:
    ok = _https(tmp_path, ["prov.lab.example", "lab.example"], cert_domain="lab.example")
    assert ok.status == 200
    wrong = _https(tmp_path / "w", ["prov.lab.example", "corp.example"], cert_domain="lab.example")
    assert wrong.status is None
    assert wrong.error == ("TLS: certificate names prov.lab.example, corp.example, not the DHCP domain "
                           "lab.example (SRV provisioning)")


def test_cert_domain_wildcard(tmp_path: Path) -> None:
    # one label for the star, and never right under a top-level label (RFC 6125 §6.4.3, §7.2)
    star = ["prov.lab.example", "*.lab.example"]
    assert _https(tmp_path, star, cert_domain="site.lab.example").status == 200
    assert _https(tmp_path / "b", star, cert_domain="lab.example").status is None
    assert _https(tmp_path / "c", ["prov.lab.example", "*.example"], cert_domain="lab.example").status is None


def test_cert_address_checked_against_dns(tmp_path: Path) -> None:
    ok = _https(tmp_path, ["prov.lab.example"], _lab_dns, check_cert_address=True)
    assert ok.status == 200
    bad = _https(tmp_path / "o", ["other.lab.example", "prov.lab.example"], _lab_dns, check_cert_address=True)
    assert bad.error == "TLS: certificate name other.lab.example resolves to 10.42.0.99, not 10.42.0.1"
    off = _https(tmp_path / "f", ["other.lab.example", "prov.lab.example"], _lab_dns)
    assert off.status == 200  # the switch is off


def test_hostname_still_verified_without_cert_domain(tmp_path: Path) -> None:
    result = _https(tmp_path, ["elsewhere.example"])
    assert result.status is None and result.error is not None and result.error.startswith("TLS: ")


def test_407_from_the_server_itself_is_answered_with_proxy_authorization() -> None:
    """An intercepting proxy the phone was not told about: its credentials go in Proxy-Authorization."""
    heads: list[bytes] = []

    async def handler(head: bytes, body: bytes) -> bytes:
        heads.append(head)
        if b"Proxy-Authorization: Basic " + base64.b64encode(b"u:p") in head:
            return encode_response(200, (), b"ok")
        return encode_response(407, (("Proxy-Authenticate", 'Basic realm="in the way"'),), b"")

    async def go() -> list[FetchResult]:
        server = await _serve(handler)
        try:
            client = HttpClient(NetworkMap(frozenset({"10.42.0.1"}), "127.0.0.1", _port(server) - 80), None)
            first = await client.fetch(Fetch("http://prov.lab.example/a.xml", user_agent=UA), "10.42.0.1")
            again = Fetch("http://prov.lab.example/a.xml", uid="u", pwd="p", user_agent=UA)
            return [first, await client.fetch(again, "10.42.0.1")]
        finally:
            server.close()

    first, second = asyncio.run(go())
    assert (first.status, second.status) == (407, 200)
    assert b"\r\nAuthorization:" not in heads[1]


def test_refused_connection_is_a_fetch_error() -> None:
    """Plain http:// (the protocol path): nothing listens there."""
    async def go() -> FetchResult:
        spare = await _serve(_answer(b""))
        port = _port(spare)
        spare.close()
        await spare.wait_closed()
        network = NetworkMap(frozenset({"10.42.0.1"}), "127.0.0.1", port - 80)
        return await HttpClient(network, None).fetch(Fetch("http://prov.lab.example/a.xml", user_agent=UA),
                                                      "10.42.0.1")

    result = asyncio.run(go())
    assert result.status is None and result.error is not None
    assert result.error.startswith("HTTP: ConnectionRefusedError: ")  # as open_connection said it


def test_reset_in_the_body_is_a_fetch_error() -> None:
    """The server resets the connection inside a Content-Length body (SO_LINGER 0)."""
    async def go() -> FetchResult:
        async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\npart")
            await writer.drain()
            await asyncio.sleep(0.05)
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()

        server = await asyncio.start_server(one, "127.0.0.1", 0)
        try:
            network = NetworkMap(frozenset({"10.42.0.1"}), "127.0.0.1", _port(server) - 80)
            fetch = Fetch("http://prov.lab.example/a.xml", user_agent=UA)
            return await HttpClient(network, None).fetch(fetch, "10.42.0.1")
        finally:
            server.close()

    result = asyncio.run(go())
    assert result.status is None and result.error is not None
    assert result.error.startswith("HTTP: ")  # a reset (ConnectionResetError), or the short body


def test_a_cancelled_fetch_closes_its_connection() -> None:
    """The phone stopped (SIGTERM cancels its task) while waiting for an answer: the server
    sees the connection closed, and the cancellation goes through."""
    async def go() -> tuple[bytes, bool]:
        asked, closed = asyncio.Event(), asyncio.get_running_loop().create_future()

        async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await _read_request(reader)
            asked.set()
            closed.set_result(await reader.read())  # b"" at the client's close
            writer.close()

        server = await asyncio.start_server(one, "127.0.0.1", 0)
        try:
            network = NetworkMap(frozenset({"10.42.0.1"}), "127.0.0.1", _port(server) - 80)
            fetch = Fetch("http://prov.lab.example/a.xml", user_agent=UA)
            task = asyncio.create_task(HttpClient(network, None).fetch(fetch, "10.42.0.1"))
            await asyncio.wait_for(asked.wait(), 30)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return await asyncio.wait_for(closed, 30), task.cancelled()
        finally:
            server.close()

    rest, cancelled = asyncio.run(go())
    assert rest == b"" and cancelled
