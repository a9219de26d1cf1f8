"""The ACS's HTTP side: one POST of a CWMP session in, one answer out (aiohttp).

Authentication (Basic or Digest, `acs.auth`), which session a POST belongs to (the session
cookie the ACS sets on its first answer, else the connection: TR-069 §3.4.1 lets the CPE hold
one connection per session), the bound on open sessions, idle sessions dropped after
`session_timeout`, fault rules, and every fact of the CWMP core as an event of service "acs".
The session logic itself is the core's (`labkit.protocols.cwmp.acs_session.AcsSession`).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web

from labkit.events import EventSink, fact_event, make_event
from labkit.faults.hooks import ServiceFaults
from labkit.plan.acs import AcsPlan
from labkit.protocols.cwmp import rpc
from labkit.protocols.cwmp.acs_session import AcsSession
from labkit.protocols.cwmp.faults import AcsFaultAction
from labkit.protocols.cwmp.soap import decode, encode
from labkit.protocols.cwmp.values import CwmpError
from labkit.protocols.http import DigestAuth, basic_challenge
from labkit.protocols.result import Fact
from labkit.services.acs_state import AcsState, SessionRecord, identify
from labkit.services.http_conn import unauthorized

COOKIE = "labkit-acs"
SERVER_HEADER = "labkit-acs"


@dataclass
class Live:
    """One open session: the core's state, its record, the CPE once its Inform named it."""

    token: str
    session: AcsSession
    record: SessionRecord
    connection: int  # id() of the transport that opened it
    last_seen: float
    key: str | None = None
    mac: str | None = None
    actions: list[str] = field(default_factory=list)


class AcsHandler:
    def __init__(self, config: AcsPlan, state: AcsState, sink: EventSink, *,
                 phone_at: Callable[[str], str | None], faults: ServiceFaults[AcsFaultAction] | None,
                 clock: Callable[[], float]) -> None:
        self.state, self.sink, self.clock = state, sink, clock
        self.phone_at, self.faults = phone_at, faults
        self.config = config
        self.digest = self._digest(config)
        self.live: dict[str, Live] = {}
        self.count = 0

    def take(self, config: AcsPlan, phone_at: Callable[[str], str | None],
             faults: ServiceFaults[AcsFaultAction] | None) -> None:
        """A reload: sessions from now on use `config` (those open keep their queued requests)."""
        if config.auth != self.config.auth:
            self.digest = self._digest(config)
        self.config, self.phone_at, self.faults = config, phone_at, faults
        self.state.queue_limit = config.limits.queue

    @staticmethod
    def _digest(config: AcsPlan) -> DigestAuth | None:
        auth = config.auth
        return DigestAuth(auth.user, auth.password, auth.realm) if auth and auth.scheme == "digest" else None

    # ------------------------------------------------------------------ helpers

    def event(self, live: Live | None, client: str, fact: Fact) -> None:
        mac = live.mac if live is not None else None
        detail = {"session": live.token[:8]} if live is not None else None
        self.sink(fact_event("acs", client, mac, fact, self.clock(), detail))

    def _challenge(self) -> web.Response:
        auth = self.config.auth
        assert auth is not None
        header = self.digest.challenge(self.clock()) if self.digest else basic_challenge(auth.realm)
        return web.Response(status=401, headers={"WWW-Authenticate": header, "Server": SERVER_HEADER})

    def _denied(self, request: web.Request) -> web.Response | None:
        return unauthorized(request, self.config.auth, self.clock(), self.digest, SERVER_HEADER)

    def sweep(self) -> None:
        """Drop sessions idle for longer than the session timeout."""
        now = self.clock()
        for token, live in list(self.live.items()):
            if now - live.last_seen > self.config.limits.session_timeout:
                self.finish(live, "timeout")
                del self.live[token]

    def finish(self, live: Live, outcome: str) -> None:
        live.record.ended, live.record.outcome = self.clock(), outcome
        live.record.key, live.record.mac = live.key, live.mac
        self.state.history.append(live.record)

    def find(self, request: web.Request) -> Live | None:
        token = request.cookies.get(COOKIE)
        if token is not None and token in self.live:
            return self.live[token]
        connection = id(request.transport)
        return next((s for s in self.live.values() if s.connection == connection), None)

    def open(self, request: web.Request, client: str) -> Live | None:
        if len(self.live) >= self.config.limits.sessions:
            return None
        self.count += 1
        token = secrets.token_hex(16)
        live = Live(token, AcsSession(hold_requests=self.config.hold_requests, id_prefix=f"acs{self.count}"),
                    SessionRecord(token[:8], client, self.clock()), id(request.transport), self.clock())
        live.session.on_inform = lambda inform: self._on_inform(live, inform, request.remote or "", client)
        self.live[token] = live
        return live

    def _identify(self, live: Live, inform: rpc.Inform, address: str) -> tuple[str, str | None]:
        key, mac = identify(inform, self.config.serials, self.phone_at, address)
        live.key, live.mac = key, mac
        live.record.key, live.record.mac, live.record.events = key, mac, inform.event_codes()
        return key, mac

    def _on_inform(self, live: Live, inform: rpc.Inform, address: str, client: str) -> list[rpc.Rpc]:
        key, mac = self._identify(live, inform, address)
        url_name = self.config.connection_request_url_name
        cpe = self.state.heard(key, mac, inform, self.clock(), client, url_name)
        return [*self.state.planned(cpe, self.config, inform.event_codes()), *self.state.take(key)]

    # ------------------------------------------------------------------ one POST

    async def handle(self, request: web.Request) -> web.StreamResponse:
        client = f"{request.remote}:{_peer_port(request)}"
        if request.method != "POST":
            return self._not_post(request, client)
        self.sweep()
        if request.content_length is not None and request.content_length > self.config.limits.body_bytes:
            self.event(None, client, Fact("post", "POST", "413", "too-large"))
            return web.Response(status=413, headers={"Server": SERVER_HEADER, "Connection": "close"})
        try:  # the whole body (the app's client_max_size is the bound), within the session timeout
            body = await asyncio.wait_for(request.read(), self.config.limits.session_timeout)
        except web.HTTPRequestEntityTooLarge:
            self.event(None, client, Fact("post", "POST", "413", "too-large"))
            return web.Response(status=413, headers={"Server": SERVER_HEADER, "Connection": "close"})
        except (ConnectionError, TimeoutError, web.HTTPException) as exc:
            self.event(None, client, Fact("post", "POST", f"- ({type(exc).__name__})", "aborted"))
            return web.Response(status=400, headers={"Server": SERVER_HEADER, "Connection": "close"})
        denied = self._denied(request)
        live = self.find(request)
        if denied is not None:
            self.event(live, client, Fact("auth", f"POST {len(body)} bytes", "401", "unauthorized"))
            return denied
        fresh = live is None
        if live is None:
            live = self.open(request, client)
            if live is None:
                self.event(None, client, Fact("post", "POST", "503 (sessions at their bound)", "busy"))
                return web.Response(status=503, headers={"Server": SERVER_HEADER, "Retry-After": "30"})
        live.last_seen = self.clock()
        return await self._exchange(request, live, body, client, fresh)

    async def _exchange(self, request: web.Request, live: Live, body: bytes, client: str,
                        fresh: bool) -> web.StreamResponse:
        actions = self._faults(live, body, client)
        delay = sum(a.delay or 0.0 for a in actions)
        if delay:
            live.last_seen = float("inf")  # not idle: no sweep ends it while it waits
            await asyncio.sleep(delay)
            live.last_seen = self.clock()
        if any(a.unauthorized for a in actions):
            self.event(live, client, Fact("auth", f"POST {len(body)} bytes", "401 (fault)", "fault"))
            if fresh:  # no session began: the CPE starts over with its credentials
                self.live.pop(live.token, None)
            return self._challenge_any()
        if any(a.drop for a in actions):
            self.event(live, client, Fact("post", f"POST {len(body)} bytes", "connection closed (fault)",
                                          "dropped"))
            self.live.pop(live.token, None)
            self.finish(live, "dropped")
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)
        code = next((a.fault for a in actions if a.fault is not None), None)
        reply = live.session.receive(body, fault=code)
        for fact in reply.facts:
            live.record.add(self.clock(), fact)
            self.event(live, client, fact)
        payload = reply.body
        if payload and any(a.wrong_id for a in actions):
            payload = _wrong_id(payload)
        if reply.done:
            self.live.pop(live.token, None)
            self.finish(live, _outcome(reply.facts, reply.status))
        headers = {"Server": SERVER_HEADER, **dict(reply.headers)}
        response = web.Response(status=reply.status, body=payload or None, headers=headers)
        if fresh and not reply.done:
            response.set_cookie(COOKIE, live.token, path=self.config.path, httponly=True)
        return response

    def _challenge_any(self) -> web.Response:
        if self.config.auth is not None:
            return self._challenge()
        return web.Response(status=401, headers={"WWW-Authenticate": basic_challenge("labkit-acs"),
                                                 "Server": SERVER_HEADER})

    def _faults(self, live: Live, body: bytes, client: str) -> list[AcsFaultAction]:
        if self.faults is None:
            return []
        try:
            envelope = decode(body)
        except CwmpError:
            return []  # the core says what is wrong with it
        name = envelope.body.ELEMENT if envelope.body is not None else "empty"
        if isinstance(envelope.body, rpc.Inform) and live.key is None:  # a rule may match its MAC
            self._identify(live, envelope.body, client.rsplit(":", 1)[0])
        fired = self.faults.check(mac=live.mac, client=client, request=f"POST {name}", name=name)
        return [hit.action for hit in fired]

    def _not_post(self, request: web.Request, client: str) -> web.StreamResponse:
        self.event(None, client, Fact(request.method.lower(), request.path, "405", "method-not-allowed"))
        return web.Response(status=405, headers={"Allow": "POST", "Server": SERVER_HEADER})


def _wrong_id(payload: bytes) -> bytes:
    """The same answer with another cwmp:ID (a fault rule's `wrong_id`)."""
    try:
        envelope = decode(payload)
    except CwmpError:
        return payload
    return encode(replace(envelope, id=f"{envelope.id or ''}-wrong"))


def _outcome(facts: tuple[Fact, ...], status: int) -> str:
    if status == 204:
        return "ok"
    failed = [f.result for f in facts if f.result != "ok"]
    return failed[-1] if failed else str(status)


def _peer_port(request: web.Request) -> Any:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return peer[1] if peer else "?"


def refused_event(sink: EventSink, clock: Callable[[], float]) -> Callable[[tuple[str, int], str], None]:
    def refused(peer: tuple[str, int], why: str) -> None:
        client = f"{peer[0]}:{peer[1]}"
        sink(make_event("acs", client, None, "connect", "", f"closed: {why}", "refused", clock))

    return refused
