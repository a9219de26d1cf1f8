"""The TR-069 ACS service (`acs` in `labkit up`): CWMP sessions over HTTP or HTTPS with the lab
CA, on port 7547 by default (the default lab's option 43 URL), moved with every port on
loopback. `labkit.services.acs_http` answers the POSTs; this module starts the listener, serves
the lab CA for the "custom CA file" Download, and is the operator's side (through the admin
API): queue a request for a CPE, knock on its Connection Request URL, list the sessions.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from labkit.events import make_event
from labkit.plan.acs import AcsPlan
from labkit.protocols.cwmp import rpc
from labkit.services.acs_connreq import Outcome, connection_request
from labkit.services.acs_http import SERVER_HEADER, AcsHandler, refused_event
from labkit.services.acs_state import AcsState
from labkit.services.context import Endpoint, StartContext
from labkit.services.http_conn import ConnectionGate, Listener
from labkit.tls import ca_path

if TYPE_CHECKING:
    from labkit.plan.build import Plan

HEADER_TIMEOUT = 10.0  # seconds to a complete request head (slowloris), and the TLS handshake
PER_CLIENT_LAN = 16  # connections one address may hold (a CPE holds one per session)
SPARE_CONNECTIONS = 16


@dataclass
class AcsServer:
    listener: Listener
    endpoint: Endpoint
    port: int
    handler: AcsHandler
    state: AcsState
    ctx: StartContext
    clock: Callable[[], float] = time.time

    def reload(self, config: AcsPlan, ctx: StartContext) -> None:
        """The new plan's actions, credentials and fault rules from the next session on; the
        listener (port, TLS, the envelope size bound) stays as started."""
        self.ctx = ctx
        self.handler.take(config, ctx.directory.phone_at, ctx.faults.acs)

    async def close(self) -> None:
        await self.listener.close()

    # ------------------------------------------------------------------ the operator's side

    def queue(self, key: str, request: rpc.Rpc) -> dict[str, Any]:
        """Send `request` in the CPE's session: the open one when it is under way, else the next."""
        live = next((s for s in self.handler.live.values() if key in (s.key, s.mac)
                     and s.session.inform is not None and not s.session.done), None)
        if live is not None:
            live.session.enqueue([request])
            where, waiting = "the open session", len(live.session.requests)
        else:
            waiting, where = self.state.queue(key, request), "the next session"
        self.ctx.bus(make_event("acs", None, key if ":" in key else None, "queue", request.ELEMENT,
                                f"{waiting} waiting for {where}", "ok", self.clock))
        return {"key": key, "queued": request.ELEMENT, "waiting": waiting, "in": where}

    async def connect(self, key: str) -> dict[str, Any]:
        """A Connection Request to the CPE: it opens a session now (and gets what waits)."""
        cpe = self.state.find(key)
        mac = key if ":" in key else None
        if cpe is None or not cpe.connection_request_url:
            outcome = Outcome(None, f"no Connection Request URL for {key}: the ACS has no Inform from it "
                              "that names one", False)
        else:
            credentials = self.handler.config.connection_request
            outcome = await connection_request(cpe.connection_request_url, credentials,
                                               ssl_context=_client_context(self.ctx))
        self.ctx.bus(make_event("acs", None, mac, "connection-request", cpe.connection_request_url or ""
                                if cpe else "", outcome.detail, "ok" if outcome.ok else "failed", self.clock))
        return {"key": key, "ok": outcome.ok, "status": outcome.status, "detail": outcome.detail}

    def sessions(self, key: str | None = None) -> dict[str, Any]:
        open_now = [live.record.to_dict() for live in self.handler.live.values()
                    if key is None or key in (live.key, live.mac)]
        return {"sessions": self.state.sessions(key), "open": open_now,
                "cpes": [c.to_dict(self.state.pending(c.key)) for c in self.state.cpes.values()
                         if key is None or key in (c.key, c.mac)]}


def _client_context(ctx: StartContext) -> ssl.SSLContext | None:
    """For a Connection Request URL in https: the lab CA (the phone's certificate is the lab's)."""
    path = ctx.ca_path or ca_path(ctx.state_dir)
    return ssl.create_default_context(cafile=str(path)) if path.is_file() else None


async def start_acs(config: AcsPlan, endpoint: Endpoint, ctx: StartContext, *,
                    ssl_context: ssl.SSLContext | None = None,
                    clock: Callable[[], float] = time.time) -> AcsServer:
    """Serve CWMP sessions at `endpoint` (HTTPS with `ssl_context`)."""
    state = AcsState(config.limits.queue)
    handler = AcsHandler(config, state, ctx.bus, phone_at=ctx.directory.phone_at, faults=ctx.faults.acs,
                         clock=clock)
    app = web.Application(client_max_size=config.limits.body_bytes)
    base = config.path.rstrip("/")
    state_dir = ctx.state_dir

    async def ca_file(request: web.Request) -> web.StreamResponse:
        path = ca_path(state_dir)
        if not path.is_file():
            return web.Response(status=404, text="no lab CA yet\n", headers={"Server": SERVER_HEADER})
        ctx.bus(make_event("acs", f"{request.remote}", ctx.directory.phone_at(request.remote or ""), "get",
                           request.path, f"200 {path.stat().st_size} bytes", "ok", clock))
        return web.FileResponse(path, headers={"Server": SERVER_HEADER,
                                               "Content-Type": "application/x-pem-file"})

    app.router.add_get(f"{base}/{config.ca_path}", ca_file)
    app.router.add_route("*", "/{tail:.*}", handler.handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    # connections: the sessions' and a few more, so that one over the bound hears 503, not a reset
    total = config.limits.sessions + SPARE_CONNECTIONS
    per_client = total if endpoint.loopback else PER_CLIENT_LAN

    def malformed(peer: tuple[str, int], what: str) -> None:
        ctx.bus(make_event("acs", f"{peer[0]}:{peer[1]}", None, "malformed", what, "400", "malformed", clock))

    listener = Listener(runner, gate=ConnectionGate(total, per_client),
                        header_timeout=HEADER_TIMEOUT, body_timeout=config.limits.session_timeout,
                        ssl_context=ssl_context, on_refused=refused_event(ctx.bus, clock),
                        on_malformed=malformed)
    try:
        await listener.start(endpoint.host, endpoint.port)
    except BaseException:
        await runner.cleanup()
        raise
    return AcsServer(listener, endpoint, listener.port, handler, state, ctx, clock)


async def start_acs_service(plan: Plan, endpoint: Endpoint, ctx: StartContext) -> AcsServer:
    """The supervisor's starter: TLS from the plan's credentials (the lab CA's certificate for
    the lab's names, as HTTPS has it) when `acs.https`, else plain HTTP."""
    from labkit.tls import ServerCredentials, ensure_ca, ensure_server_certificate, server_ssl_context

    ensure_ca(ctx.state_dir, plan.tls.lab_name)  # served for the "custom CA file" Download
    context = None
    if plan.acs.https:
        tls = plan.tls
        if tls.own:
            assert tls.cert is not None and tls.key is not None
            credentials = ServerCredentials(Path(tls.cert), Path(tls.key), None)
        else:
            addresses = sorted({*tls.addresses, endpoint.host})
            credentials = ensure_server_certificate(ctx.state_dir, tls.lab_name, tls.names, addresses)
            ctx.ca_path = ctx.ca_path or credentials.ca_path
        context = server_ssl_context(credentials, keylog=ctx.tls_keylog)
    return await start_acs(plan.acs, endpoint, ctx, ssl_context=context)
