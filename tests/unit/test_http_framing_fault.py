"""The kit's own framing (fault rules `version`, `chunked`, `no_length`...): the bytes on the wire."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from labkit.inventory.faults import parse_cli_rule
from labkit.plan.faults import http_action
from labkit.protocols.http_wire import read_response
from labkit.services.http_conn import RawResponse, framing_of

BODY = b"<flat-profile>" + b"x" * 100 + b"</flat-profile>"


async def _wire(rule: str) -> bytes:
    fault = parse_cli_rule(rule).http
    assert fault is not None
    framing = framing_of([http_action(fault)])
    assert framing is not None

    async def handler(request: web.Request) -> web.StreamResponse:
        return RawResponse(200, (("Server", "labkit"),), BODY, framing)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /a.xml HTTP/1.1\r\nHost: x\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 30)  # the kit closes after its answer
        writer.close()
        return data
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("rule, start, framing", [
    ("{http: {version: '1.0'}}", b"HTTP/1.0 200 OK\r\n", "length"),
    ("{http: {version: '1.0', no_length: true}}", b"HTTP/1.0 200 OK\r\n", "close"),
    ("{http: {chunked: true, chunk_size: 7, chunk_extension: 'a=b', trailers: {X-T: v}}}",
     b"HTTP/1.1 200 OK\r\n", "chunked"),
    ("{http: {no_length: true}}", b"HTTP/1.1 200 OK\r\n", "close"),
])
def test_framed_answers(rule: str, start: bytes, framing: str) -> None:
    wire = asyncio.run(_wire(rule))
    assert wire.startswith(start)
    response = read_response(wire)
    assert response.body == BODY and response.framing == framing
    if framing == "chunked":
        assert b"\r\n7;a=b\r\n" in wire and response.trailers == (("X-T", "v"),)
    if framing == "close":
        assert response.header("Content-Length") is None


def test_schema_rejects_bad_framing() -> None:
    from labkit.inventory.faults import FaultError
    with pytest.raises(FaultError, match="version"):
        parse_cli_rule("{http: {version: '2'}}")
    with pytest.raises(FaultError, match="chunk_extension"):
        parse_cli_rule("{http: {chunked: true, chunk_extension: 'a;b'}}")
