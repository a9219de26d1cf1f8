"""Pieces the HTTP(S) service shares between its file, dynamic-route, report and cloud answers:
one request as the event log sees it (Exchange), fault answers, shaped bodies, early closes and
the content type of a path."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from labkit.events import Event, make_event
from labkit.protocols.http_faults import HttpFaultAction
from labkit.services.filetree import ServedFile

SERVER_HEADER = "labkit"


@dataclass
class Exchange:
    """One request as the event log sees it: who asked what, and the detail learnt on the way."""

    scheme: str
    request: web.Request
    phone: str | None
    client: str
    path: str
    clock: Callable[[], float]
    detail: dict[str, str] = field(default_factory=dict)
    body: bytes = b""  # a POST or PUT body, once read
    action: str | None = None  # the event's action; default: the method

    @property
    def method(self) -> str:
        return self.request.method

    def event(self, answer: str, result: str) -> Event:
        return make_event(self.scheme, self.client, self.phone, self.action or self.method.lower(), self.path,
                          answer, result, self.clock, **self.detail)



def fault_status(action: HttpFaultAction) -> web.Response:
    assert action.status is not None
    headers = {"Server": SERVER_HEADER}
    if action.location:
        headers["Location"] = action.location
    if action.authenticate:
        key = "Proxy-Authenticate" if action.status == 407 else "WWW-Authenticate"
        headers[key] = action.authenticate
    return web.Response(status=action.status, headers=headers)


async def send_shaped(request: web.Request, served: ServedFile, sent: bytes, announced: int,
                       rate: int | None) -> web.StreamResponse:
    """Send `sent` announcing `announced` bytes, at `rate` bytes/s if given (a fault's body)."""
    response = web.StreamResponse(status=200, headers={"Server": SERVER_HEADER,
                                                       "Content-Type": content_type(served.path)})
    response.content_length = announced
    await response.prepare(request)
    if rate is None:
        await response.write(sent)
    else:
        step = max(1, rate // 10)
        for offset in range(0, len(sent), step):
            await response.write(sent[offset : offset + step])
            await asyncio.sleep(0.1)
    if len(sent) < announced and request.transport is not None:
        request.transport.close()  # the client is left waiting for bytes that never come
    else:
        await response.write_eof()
    return response


async def close_with(request: web.Request, status: int) -> web.StreamResponse:
    """Answer `status` and close: the rest of the request body is not worth waiting for."""
    response = web.Response(status=status, headers={"Server": SERVER_HEADER, "Connection": "close"})
    await response.prepare(request)
    await response.write_eof()
    if request.transport is not None:
        request.transport.close()
    return response


def content_type(path: str) -> str:
    if path.endswith(".xml"):
        return "application/xml"
    return "application/octet-stream"
