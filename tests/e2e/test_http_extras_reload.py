"""A reload swaps the HTTP extras in place: new route templates, the cloud switched on and off
(its certificate chosen by SNI on the same listener), without restarting the service."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

from labkit.events import EventRecorder, StaticDirectory
from labkit.inventory.load import load
from labkit.plan.build import build_plan
from labkit.services.context import Endpoint, StartContext
from labkit.services.filetree import FileTree
from labkit.services.http import start_http
from labkit.tls import ensure_server_certificate, server_ssl_context
from tests.helpers import write_lab

LAB = """\
lab: {domain: t.example, address: 192.0.2.1/24}
models: {CP-8851-3PCC: {}}
phones: [{mac: "00:56:2b:00:00:01", model: CP-8851-3PCC, ip: 192.0.2.9}]
cloud: {mode: MODE, default: "https://prov.t.example/$MA.cfg"}
routes:
  - path: /hello
    body: "{% raw %}WORD {{ phone.mac }}{% endraw %}"
"""


async def _get(port: int, path: str, server_name: str, context: ssl.SSLContext) -> tuple[bytes, str]:
    """GET over TLS with SNI `server_name`; the body and the certificate's subject CN."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context,
                                                   server_hostname=server_name)
    cert = writer.get_extra_info("peercert")
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {server_name}\r\nUser-Agent: Cisco-CP-8851-3PCC/11.3.1 "
                 "(00562b000001)\r\nConnection: close\r\n\r\n".encode())
    data = await asyncio.wait_for(reader.read(-1), 30)
    writer.close()
    subject = dict(item[0] for item in cert["subject"])
    return data.split(b"\r\n\r\n", 1)[1], str(subject["commonName"])


def test_reload_swaps_routes_and_the_cloud(tmp_path: Path) -> None:
    def plan(mode: str, word: str):
        return build_plan(load(write_lab(tmp_path / f"{mode}-{word}", LAB.replace("MODE", mode)
                                         .replace("WORD", word))))

    async def run() -> None:
        first = plan("emulate", "one")
        state = tmp_path / "state"
        ctx = StartContext(FileTree({}, tmp_path), EventRecorder(), StaticDirectory(), first.known_macs,
                           state)
        credentials = ensure_server_certificate(state, "lab", ["prov.t.example"], ["127.0.0.1"])
        server = await start_http(first.https, Endpoint("https", "127.0.0.1", 0, "tcp"), ctx,
                                  ssl_context=server_ssl_context(credentials))
        client = ssl.create_default_context(cafile=str(credentials.ca_path))
        try:
            body, name = await _get(server.port, "/hello", "prov.t.example", client)
            assert (body, name) == (b"one 00:56:2b:00:00:01", "prov.t.example")
            body, name = await _get(server.port, "/lab/v1/activation?mac=00562b000001", "activate.cisco.com",
                                    client)
            assert (body, name) == (b"https://prov.t.example/00562b000001.cfg\n", "activate.cisco.com")
            server.reload(plan("sinkhole", "two").https, ctx)
            body, name = await _get(server.port, "/hello", "prov.t.example", client)
            assert body == b"two 00:56:2b:00:00:01"
            asked = "/lab/v1/activation?mac=00562b000001"
            body, name = await _get(server.port, asked, "prov.t.example", client)
            assert body == b"not found\n"  # sinkholed again: the path is no longer answered
        finally:
            await server.close()

    asyncio.run(run())
