"""The ACS's routes on the admin API (`labkit acs ...` talks to them through the control socket):

  POST /api/acs/{mac}/queue     {"kind": "set", "params": {...}} etc. (labkit.services.acs_rpcs),
                                optional "connect": true to knock on the CPE right after
  POST /api/acs/{mac}/connect   a Connection Request now
  GET  /api/acs/sessions        every recorded session, open ones, the CPEs heard from
  GET  /api/acs/sessions/{mac}  the same for one CPE

Answers are JSON; 404 when the lab runs no ACS, 400 for a request that makes no CWMP request,
409 when the CPE's queue is full.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp import web

from labkit.macros import normalize_mac

ACS_PREFIX = "/api/acs"


def _acs(request: web.Request) -> Any:
    from labkit.services.admin import OPS

    acs = getattr(request.app[OPS], "acs", None)
    if acs is None:
        raise web.HTTPNotFound(text=json.dumps({"error": "this lab runs no ACS (no `acs:` section)"}),
                               content_type="application/json")
    return acs


def _key(request: web.Request) -> str:
    given = request.match_info["mac"]
    try:
        return normalize_mac(given)
    except ValueError:
        return given  # an OUI-SerialNumber key, for CPEs the ACS cannot put a MAC on


async def _queue(request: web.Request) -> web.Response:
    from labkit.services.acs_rpcs import RequestError, from_operator  # the CWMP core: only with an ACS
    from labkit.services.acs_state import QueueFull

    acs = _acs(request)
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text=json.dumps({"error": "expected a JSON object"}),
                                 content_type="application/json") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text=json.dumps({"error": "expected a JSON object"}),
                                 content_type="application/json")
    try:
        answer = acs.queue(_key(request), from_operator(body))
    except RequestError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    except QueueFull as exc:
        return web.json_response({"error": str(exc)}, status=409)
    if body.get("connect"):
        answer["connection_request"] = await acs.connect(_key(request))
    return web.json_response(answer)


async def _connect(request: web.Request) -> web.Response:
    return web.json_response(await _acs(request).connect(_key(request)))


async def _sessions(request: web.Request) -> web.Response:
    key = _key(request) if "mac" in request.match_info else None
    return web.json_response(_acs(request).sessions(key))


def add_acs_routes(app: web.Application) -> None:
    app.router.add_post(ACS_PREFIX + "/{mac}/queue", _queue)
    app.router.add_post(ACS_PREFIX + "/{mac}/connect", _connect)
    app.router.add_get(ACS_PREFIX + "/sessions", _sessions)
    app.router.add_get(ACS_PREFIX + "/sessions/{mac}", _sessions)


class AcsCallError(Exception):
    """The lab answered an ACS call with an error (its message is the lab's)."""


def call(state_dir: Path, method: str, path: str, data: dict[str, Any] | None = None,
         timeout: float = 30.0) -> Any:
    """`method path` on the lab's control socket with a JSON body; the JSON answer."""
    from labkit.services.admin import control_request

    status, answer = control_request(state_dir, method, path, data, timeout)
    try:
        parsed = json.loads(answer)
    except ValueError:
        parsed = {"error": answer.decode(errors="replace").strip()}
    if status != 200:
        error = parsed.get("error") if isinstance(parsed, dict) else None
        raise AcsCallError(f"{status}: {error or parsed}")
    return parsed
