"""The control API and dashboard of a running lab (aiohttp), on two doors:

- `STATE/control.sock`, a Unix socket only this user can open (`labkit status` reads it);
- the admin HTTP port (standard 8080, moved by --port-offset/--loopback like every port), bound
  to loopback unless told otherwise; bound elsewhere, every request needs the admin token
  (`Authorization: Bearer TOKEN`, Basic auth with TOKEN as the password, or `?token=TOKEN`).

Routes (JSON shapes documented in `labkit.services.status` and `labkit.services.ops`):
  GET /                  the dashboard (static page; phones live through /api/events)
  GET /api/status        the status snapshot, with the faults in force
  GET /api/phones/{mac}  one phone's status and its recent events (its timeline)
  GET /api/events        server-sent events: "phone" (one phone changed), "counters" (each second)
  GET /metrics           Prometheus text format
  /api/acs/...           the TR-069 ACS's operator side (labkit.services.acs_admin)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import http.client
import ipaddress
import json
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from labkit.macros import normalize_mac
from labkit.services.acs_admin import add_acs_routes
from labkit.services.context import Endpoint
from labkit.services.metrics import CONTENT_TYPE_LATEST
from labkit.services.ops import LabOps

CONTROL_SOCKET = "control.sock"
COUNTERS_EVERY = 1.0  # seconds between "counters" messages on the event stream
STATIC = {"/": ("index.html", "text/html"), "/dashboard.js": ("dashboard.js", "text/javascript"),
          "/dashboard.css": ("dashboard.css", "text/css")}
OPS: web.AppKey[LabOps] = web.AppKey("ops", LabOps)
TOKEN: web.AppKey[str | None] = web.AppKey("token", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class AdminSettings:
    """The admin port: on or off, its address (loopback by default), its port (None: 8080 moved
    like every port) and the token required when it is bound off loopback."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int | None = None
    token: str | None = None


def control_socket(state_dir: Path) -> Path:
    return state_dir / CONTROL_SOCKET


def _authorised(request: web.Request, token: str) -> bool:
    offered = request.query.get("token", "")
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        offered = value.strip()
    elif scheme.lower() == "basic":
        with contextlib.suppress(ValueError):
            offered = base64.b64decode(value.strip()).decode("utf-8", "replace").partition(":")[2]
    return hmac.compare_digest(offered.encode(), token.encode())


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Over TCP with a token set, the token is required; the Unix socket is guarded by its mode."""
    token = request.app[TOKEN]
    over_tcp = isinstance(request.transport and request.transport.get_extra_info("sockname"), tuple)
    if token is not None and over_tcp and not _authorised(request, token):
        return web.Response(status=401, text="labkit admin: token required\n",
                            headers={"WWW-Authenticate": 'Basic realm="labkit"'})
    return await handler(request)


async def _static(request: web.Request) -> web.Response:
    name, kind = STATIC[request.path]
    body = resources.files("labkit.services.dashboard").joinpath(name).read_bytes()
    return web.Response(body=body, content_type=kind, charset="utf-8",
                        headers={"Cache-Control": "no-cache"})


async def _status(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPS].snapshot())


async def _phone(request: web.Request) -> web.Response:
    ops = request.app[OPS]
    try:
        mac = normalize_mac(request.match_info["mac"])
    except ValueError:
        raise web.HTTPBadRequest(text="not a MAC address\n") from None
    found = ops.phone(mac)
    if found is None:
        raise web.HTTPNotFound(text=f"no phone {mac}\n")
    return web.json_response(found)


async def _metrics(request: web.Request) -> web.Response:
    response = web.Response(body=request.app[OPS].metrics.text())
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


async def _events(request: web.Request) -> web.StreamResponse:
    ops = request.app[OPS]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    with ops.subscribe() as queue:
        await _send(response, "snapshot", ops.snapshot())
        seen = -1
        while True:
            try:
                kind, data = await asyncio.wait_for(queue.get(), COUNTERS_EVERY)
            except TimeoutError:
                if ops.status.events != seen:
                    seen = ops.status.events
                    await _send(response, "counters", ops.counters())
                continue
            await _send(response, kind, data)


async def _send(response: web.StreamResponse, kind: str, data: Any) -> None:
    await response.write(f"event: {kind}\ndata: {json.dumps(data, default=str)}\n\n".encode())


def make_app(ops: LabOps, token: str | None) -> web.Application:
    app = web.Application(middlewares=[_guard])
    app[OPS] = ops
    app[TOKEN] = token
    for path in STATIC:
        app.router.add_get(path, _static)
    app.router.add_get("/api/status", _status)
    app.router.add_get("/api/phones/{mac}", _phone)
    app.router.add_get("/api/events", _events)
    app.router.add_get("/metrics", _metrics)
    add_acs_routes(app)
    return app


@dataclass
class AdminServer:
    runner: web.AppRunner
    socket_path: Path

    async def close(self) -> None:
        await self.runner.cleanup()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()


class ControlSocketError(Exception):
    """The control socket cannot be made (another lab answers on it, a path too long, ...)."""


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def _claim_socket(path: Path) -> None:
    """Remove a socket left by a lab that died; refuse when a lab still answers on it."""
    if not path.exists() and not path.is_symlink():
        return
    if not _answers(path):
        path.unlink()
        return
    raise ControlSocketError(f"another lab already runs with this state folder (it answers on {path})")


async def start_admin(ops: LabOps, endpoint: Endpoint | None, state_dir: Path,
                      token: str | None = None) -> AdminServer:
    """Serve the control API on `STATE/control.sock`, and on `endpoint` (when given)."""
    if endpoint is not None and not ipaddress.ip_address(endpoint.host).is_loopback and not token:
        raise ValueError("the admin port is bound off loopback: it needs a token")
    runner = web.AppRunner(make_app(ops, token), handle_signals=False, access_log=None,
                           shutdown_timeout=0.5)
    await runner.setup()
    path = control_socket(state_dir)
    ours = False  # the socket file is ours to remove (never another lab's)
    try:
        try:
            _claim_socket(path)
            await web.UnixSite(runner, str(path)).start()
            ours = True
            os.chmod(path, 0o600)
        except (OSError, ValueError) as exc:
            raise ControlSocketError(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None
        if endpoint is not None:
            await web.TCPSite(runner, endpoint.host, endpoint.port, reuse_address=True).start()
    except BaseException:
        await runner.cleanup()
        if ours:
            path.unlink(missing_ok=True)
        raise
    return AdminServer(runner, path)


class NoLab(Exception):
    """No lab answers on the control socket of this state folder."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


def control_request(state_dir: Path, method: str, path: str, data: Any = None,
                    timeout: float = 10.0) -> tuple[int, bytes]:
    """`method path` on the control socket of the lab running with `state_dir` (a JSON body when
    `data` is given): the answer's status and body; NoLab when no lab answers there."""
    where = control_socket(state_dir)
    if not where.exists():
        raise NoLab(f"no lab runs with state folder {state_dir} (no {where}; start one with labkit up)")
    connection = _UnixConnection(where, timeout)
    body = json.dumps(data).encode() if data is not None else None
    headers = {"Content-Type": "application/json"} if body is not None else {}
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    except (ConnectionRefusedError, FileNotFoundError):
        raise NoLab(f"no lab runs with state folder {state_dir} ({where} is left from a lab that "
                    "stopped; labkit up starts one)") from None
    except (OSError, http.client.HTTPException) as exc:
        raise NoLab(f"the lab at {where} does not answer: {exc}") from None
    finally:
        connection.close()


def ask(state_dir: Path, path: str = "/api/status", timeout: float = 10.0) -> Any:
    """GET `path` from the lab running with `state_dir` (its control socket); the JSON answer."""
    status, body = control_request(state_dir, "GET", path, timeout=timeout)
    if status != 200:
        where = control_socket(state_dir)
        raise NoLab(f"the lab at {where} answered {status}: {body.decode(errors='replace').strip()}")
    return json.loads(body)
