"""The virtual phone's network clients: DNS, TFTP and HTTP(S), each returning effect results."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import random
import socket
import ssl
from urllib.parse import urlsplit

import aiohttp
from dnslib import QTYPE, RCODE, DNSRecord

from labkit.phone.discovery import SrvTarget
from labkit.phone.effects import DnsAnswer, Fetch, FetchResult
from labkit.phone.loss import CURRENT, Loss, lossy_transport
from labkit.phone.network import NetworkMap
from labkit.protocols.http import parse_digest
from labkit.protocols.result import Result
from labkit.protocols.tftp.client import ClientOptions, ClientSession

TFTP_BLKSIZE = 1468  # fits one Ethernet frame; MPP's own choice is undocumented (reference §7)
TFTP_TRIES = 4


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.refused = False
        self.loss: Loss | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # the phone's own lossy link (a bench knob): its sends and receives are dropped
        self.loss = CURRENT.get()
        if self.loss is not None and isinstance(transport, asyncio.DatagramTransport):
            lossy_transport(transport, self.loss)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.loss is not None and self.loss.drops():
            return
        self.queue.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable: nothing listens there, as a phone's IP stack would learn too
        if isinstance(exc, ConnectionRefusedError):
            self.refused = True
            self.queue.put_nowait((b"", ("", 0)))


def _local(local_ip: str | None) -> tuple[str, int] | None:
    return (local_ip, 0) if local_ip else None


async def dns_query(server: tuple[str, int], name: str, qtype: str, *, timeout: float = 2.0,
                    tries: int = 3, local_ip: str | None = None) -> DnsAnswer:
    """One question over UDP, retransmitted with exponential backoff (RFC 1123 §6.1.3.3): waits
    of `timeout`, then twice, then four times as long; an answer to any transmission counts."""
    query = DNSRecord.question(name, qtype)
    query.header.rd = 0
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(_Datagrams, remote_addr=server,
                                                           local_addr=_local(local_ip))
    try:
        for attempt in range(tries):
            transport.sendto(query.pack())
            try:
                async with asyncio.timeout(timeout * 2 ** attempt):
                    while True:
                        data, _addr = await proto.queue.get()
                        if data[:2] == query.pack()[:2]:
                            break
            except TimeoutError:
                continue
            try:
                reply = DNSRecord.parse(data)
            except Exception:  # dnslib raises assorted errors on bad bytes
                return DnsAnswer("FORMERR")
            rcode = RCODE.get(reply.header.rcode, str(reply.header.rcode))
            srv = tuple(SrvTarget(rr.rdata.priority, rr.rdata.weight, rr.rdata.port, str(rr.rdata.target))
                        for rr in reply.rr if rr.rtype == QTYPE.SRV)
            addresses = tuple(str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A)
            return DnsAnswer(str(rcode), srv, addresses)
        return DnsAnswer("TIMEOUT")
    finally:
        transport.close()


async def tftp_get(server: tuple[str, int], path: str, *, timeout: float = 2.0,
                   blksize: int = TFTP_BLKSIZE, local_ip: str | None = None) -> FetchResult:
    """RRQ with blksize and tsize; error 1 maps to 404, other errors to 403, silence to None.

    A thin transport around the sans-IO `ClientSession`: it moves datagrams and keeps the one
    retransmission timer; every protocol decision is the session's."""
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(_Datagrams, local_addr=(local_ip or "0.0.0.0", 0))
    sock = transport.get_extra_info("socket")
    if sock is not None:  # Linux: report ICMP errors on this unconnected socket too
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_RECVERR", 11), 1)
    session = ClientSession(path, ClientOptions(blksize=blksize, timeout=timeout, retries=TFTP_TRIES - 1))
    try:
        result = session.start()
        while not _tftp_apply(transport, server, result):
            try:
                async with asyncio.timeout(_tftp_wait(result, timeout)):
                    data, addr = await proto.queue.get()
            except TimeoutError:
                result = session.expire()
                continue
            if proto.refused and not data:
                return FetchResult(None, error="TFTP: connection refused (nothing listens on that port)")
            result = session.receive(data, addr)
        if session.status == 200:
            return FetchResult(200, session.content)
        return FetchResult(session.status, error=session.error)
    finally:
        transport.close()


def _tftp_apply(transport: asyncio.DatagramTransport, server: tuple[str, int], result: Result) -> bool:
    """Send what the session asks; True when it is over."""
    for datagram in result.send:
        transport.sendto(datagram.data, datagram.to or server)
    return result.done


def _tftp_wait(result: Result, timeout: float) -> float:
    return next((t.after for t in result.timers if t.after is not None), timeout)


def _digest_header(challenge: str, method: str, uri: str, user: str, password: str) -> str:
    params = parse_digest(challenge)
    realm, nonce = params.get("realm", ""), params.get("nonce", "")
    cnonce, nc = os.urandom(8).hex(), "00000001"

    def md5(text: str) -> str:
        return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

    ha1, ha2 = md5(f"{user}:{realm}:{password}"), md5(f"{method}:{uri}")
    if "auth" in params.get("qop", "").split(","):
        response = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        tail = f', qop=auth, nc={nc}, cnonce="{cnonce}"'
    else:
        response, tail = md5(f"{ha1}:{nonce}:{ha2}"), ""
    opaque = f', opaque="{params["opaque"]}"' if "opaque" in params else ""
    return (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'algorithm=MD5, response="{response}"{tail}{opaque}')


class HttpClient:
    """HTTP(S) as the phone does it: its User-Agent, the lab CA, Basic or Digest on request."""

    def __init__(self, network: NetworkMap, ca_file: str | None, local_ip: str | None = None) -> None:
        self.network = network
        self.local_ip = local_ip
        self.ssl = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
        self.session: aiohttp.ClientSession | None = None
        self.challenges: dict[str, str] = {}  # host -> the last WWW-Authenticate seen
        self.certificates: dict[tuple[str, int, str], tuple[str, ...]] = {}

    async def __aenter__(self) -> HttpClient:
        connector = aiohttp.TCPConnector(local_addr=_local(self.local_ip))
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30, sock_connect=5),
                                             auto_decompress=False, connector=connector)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self.session is not None:
            await self.session.close()

    async def certificate_names(self, host: str, port: int, server_name: str) -> tuple[str, ...]:
        """The server certificate's CN then DNS SANs (one verified handshake per server, cached)."""
        key = (host, port, server_name)
        if key not in self.certificates:
            _, writer = await asyncio.open_connection(host, port, ssl=self.ssl, server_hostname=server_name,
                                                      local_addr=_local(self.local_ip))
            cert = writer.get_extra_info("peercert") or {}
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
            common = [value for rdn in cert.get("subject", ()) for k, value in rdn if k == "commonName"]
            dns = [value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"]
            self.certificates[key] = tuple(dict.fromkeys([*common, *dns]))
        return self.certificates[key]

    async def fetch(self, effect: Fetch, address: str) -> FetchResult:
        """`address`: what the URL's host resolved to in the lab (the phone connects there)."""
        assert self.session is not None
        parts = urlsplit(effect.url)
        scheme = parts.scheme.lower()
        default = 443 if scheme == "https" else 80
        host_port = parts.port or default
        real_host, real_port = self.network.endpoint(address, host_port)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        url = f"{scheme}://{real_host}:{real_port}{path}"
        headers = {"User-Agent": effect.user_agent, "Host": parts.netloc}
        if effect.uid is not None and effect.pwd is not None:
            challenge = self.challenges.get(parts.netloc, "")
            if challenge.lower().startswith("digest"):
                headers["Authorization"] = _digest_header(challenge, effect.method, path, effect.uid,
                                                          effect.pwd)
            else:
                token = base64.b64encode(f"{effect.uid}:{effect.pwd}".encode()).decode("ascii")
                headers["Authorization"] = f"Basic {token}"
        https = scheme == "https"
        loss = CURRENT.get()
        if loss is not None:  # TCP recovers a lost segment itself, after its retransmission timeout
            await asyncio.sleep(loss.tcp_delay())
        try:
            request = self.session.request(effect.method, url, data=effect.body or None, headers=headers,
                                           allow_redirects=False, ssl=self.ssl if https else True,
                                           server_hostname=parts.hostname if https else None)
            async with request as response:
                body = await response.read()
                result_headers = {k: v for k, v in response.headers.items()}
                if response.status in (401, 407):
                    self.challenges[parts.netloc] = (response.headers.get("WWW-Authenticate")
                                                     or response.headers.get("Proxy-Authenticate") or "")
            names = (await self.certificate_names(real_host, real_port, parts.hostname or "")
                     if https else ())
            return FetchResult(response.status, body, result_headers, tls_names=names)
        except aiohttp.ClientConnectorCertificateError as exc:
            return FetchResult(None, error=f"TLS: {exc.certificate_error}")
        except aiohttp.ClientSSLError as exc:
            return FetchResult(None, error=f"TLS: {exc}")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return FetchResult(None, error=f"{scheme.upper()}: {type(exc).__name__}: {exc}")


def pick_address(addresses: tuple[str, ...]) -> str:
    """The phone iterates A records until one answers (reference §2); start with one at random."""
    return random.choice(addresses)
