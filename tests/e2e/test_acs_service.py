"""The ACS service over real HTTP(S) on loopback, with a CPE driven by the CWMP core's CPE session:
planned actions in the first session, Digest, the operator's queue and Connection Request, the
fault rules (8005, wrong cwmp:ID, 401, dropped session), HTTPS with the lab CA, and every RPC as
an event of service "acs"."""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from labkit.events import EventRecorder, StaticDirectory
from labkit.faults.engine import FaultEngine
from labkit.faults.hooks import Faults
from labkit.inventory.faults import FaultRule
from labkit.inventory.load import load
from labkit.plan.build import Plan, build_plan
from labkit.plan.faults import plan_faults
from labkit.protocols.cwmp import rpc
from labkit.protocols.cwmp.soap import decode
from labkit.protocols.cwmp.values import Value
from labkit.protocols.http import digest_authorization
from labkit.services.acs import AcsServer, start_acs, start_acs_service
from labkit.services.context import Endpoint, StartContext
from labkit.services.filetree import FileTree
from tests.acs_cpe import ConnectionRequestListener, LabCpe
from tests.helpers import write_lab

MAC = "00:56:2b:00:00:01"
SERIAL = "FCH0001"
LAB = f"""\
lab: {{domain: t.example, address: 192.0.2.1/24}}
models: {{CP-8851-3PCC: {{}}}}
phones: [{{mac: "{MAC}", model: CP-8851-3PCC, ip: 192.0.2.9, serial: {SERIAL}}}]
acs:
  auth: {{user: cpe, password: right, scheme: digest}}
  connection_request: {{user: acs, password: knock}}
  defaults:
    periodic_inform_interval: 300
    set: {{Device.DeviceInfo.ProvisioningCode: bench}}
  phones:
    "{MAC}": {{add_objects: [Device.Services.VoiceService.], reboot: true}}
"""


def plan_of(tmp_path: Path, text: str = LAB) -> Plan:
    return build_plan(load(write_lab(tmp_path / "lab", text, firmware=False)))


def context(tmp_path: Path, plan: Plan, bus: EventRecorder,
            rules: list[FaultRule] | None = None) -> StartContext:
    faults = Faults()
    if rules:
        engine = FaultEngine(plan_faults(rules), random.Random(1))
        faults = Faults.build(engine, bus, plan.fault_phones, started=0.0)
    return StartContext(FileTree(plan.files), bus, StaticDirectory({}), plan.known_macs, tmp_path / "state",
                        faults)


def run(tmp_path: Path, check: Callable[[AcsServer, LabCpe, EventRecorder], Awaitable[None]], *,
        text: str = LAB, rules: list[FaultRule] | None = None) -> None:
    plan = plan_of(tmp_path, text)
    bus = EventRecorder()

    async def main() -> None:
        ctx = context(tmp_path, plan, bus, rules)
        server = await start_acs(plan.acs, Endpoint("acs", "127.0.0.1", 0, "tcp"), ctx)
        try:
            cpe = LabCpe(f"http://127.0.0.1:{server.port}/", SERIAL, user="cpe", password="right")
            await check(server, cpe, bus)
        finally:
            await server.close()

    asyncio.run(main())


def test_the_first_session_carries_the_planned_requests_in_order_then_204(tmp_path: Path) -> None:
    async def check(server: AcsServer, cpe: LabCpe, bus: EventRecorder) -> None:
        first = await cpe.session("0 BOOTSTRAP", "1 BOOT")
        names = [type(r).__name__ for r in first.received]
        assert names == ["SetParameterValues", "AddObject", "Reboot"]
        assert first.statuses[-1] == 204 and not first.retry
        assert cpe.params["Device.ManagementServer.PeriodicInformInterval"] == Value("unsignedInt", 300)
        assert cpe.params["Device.DeviceInfo.ProvisioningCode"] == Value.string("bench")
        assert cpe.reboots == 1
        # the next session (after the reboot) gets nothing: the plan was applied
        again = await cpe.session("1 BOOT", "M Reboot")
        assert again.received == [] and again.statuses[-1] == 204
        acs = [e for e in bus.events if e.service == "acs" and e.action != "auth"]
        assert [e.action for e in acs][:2] == ["Inform", "SetParameterValues"]
        assert all(e.phone == MAC for e in acs)
        # Digest's first 401
        assert any(e.action == "auth" and e.result == "unauthorized" for e in bus.events)
        recorded = server.sessions(MAC)
        assert [s["outcome"] for s in recorded["sessions"]] == ["ok", "ok"]
        assert recorded["sessions"][0]["events"] == ["0 BOOTSTRAP", "1 BOOT"]

    run(tmp_path, check)


def test_a_bootstrap_gets_the_plan_again_but_not_the_reboot(tmp_path: Path) -> None:
    async def check(server: AcsServer, cpe: LabCpe, bus: EventRecorder) -> None:
        await cpe.session("0 BOOTSTRAP")
        again = await cpe.session("0 BOOTSTRAP")
        assert [type(r).__name__ for r in again.received] == ["SetParameterValues", "AddObject"]

    run(tmp_path, check)


def test_a_wrong_password_is_refused_with_401_and_no_session(tmp_path: Path) -> None:
    async def check(server: AcsServer, cpe: LabCpe, bus: EventRecorder) -> None:
        refused = await cpe.session("0 BOOTSTRAP", password="wrong")
        assert refused.statuses == [401] and refused.retry
        assert server.sessions()["sessions"] == [] and server.handler.live == {}
        assert [e.result for e in bus.events if e.service == "acs"] == ["unauthorized", "unauthorized"]

    run(tmp_path, check)


def test_an_operator_request_waits_for_the_next_session_and_a_connection_request_opens_it(
        tmp_path: Path) -> None:
    async def check(server: AcsServer, cpe: LabCpe, bus: EventRecorder) -> None:
        listener = ConnectionRequestListener("acs", "knock")
        url = await listener.start()
        try:
            cpe.params["Device.ManagementServer.ConnectionRequestURL"] = Value.string(url)
            await cpe.session("0 BOOTSTRAP")
            queued = server.queue(MAC, rpc.GetParameterValues(("Device.DeviceInfo.ProvisioningCode",)))
            assert queued["waiting"] == 1 and queued["in"] == "the next session"
            knocked = await server.connect(MAC)
            assert knocked["ok"] and knocked["status"] == 200, knocked
            await asyncio.wait_for(listener.knocked.wait(), 10)
            assert listener.refused == 1  # the Digest challenge first
            answered = await cpe.session("6 CONNECTION REQUEST")
            assert [type(r).__name__ for r in answered.received] == ["GetParameterValues"]
            exchanges = server.sessions(MAC)["sessions"][-1]["exchanges"]
            assert exchanges[1]["answer"].startswith("GetParameterValuesResponse Device.DeviceInfo")
        finally:
            await listener.close()
        cr = [e for e in bus.events if e.action == "connection-request"]
        assert len(cr) == 1 and cr[0].result == "ok" and cr[0].phone == MAC

    run(tmp_path, check)


def test_a_connection_request_without_an_inform_says_why(tmp_path: Path) -> None:
    async def check(server: AcsServer, cpe: LabCpe, bus: EventRecorder) -> None:
        knocked = await server.connect(MAC)
        assert not knocked["ok"] and "no Connection Request URL" in knocked["detail"]

    run(tmp_path, check)


def test_fault_8005_on_the_inform_makes_the_cpe_retry(tmp_path: Path) -> None:
    rule = FaultRule.model_validate({"match": {"name": "Inform"}, "acs": {"fault": 8005},
                                     "when": {"first": 1}})

    async def check(server: AcsServer, cpe: LabCpe, bus: EventRecorder) -> None:
        first = await cpe.session("0 BOOTSTRAP")
        assert first.retry and first.facts[-1].result == "fault-8005"
        second = await cpe.session("0 BOOTSTRAP", retry_count=1)
        assert not second.retry and len(second.received) == 3
        assert any(e.action == "fault" and e.service == "acs" for e in bus.events)
        assert server.sessions()["sessions"][0]["outcome"] == "fault-8005"

    run(tmp_path, check, rules=[rule])


def test_a_wrong_id_and_a_dropped_session_show_on_the_cpe(tmp_path: Path) -> None:
    rules = [FaultRule.model_validate({"match": {"name": "Inform"}, "acs": {"wrong_id": True},
                                       "when": {"first": 1}}),
             FaultRule.model_validate({"match": {"name": "empty"}, "acs": {"drop": True},
                                       "when": {"first": 1}})]

    async def check(server: AcsServer, cpe: LabCpe, bus: EventRecorder) -> None:
        first = await cpe.session("0 BOOTSTRAP")
        assert first.facts[0].result == "wrong-id"
        assert first.error is not None  # the empty POST's connection was closed unanswered
        assert server.sessions()["sessions"][0]["outcome"] == "dropped"

    run(tmp_path, check, rules=rules)


def test_a_401_fault_refuses_even_the_right_credentials(tmp_path: Path) -> None:
    rule = FaultRule.model_validate({"acs": {"unauthorized": True}, "when": {"first": 1}})

    async def check(server: AcsServer, cpe: LabCpe, bus: EventRecorder) -> None:
        refused = await cpe.session("0 BOOTSTRAP")
        assert refused.statuses == [401] and refused.retry
        later = await cpe.session("0 BOOTSTRAP")
        assert later.statuses[-1] == 204

    run(tmp_path, check, rules=[rule])


def test_https_with_the_lab_ca_and_the_ca_file_served(tmp_path: Path) -> None:
    text = LAB.replace("acs:\n", "acs:\n  https: true\n  defaults: {downloads: [{file_type: ca}]}\n", 1)
    text = text.replace("  defaults:\n    periodic_inform_interval: 300\n"
                        "    set: {Device.DeviceInfo.ProvisioningCode: bench}\n", "")
    plan = plan_of(tmp_path, text)
    bus = EventRecorder()

    async def main() -> None:
        ctx = context(tmp_path, plan, bus)
        server = await start_acs_service(plan, Endpoint("acs", "127.0.0.1", 0, "tcp"), ctx)
        try:
            trust = ssl.create_default_context(cafile=str(tmp_path / "state" / "ca" / "ca.pem"))
            trust.check_hostname = False
            cpe = LabCpe(f"https://127.0.0.1:{server.port}/", SERIAL, user="cpe", password="right",
                          ssl_context=trust)
            done = await cpe.session("0 BOOTSTRAP")
            assert [type(r).__name__ for r in done.received] == ["AddObject", "Download", "Reboot"]
            download = done.received[1]
            assert isinstance(download, rpc.Download) and download.file_type == rpc.CUSTOM_CA
            assert download.url.endswith(":7547/labkit/ca.pem")
            async with aiohttp.ClientSession() as client, client.get(
                    f"https://127.0.0.1:{server.port}/labkit/ca.pem", ssl=trust) as response:
                assert response.status == 200 and b"BEGIN CERTIFICATE" in await response.read()
        finally:
            await server.close()

    asyncio.run(main())


def test_hold_requests_is_set_while_the_acs_has_requests_queued(tmp_path: Path) -> None:
    text = LAB.replace("acs:\n", "acs:\n  hold_requests: true\n", 1)

    async def check(server: AcsServer, cpe: LabCpe, bus: EventRecorder) -> None:
        async with aiohttp.ClientSession() as client:
            url = cpe.url
            first = await client.post(url, data=cpe.start_body("0 BOOTSTRAP"))
            header = digest_authorization(first.headers["WWW-Authenticate"], "POST", "/", "cpe", "right")
            answer = await client.post(url, data=cpe.start_body("0 BOOTSTRAP"),
                                       headers={"Authorization": header})
            envelope = decode(await answer.read())
            assert isinstance(envelope.body, rpc.InformResponse) and envelope.hold_requests

    run(tmp_path, check, text=text)
