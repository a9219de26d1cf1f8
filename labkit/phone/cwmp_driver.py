"""The virtual phone's CWMP side with real sockets: POSTs to the ACS over HTTP(S) (one connection
and cookie jar per session, Digest or Basic on a 401), the Connection Request listener with
Digest authentication (TR-069 Amendment 3 §3.2.2), and everything else (downloads over
HTTP/HTTPS/TFTP, sleeps, the clock, syslog) through the phone's own `PhoneRun`.

Start it after the phone has its lease and profile: `await run_cwmp(run, outcome, settings)`.
On loopback the listener binds 127.0.0.1 (an alternate port when `cr_port` is 0 or taken is the
caller's choice) and the ConnectionRequestURL names that endpoint, since the lease's address
does not exist there.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import time
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from labkit.phone.core import Outcome, Step
from labkit.phone.cwmp import AwaitConnectionRequest, CwmpAnswer, CwmpEnd, CwmpPost, CwmpSettings
from labkit.phone.cwmp_flow import CwmpPhone, CwmpState
from labkit.phone.cwmp_setup import Identity, prepare
from labkit.phone.driver import PhoneRun
from labkit.protocols.http import DigestAuth, digest_authorization

MAX_AUTH_TRIES = 2  # the POST, then once more with credentials after a 401
REALM = "labkit CPE"


@dataclass
class ConnectionRequests:
    """The listener: an authenticated GET on `path` wakes the phone (200), anything else is refused."""

    username: str
    password: str
    path: str
    event: asyncio.Event = field(default_factory=asyncio.Event)
    received: int = 0
    refused: int = 0
    runner: web.AppRunner | None = None
    port: int = 0

    async def start(self, host: str, port: int) -> int:
        digest = DigestAuth(self.username, self.password, REALM)

        async def handle(request: web.Request) -> web.Response:
            if request.path != self.path:
                return web.Response(status=404)
            ok, stale = digest.check(request.headers.get("Authorization"), request.method, time.time())
            if not ok:
                self.refused += 1
                challenge = digest.challenge(time.time(), stale=stale)
                return web.Response(status=401, headers={"WWW-Authenticate": challenge})
            self.received += 1
            self.event.set()
            return web.Response(status=200)

        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        except OSError:
            sock.close()
            await self.runner.cleanup()
            raise
        self.port = sock.getsockname()[1]
        await web.SockSite(self.runner, sock).start()
        return self.port

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@dataclass
class AcsLink:
    """POSTs of one CWMP session: its own connection and cookie jar."""

    run: PhoneRun
    session: aiohttp.ClientSession | None = None
    challenge: str = ""

    async def post(self, effect: CwmpPost) -> CwmpAnswer:
        if effect.new_session or self.session is None:
            await self.close()
            connector = aiohttp.TCPConnector(local_addr=(self.run.local_ip, 0) if self.run.local_ip else None)
            jar = aiohttp.CookieJar(unsafe=True)  # the ACS's session cookie, even on an IP address
            self.session = aiohttp.ClientSession(connector=connector, cookie_jar=jar,
                                                 timeout=aiohttp.ClientTimeout(total=30, sock_connect=5))
            self.challenge = ""
        parts = urlsplit(effect.url)
        host = parts.hostname or ""
        address = await self.run._resolve(host)
        if address is None:
            return CwmpAnswer(None, error=f"DNS: {host} does not resolve")
        https = parts.scheme.lower() == "https"
        real_host, real_port = self.run.access.network.endpoint(address, parts.port or (443 if https else 80))
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        url = f"{parts.scheme}://{real_host}:{real_port}{path}"
        headers = {"User-Agent": self.run.config.user_agent, "Host": parts.netloc, **dict(effect.headers)}
        answer = CwmpAnswer(None, error="not sent")
        for _ in range(MAX_AUTH_TRIES):
            if self.challenge and effect.uid is not None:  # once challenged, on every POST
                headers["Authorization"] = _authorization(self.challenge, path, effect.uid, effect.pwd or "")
            sent_credentials = "Authorization" in headers
            answer = await self._send(url, effect.body, headers, https, host)
            if answer.status != 401 or effect.uid is None or sent_credentials:
                return answer  # a 401 to our credentials: refused (the flow retries later)
        return answer

    async def _send(self, url: str, body: bytes, headers: dict[str, str], https: bool,
                    host: str) -> CwmpAnswer:
        assert self.session is not None
        try:
            request = self.session.post(url, data=body, headers=headers, allow_redirects=False,
                                        ssl=self.run.http.ssl if https else True,
                                        server_hostname=host if https else None)
            async with request as response:
                data = await response.read()
                if response.status == 401:
                    self.challenge = response.headers.get("WWW-Authenticate", "")
                return CwmpAnswer(response.status, data)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return CwmpAnswer(None, error=f"ACS: {type(exc).__name__}: {exc}")

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None


def _authorization(challenge: str, path: str, uid: str, pwd: str) -> str:
    if challenge.lower().startswith("digest"):
        return digest_authorization(challenge, "POST", path, uid, pwd)
    return "Basic " + base64.b64encode(f"{uid}:{pwd}".encode()).decode("ascii")


async def run_cwmp(run: PhoneRun, outcome: Outcome, base: CwmpSettings, *,
                   state: CwmpState | None = None) -> tuple[CwmpState | None, str]:
    """The phone's CWMP life after its provisioning `outcome`: (its state, or None when TR-069
    is off or no ACS is known; and what was decided). The CWMP steps join `outcome.timeline`
    (the decision, then one step per RPC and per download/reboot), also when cancelled."""
    if outcome.lease is None:
        return None, "no lease"
    settings = CwmpSettings.from_profile(outcome.params, base)
    if not settings.enabled:
        return None, "TR-069 is off"
    listener = ConnectionRequests(settings.cr_username, settings.cr_password, settings.cr_path)
    bind = settings.cr_listen or run.local_ip or "127.0.0.1"
    try:
        port = await listener.start(bind, settings.cr_port)
    except OSError:  # taken (another phone of the swarm, on loopback): an alternate port
        port = await listener.start(bind, 0)
    try:
        advertised = settings.cr_host or (outcome.lease.ip if run.local_ip else bind)
        settings = replace(settings, cr_port=port, cr_host=advertised)
        config = run.config
        who = Identity(config.mac, config.model, config.serial, outcome.firmware or config.load,
                       config.user_agent)
        setup = prepare(who, outcome.lease, outcome.params, settings, seed=config.seed, state=state)
        outcome.timeline.append(Step.of(run.clock.now(), "cwmp", setup.why, setup.phone is not None,
                                        config.mac))
        if setup.phone is None:
            return None, setup.why
        try:
            return await _drive(setup.phone, run, listener), setup.why
        finally:
            outcome.timeline.extend(Step(when, fact) for when, fact in setup.phone.state.timeline)
    finally:
        await listener.close()


async def _drive(phone: CwmpPhone, run: PhoneRun, listener: ConnectionRequests) -> CwmpState:
    link = AcsLink(run)  # the phone's HTTP client holds no connection between fetches
    flow, reply = phone.run(), None
    try:
        while True:
            try:
                effect = flow.send(reply)
            except StopIteration as stop:
                state: CwmpState = stop.value
                return state
            reply = await _perform(effect, run, link, listener)
    finally:
        await link.close()


async def _perform(effect: Any, run: PhoneRun, link: AcsLink, listener: ConnectionRequests) -> Any:
    if isinstance(effect, CwmpPost):
        run._count("cwmp")
        if effect.new_session:  # a Connection Request during a session asks for nothing more
            listener.event.clear()
        return await link.post(effect)
    if isinstance(effect, CwmpEnd):
        await link.close()
        return None
    if isinstance(effect, AwaitConnectionRequest):
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(effect.seconds / run.clock.scale):
                await listener.event.wait()
                listener.event.clear()
                return True
        return False
    return await run._perform(effect)
