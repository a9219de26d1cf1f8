"""A CPE for the ACS's tests, driven by the CWMP core's CPE session (`CpeSession`) over real
HTTP(S): one aiohttp client session per CWMP session (its cookie jar and connection), Basic or
Digest when challenged, a flat parameter tree answering the ACS's requests, and a Connection
Request listener with Digest. Bounded: every session has a maximum number of POSTs."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from labkit.protocols.cwmp import rpc
from labkit.protocols.cwmp.cpe_session import CpeSession
from labkit.protocols.cwmp.values import Value
from labkit.protocols.http import DigestAuth, digest_authorization
from labkit.protocols.result import Fact

MAX_POSTS = 64


@dataclass
class SessionResult:
    statuses: list[int] = field(default_factory=list)
    facts: list[Fact] = field(default_factory=list)
    received: list[rpc.Rpc] = field(default_factory=list)  # the ACS's requests, in order
    retry: bool = False
    error: str | None = None


@dataclass
class LabCpe:
    url: str
    serial: str = "FCH0001"
    params: dict[str, Value] = field(default_factory=dict)
    user: str | None = None
    password: str | None = None
    ssl_context: ssl.SSLContext | bool = False
    reboots: int = 0
    instances: int = 0
    on_request: Callable[[rpc.Rpc], rpc.Rpc | None] | None = None  # a test's own answer, or None

    def inform(self, *events: str, retry_count: int = 0) -> rpc.Inform:
        device = rpc.DeviceIdStruct("Cisco", "00562B", "CP-8851-3PCC", self.serial)
        listed = tuple(rpc.ParameterValueStruct(name, value) for name, value in self.params.items()
                       if name.endswith("ConnectionRequestURL"))
        return rpc.Inform(device, tuple(rpc.EventStruct(code) for code in events), retry_count=retry_count,
                          parameters=listed)

    def start_body(self, *events: str) -> bytes:
        """The first POST of a session (its Inform), for tests that speak HTTP themselves."""
        return CpeSession(self.inform(*events), self.handle).start().body

    def handle(self, request: rpc.Rpc) -> rpc.Rpc:
        if self.on_request is not None:
            own = self.on_request(request)
            if own is not None:
                return own
        if isinstance(request, rpc.SetParameterValues):
            for p in request.parameters:
                self.params[p.name] = p.value
            return rpc.SetParameterValuesResponse(0)
        if isinstance(request, rpc.GetParameterValues):
            known = [n for n in request.names if n in self.params]
            found = tuple(rpc.ParameterValueStruct(n, self.params[n]) for n in known)
            if len(found) != len(request.names):
                return rpc.Fault(9005)
            return rpc.GetParameterValuesResponse(found)
        if isinstance(request, rpc.SetParameterAttributes):
            return rpc.SetParameterAttributesResponse()
        if isinstance(request, rpc.AddObject):
            self.instances += 1
            return rpc.AddObjectResponse(self.instances, 0)
        if isinstance(request, rpc.DeleteObject):
            return rpc.DeleteObjectResponse(0)
        if isinstance(request, rpc.Reboot):
            self.reboots += 1
            return rpc.RebootResponse()
        if isinstance(request, rpc.Download):
            return rpc.DownloadResponse(1)
        if isinstance(request, rpc.GetRPCMethods):
            return rpc.GetRPCMethodsResponse(("GetRPCMethods", "SetParameterValues"))
        return rpc.Fault(9000)

    async def session(self, *events: str, requests: tuple[rpc.Rpc, ...] = (), retry_count: int = 0,
                      password: str | None = None) -> SessionResult:
        """One CWMP session from Inform to its end; what happened."""
        cpe = CpeSession(self.inform(*events, retry_count=retry_count), self.handle)
        cpe.requests.extend(requests)
        result = SessionResult()
        post = cpe.start()
        jar = aiohttp.CookieJar(unsafe=True)  # the ACS's cookie on 127.0.0.1
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(cookie_jar=jar, timeout=timeout) as client:
            for _ in range(MAX_POSTS):
                try:
                    status, body = await self._post(client, post.body, dict(post.headers), password)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    result.error = type(exc).__name__
                    break
                result.statuses.append(status)
                step = cpe.receive(status, body)
                result.facts += step.facts
                if step.received is not None and type(step.received) in rpc.REQUESTS_TO_CPE:
                    result.received.append(step.received)
                if step.post is None:
                    break
                post = step.post
        result.retry = cpe.retry
        return result

    async def _post(self, client: aiohttp.ClientSession, body: bytes, headers: dict[str, str],
                    password: str | None) -> tuple[int, bytes]:
        async with client.post(self.url, data=body, headers=headers, ssl=self.ssl_context) as response:
            status, answer = response.status, await response.read()
            challenge = response.headers.get("WWW-Authenticate", "")
        if status != 401 or self.user is None:
            return status, answer
        secret = password if password is not None else self.password or ""
        if challenge.lower().startswith("digest"):
            path = "/" + self.url.split("/", 3)[3] if self.url.count("/") >= 3 else "/"
            headers["Authorization"] = digest_authorization(challenge, "POST", path, self.user, secret)
        else:
            auth = aiohttp.BasicAuth(self.user, secret)
            headers["Authorization"] = auth.encode()
        async with client.post(self.url, data=body, headers=headers, ssl=self.ssl_context) as response:
            return response.status, await response.read()


@dataclass
class ConnectionRequestListener:
    """The CPE's Connection Request URL: Digest-protected GET; each good one sets `knocked`."""

    user: str
    password: str
    knocked: asyncio.Event = field(default_factory=asyncio.Event)
    refused: int = 0
    runner: web.AppRunner | None = None
    url: str = ""

    async def start(self) -> str:
        digest = DigestAuth(self.user, self.password, "cpe")

        async def knock(request: web.Request) -> web.Response:
            ok, _ = digest.check(request.headers.get("Authorization"), "GET", time.time())
            if not ok:
                self.refused += 1
                return web.Response(status=401, headers={"WWW-Authenticate": digest.challenge(time.time())})
            self.knocked.set()
            return web.Response(status=200)

        app = web.Application()
        app.router.add_get("/cr", knock)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/cr"
        return self.url

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

