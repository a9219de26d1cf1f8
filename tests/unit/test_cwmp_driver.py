"""The phone's CWMP driver over real loopback sockets, against a small in-test ACS built on the
sans-IO AcsSession: Digest to the ACS, a firmware Download over HTTP, the Connection Request
listener with Digest, a wrong ACS password."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from labkit.phone.clients import HttpClient
from labkit.phone.core import Outcome, PhoneConfig
from labkit.phone.cwmp import CwmpSettings, vendor_class
from labkit.phone.cwmp_driver import ConnectionRequests, run_cwmp
from labkit.phone.driver import LabAccess, PhoneRun, VirtualClock
from labkit.phone.effects import Lease
from labkit.phone.network import DhcpClient, DhcpSettings, NetworkMap
from labkit.protocols.cwmp import rpc
from labkit.protocols.cwmp.acs_session import AcsSession
from labkit.protocols.dhcp.options import Tr069
from labkit.protocols.http import DigestAuth, digest_authorization
from labkit.tls import ensure_server_certificate, server_ssl_context

MAC = "00:56:2b:04:36:15"
LAB = "10.42.0.1"
FIRMWARE = b"a firmware image"


class TinyAcs:
    """One AcsSession per session cookie, Digest on every POST, a firmware file."""

    def __init__(self, scripts: list[list[rpc.Rpc]], digest: DigestAuth,
                 tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.scripts = scripts
        self.digest = digest
        self.sessions: dict[str, AcsSession] = {}
        self.informs: list[rpc.Inform] = []
        self.unauthorized = 0
        self.changed = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.port = 0

    def _new(self) -> tuple[str, AcsSession]:
        script = self.scripts.pop(0) if self.scripts else []

        def on_inform(inform: rpc.Inform) -> Iterable[rpc.Rpc]:
            self.informs.append(inform)
            return script
        key = f"s{len(self.sessions) + 1}"
        self.sessions[key] = AcsSession(on_inform=on_inform)
        return key, self.sessions[key]

    async def cwmp(self, request: web.Request) -> web.Response:
        ok, _ = self.digest.check(request.headers.get("Authorization"), "POST", time.time())
        if not ok:
            self.unauthorized += 1
            self.changed.set()
            return web.Response(status=401, headers={"WWW-Authenticate": self.digest.challenge(time.time())})
        key = request.cookies.get("acs")
        session = self.sessions.get(key or "")
        if session is None:
            key, session = self._new()
        reply = session.receive(await request.read())
        response = web.Response(status=reply.status, body=reply.body or None, headers=dict(reply.headers))
        response.set_cookie("acs", key or "")
        self.changed.set()
        return response

    async def firmware(self, _: web.Request) -> web.Response:
        return web.Response(body=FIRMWARE)

    async def __aenter__(self) -> TinyAcs:
        app = web.Application()
        app.router.add_post("/acs", self.cwmp)
        app.router.add_get("/fw/{name}", self.firmware)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=self.tls)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait (bounded) until `condition` holds; a guard, not a timing assertion."""
        async with asyncio.timeout(60):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


async def _phone(acs: TinyAcs, password: str, body: Callable[[PhoneRun, asyncio.Task[Any]], Any],
                 ca: str | None = None, cr_port: int = 0, closed_http: bool = False) -> Outcome:
    network = NetworkMap(frozenset({LAB}), "127.0.0.1", 0)
    access = LabAccess(network, DhcpSettings(("127.0.0.1", 9)))
    config = PhoneConfig(MAC, "CP-8851-3PCC", "FCH2203001", seed=1)
    scheme = "https" if acs.tls is not None else "http"
    lease = Lease("10.42.0.50", LAB, {43: Tr069(f"{scheme}://{LAB}:{acs.port}/acs").to_suboptions()}, 3600)
    outcome = Outcome(MAC, lease=lease, params={"Enable_TR-069": "Yes"}, firmware=config.load)
    settings = CwmpSettings(cr_port=cr_port, duration=1e7, periodic_interval=10**8, username="cpe",
                            password=password, cr_username="acs", cr_password="crpw")
    async with HttpClient(network, ca) as http:
        if closed_http:  # as PhoneRun.run leaves the client it opened for its own address
            await http.__aexit__(None, None, None)
        run = PhoneRun(config, access, DhcpClient(access.dhcp), http, VirtualClock(scale=100))
        task = asyncio.create_task(run_cwmp(run, outcome, settings))
        try:
            await body(run, task)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    return outcome


def test_sessions_download_and_connection_request_over_loopback() -> None:
    async def scenario() -> None:
        digest = DigestAuth("cpe", "secret", "acs-realm")
        async with TinyAcs([], digest) as acs:
            url = f"http://{LAB}:{acs.port}/fw/sip88xx.12-0-1MPP-0001.loads"
            acs.scripts.append([rpc.Download("fw-1", rpc.FIRMWARE, url, file_size=len(FIRMWARE))])

            async def body(run: PhoneRun, task: asyncio.Task[Any]) -> None:
                await acs.until(lambda: len(acs.informs) >= 2 and all(s.done for s in acs.sessions.values()))
                first, second = acs.informs[:2]
                assert first.event_codes() == ("0 BOOTSTRAP", "1 BOOT")
                assert set(second.event_codes()) == {"1 BOOT", "7 TRANSFER COMPLETE", "M Download",
                                                     "4 VALUE CHANGE"}
                done = [f for f in acs.sessions["s2"].log if f.action == "TransferComplete"]
                assert done and "fault 0" in done[0].request
                cr_url = {p.name: p.value.text() for p in first.parameters}[
                    "Device.ManagementServer.ConnectionRequestURL"]
                assert cr_url.startswith("http://127.0.0.1:")
                async with aiohttp.ClientSession() as client:
                    async with client.get(cr_url) as refused:
                        assert refused.status == 401
                        challenge = refused.headers["WWW-Authenticate"]
                    path = cr_url.split(":", 2)[2].partition("/")[2]
                    auth = digest_authorization(challenge, "GET", "/" + path, "acs", "crpw")
                    async with client.get(cr_url, headers={"Authorization": auth}) as accepted:
                        assert accepted.status == 200
                await acs.until(lambda: len(acs.informs) >= 3)
                assert acs.informs[2].event_codes() == ("6 CONNECTION REQUEST",)
                assert run.requests.get("cwmp", 0) >= 7

            await _phone(acs, "secret", body)

    asyncio.run(scenario())


def test_a_wrong_acs_password_is_refused_and_retried() -> None:
    async def scenario() -> None:
        async with TinyAcs([], DigestAuth("cpe", "secret", "acs-realm")) as acs:
            async def body(run: PhoneRun, task: asyncio.Task[Any]) -> None:
                # each session: the bare POST, then the one with (wrong) credentials; then a retry
                await acs.until(lambda: acs.unauthorized >= 4)
                assert acs.informs == [] and not task.done()

            await _phone(acs, "wrong", body)

    asyncio.run(scenario())


def test_an_https_acs_with_the_lab_ca(tmp_path: Path) -> None:
    credentials = ensure_server_certificate(tmp_path, "cwmp", ["acs.lab.example"], [LAB])
    assert credentials.ca_path is not None

    async def scenario() -> None:
        tls = server_ssl_context(credentials)
        async with TinyAcs([[rpc.GetParameterValues(("Device.DeviceInfo.SerialNumber",))]],
                           DigestAuth("cpe", "secret", "acs-realm"), tls) as acs:
            async def body(run: PhoneRun, task: asyncio.Task[Any]) -> None:
                await acs.until(lambda: bool(acs.sessions) and acs.sessions["s1"].done)
                assert acs.informs[0].event_codes() == ("0 BOOTSTRAP", "1 BOOT")
                assert "SerialNumber=FCH2203001" in acs.sessions["s1"].log[1].answer

            outcome = await _phone(acs, "secret", body, ca=str(credentials.ca_path))
            steps = [(s.kind, s.ok) for s in outcome.timeline]
            assert steps[0] == ("cwmp", True)
            assert ("Inform", True) in steps and ("GetParameterValues", True) in steps

    asyncio.run(scenario())


def test_a_taken_listener_port_and_a_closed_client_are_worked_around() -> None:
    async def scenario() -> None:
        url = f"http://{LAB}:{{port}}/fw/sip88xx.12-0-1MPP-0001.loads"
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = taken.getsockname()[1]
            async with TinyAcs([], DigestAuth("cpe", "secret", "acs-realm")) as acs:
                acs.scripts.append([rpc.Download("fw", rpc.FIRMWARE, url.format(port=acs.port))])

                async def body(run: PhoneRun, task: asyncio.Task[Any]) -> None:
                    await acs.until(lambda: len(acs.informs) >= 2)
                    cr_url = {p.name: p.value.text() for p in acs.informs[0].parameters}[
                        "Device.ManagementServer.ConnectionRequestURL"]
                    assert not cr_url.startswith(f"http://127.0.0.1:{busy}/")
                    assert "M Download" in acs.informs[1].event_codes()
                    await acs.until(lambda: acs.sessions["s2"].done)
                    done = [f.request for f in acs.sessions["s2"].log if f.action == "TransferComplete"]
                    assert done == ["TransferComplete 'fw' fault 0"]  # fetched with a new client

                await _phone(acs, "secret", body, cr_port=busy, closed_http=True)

    asyncio.run(scenario())


def test_connection_request_listener_wants_digest() -> None:
    async def scenario() -> None:
        listener = ConnectionRequests("acs", "pw", "/cr")
        port = await listener.start("127.0.0.1", 0)
        url = f"http://127.0.0.1:{port}/cr"
        try:
            async with aiohttp.ClientSession() as client:
                async with client.get(url) as first:
                    challenge = first.headers["WWW-Authenticate"]
                    assert first.status == 401 and challenge.startswith("Digest ")
                bad = digest_authorization(challenge, "GET", "/cr", "acs", "nope")
                async with client.get(url, headers={"Authorization": bad}) as refused:
                    assert refused.status == 401
                async with client.get(f"http://127.0.0.1:{port}/elsewhere") as missing:
                    assert missing.status == 404
                assert not listener.event.is_set()
                good = digest_authorization(challenge, "GET", "/cr", "acs", "pw")
                async with client.get(url, headers={"Authorization": good}) as ok:
                    assert ok.status == 200
            assert listener.event.is_set() and listener.received == 1 and listener.refused == 2
        finally:
            await listener.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(("mode", "sent"), [("append", b"CP-8851-3PCC dslforum.org"),
                                            ("replace", b"dslforum.org"), (None, b"CP-8851-3PCC")])
def test_the_dhcp_vendor_class_says_dslforum_org_when_tr069_is_on(mode: str | None, sent: bytes) -> None:
    network = NetworkMap()
    access = LabAccess(network, DhcpSettings(("127.0.0.1", 9)))
    config = PhoneConfig(MAC, "CP-8851-3PCC")
    run = PhoneRun(config, access, DhcpClient(access.dhcp), HttpClient(network, None), VirtualClock(),
                   vendor_class=vendor_class(config.model, mode) if mode else None)  # type: ignore[arg-type]
    assert run._identity().options()[60] == sent
