"""HTTP served by worker processes (`labkit up --workers N`): what a worker does not answer itself.

The workers share the HTTP port (SO_REUSEPORT) and serve files, redirects and the fault rules on
them. An emulated-cloud activation, a Report_Rule upload and a dynamic route need the main
process (its DHCP leases, its one report store), so a worker forwards such a request, body and
all, to the main process's own HTTP service. That one listens on a private loopback port and
takes the client's address from `X-Labkit-Forwarded: TOKEN ADDRESS PORT` when the token is the
lab's (a random one per start), so the main process names the phone, applies the fault rules,
answers and logs the event exactly as without workers. The workers and the main process also
share the Digest secret, so a nonce one of them gave is good at any of them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from aiohttp import ClientError, ClientSession, ClientTimeout, TCPConnector, web
from multidict import CIMultiDict

from labkit.services.http_send import Exchange

FORWARD_HEADER = "X-Labkit-Forwarded"
FORWARD_TIMEOUT = 60.0  # s for the main process's whole answer (a dynamic route has 10)
# hop-by-hop headers (RFC 9110 §7.6.1) and the framing, which each hop sets for itself
_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
                  "upgrade", "content-length", FORWARD_HEADER.lower()})

_OWN = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")  # the client's, never aiohttp's


@dataclass(frozen=True)
class HttpLink:
    """What the main process and its HTTP workers share (picklable: it travels to the workers)."""

    port: int = 0  # the main process's private HTTP port on 127.0.0.1 (0 until it listens)
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    digest_secret: bytes = field(default_factory=lambda: secrets.token_bytes(16))


def forwarded_peer(request: web.Request, link: HttpLink) -> tuple[str, int] | None:
    """The client a worker forwarded this request for, when the header carries the lab's token."""
    value = request.headers.get(FORWARD_HEADER, "")
    parts = value.split(" ")
    if len(parts) != 3 or not secrets.compare_digest(parts[0], link.token) or not parts[2].isdigit():
        return None
    return parts[1], int(parts[2])


def as_forwarded(request: web.Request, address: str) -> web.Request:
    """The request as the client sent it (without the forwarding header), from `address`."""
    headers = CIMultiDict(request.headers)
    headers.popall(FORWARD_HEADER, None)
    return request.clone(remote=address, headers=headers)


class ForwardFailed(Exception):
    """The main process did not answer a forwarded request (the text says how)."""


class Forwarder:
    """A worker's way to the main process's HTTP service (one connection per request)."""

    def __init__(self, link: HttpLink) -> None:
        self.link = link
        self._session: ClientSession | None = None

    def _client(self) -> ClientSession:
        if self._session is None or self._session.closed:
            self._session = ClientSession(connector=TCPConnector(force_close=True), auto_decompress=False,
                                          timeout=ClientTimeout(total=FORWARD_TIMEOUT))
        return self._session

    async def __call__(self, exchange: Exchange, peer: tuple[str, int | str]) -> web.StreamResponse:
        request = exchange.request
        body = exchange.body if exchange.body is not None else b""
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP]
        headers.append((FORWARD_HEADER, f"{self.link.token} {peer[0]} {peer[1]}"))
        url = f"http://127.0.0.1:{self.link.port}{request.raw_path}"
        try:
            async with self._client().request(request.method, url, headers=headers, data=body,
                                              allow_redirects=False, skip_auto_headers=_OWN) as answer:
                data = await answer.read()
                kept = CIMultiDict((k, v) for k, v in answer.headers.items() if k.lower() not in _HOP)
                return web.Response(status=answer.status, body=data, headers=kept)
        except (ClientError, TimeoutError, OSError) as exc:
            raise ForwardFailed(f"502 (the main process did not answer: {type(exc).__name__})") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
