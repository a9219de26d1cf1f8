"""The issue's TR-069 stories with the virtual phone's CWMP flow against a whole lab on loopback
(the kit's ACS and HTTP over real sockets, the phone's Connection Request listener with Digest):
ACS found through option 43 -> BOOTSTRAP -> SetParameterValues -> VALUE CHANGE; firmware Download
-> TransferComplete -> M Download and BOOT; Connection Request -> session; a wrong ACS password
-> 401; the ACS answers 8005 -> the phone retries."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from labkit.events import EventRecorder
from labkit.inventory.faults import FaultRule
from labkit.inventory.load import load
from labkit.phone.cwmp import CwmpSettings
from labkit.plan.build import Plan, build_plan
from labkit.protocols.cwmp import rpc
from labkit.protocols.cwmp.soap import decode
from labkit.services.acs import AcsServer
from labkit.services.running import run_lab
from labkit.services.supervisor import STANDARD_PORTS, RunningLab, free_port_offset
from tests.acs_phone import phone_and_driver
from tests.helpers import FIRMWARE, write_lab

MAC = "00:56:2b:00:00:01"
OLD_LOAD = "sip88xx.11-3-1MPP-0001"
NAME = "Device.X_CISCO_COM_Display_Name_1_"
LAB = f"""\
lab: {{domain: t.example, address: 192.0.2.1/24}}
dhcp:
  classes:
    - match: "*dslforum.org*"
      options:
        vendor_specific: {{tr069: {{acs_url: "http://acs.t.example:7547/", retry_min_wait: 5}}}}
dns: {{records: {{acs: 192.0.2.1}}}}
models: {{CP-8851-3PCC: {{firmware: {FIRMWARE}}}}}
phones: [{{mac: "{MAC}", model: CP-8851-3PCC, ip: 192.0.2.9, serial: FCH0001}}]
acs:
  auth: {{user: cpe, password: right, scheme: digest}}
  connection_request: {{user: labkit, password: labkit}}
"""
SET_AND_WATCH = f"""\
  defaults:
    set: {{{NAME}: set by the ACS}}
    attributes: {{{NAME}: {{notification: 2}}}}
"""
RIGHT = CwmpSettings(username="cpe", password="right", periodic_enable=False)


def run(tmp_path: Path, extra: str, check: Callable[[RunningLab, AcsServer, EventRecorder], Awaitable[None]],
        faults: list[FaultRule] | None = None) -> None:
    plan: Plan = build_plan(load(write_lab(tmp_path / "lab", LAB + extra)))
    recorder = EventRecorder()

    async def main() -> None:
        async with run_lab(plan, port_offset=free_port_offset(), state_dir=tmp_path / "state",
                           sinks=[recorder], faults=faults, fault_seed=1) as lab:
            acs = lab.services["acs"]
            assert isinstance(acs, AcsServer)
            await check(lab, acs, recorder)

    asyncio.run(main())


def ports(lab: RunningLab) -> dict[int, int]:
    return {STANDARD_PORTS[name]: e.port for name, e in lab.endpoints.items()
            if name in ("http", "https", "acs")}


def informs(recorder: EventRecorder) -> list[str]:
    return [e.request for e in recorder.events if e.service == "acs" and e.action == "Inform"]


def test_option_43_bootstrap_set_parameter_values_then_value_change(tmp_path: Path) -> None:
    async def check(lab: RunningLab, acs: AcsServer, recorder: EventRecorder) -> None:
        phone, driver = await phone_and_driver(lab.plan.inventory, MAC, ports(lab), load=OLD_LOAD,
                                               settings=RIGHT)
        try:
            assert phone.acs_url == "http://acs.t.example:7547/"  # from the plan's option 43
            await driver.run(phone)
            assert phone.tree.text(NAME) == "set by the ACS"
            phone.tree.apply_profile({"Display_Name_1_": "changed on the web page"})  # a local change
            await driver.run(phone)
        finally:
            await driver.listener.close()
        sessions = acs.sessions(MAC)["sessions"]
        assert [s["events"] for s in sessions] == [["0 BOOTSTRAP", "1 BOOT"], ["1 BOOT", "4 VALUE CHANGE"]]
        first = [(x["action"], x["result"]) for x in sessions[0]["exchanges"]]
        assert first == [("Inform", "ok"), ("SetParameterValues", "ok"), ("SetParameterAttributes", "ok"),
                         ("cwmp", "ok")]
        assert informs(recorder) == ["Inform 0 BOOTSTRAP,1 BOOT", "Inform 1 BOOT,4 VALUE CHANGE"]

    run(tmp_path, SET_AND_WATCH, check)


def test_firmware_download_transfer_complete_then_boot(tmp_path: Path) -> None:
    async def check(lab: RunningLab, acs: AcsServer, recorder: EventRecorder) -> None:
        phone, driver = await phone_and_driver(lab.plan.inventory, MAC, ports(lab), load=OLD_LOAD,
                                               settings=RIGHT)
        try:
            await driver.run(phone)
        finally:
            await driver.listener.close()
        assert driver.fetched == [(f"http://prov.t.example/{FIRMWARE}", 200)]  # from the lab's HTTP
        assert phone.state.firmware == FIRMWARE.removesuffix(".loads")
        sessions = acs.sessions(MAC)["sessions"]
        assert sessions[0]["exchanges"][1]["request"].startswith("Download 1 Firmware Upgrade Image")
        assert {"1 BOOT", "7 TRANSFER COMPLETE", "M Download"} <= set(sessions[1]["events"])
        assert sessions[1]["exchanges"][1]["request"] == "TransferComplete 'labkit firmware' fault 0"

    run(tmp_path, "  defaults: {downloads: [{file_type: firmware}]}\n", check)


def test_a_connection_request_opens_a_session_with_what_waits(tmp_path: Path) -> None:
    async def check(lab: RunningLab, acs: AcsServer, recorder: EventRecorder) -> None:
        settings = CwmpSettings(username="cpe", password="right", duration=7200, periodic_interval=3600)
        phone, driver = await phone_and_driver(lab.plan.inventory, MAC, ports(lab), load=OLD_LOAD,
                                               settings=settings)
        driver.expect_knock = True
        running = asyncio.create_task(driver.run(phone))
        try:
            await asyncio.wait_for(driver.idle.wait(), 30)  # the BOOTSTRAP session is over
            acs.queue(MAC, rpc.GetParameterValues(("Device.DeviceInfo.SoftwareVersion",)))
            knocked = await acs.connect(MAC)
            assert knocked["ok"], knocked
            await asyncio.wait_for(running, 60)
        finally:
            running.cancel()
            await driver.listener.close()
        sessions = acs.sessions(MAC)["sessions"]
        assert [s["events"] for s in sessions][:2] == [["0 BOOTSTRAP", "1 BOOT"], ["6 CONNECTION REQUEST"]]
        asked = sessions[1]["exchanges"][1]
        assert asked["request"] == "GetParameterValues Device.DeviceInfo.SoftwareVersion"
        assert asked["result"] == "ok"
        assert asked["answer"] == f"GetParameterValuesResponse Device.DeviceInfo.SoftwareVersion={OLD_LOAD}"
        assert sessions[2]["events"] == ["2 PERIODIC"]

    run(tmp_path, "", check)


def test_a_wrong_acs_password_gets_401_and_no_session(tmp_path: Path) -> None:
    async def check(lab: RunningLab, acs: AcsServer, recorder: EventRecorder) -> None:
        wrong = CwmpSettings(username="cpe", password="wrong", periodic_enable=False, max_sessions=3,
                             duration=10_000)
        phone, driver = await phone_and_driver(lab.plan.inventory, MAC, ports(lab), load=OLD_LOAD,
                                               settings=wrong)
        try:
            await driver.run(phone)
        finally:
            await driver.listener.close()
        assert {status for status, _ in driver.posts} == {401}
        assert phone.state.retry_count == 3 and not phone.state.bootstrapped
        assert acs.sessions(MAC)["sessions"] == []
        refused = [e for e in recorder.events if e.service == "acs" and e.result == "unauthorized"]
        assert len(refused) == 6  # each session's POST, and its answer with the wrong Digest

    run(tmp_path, "", check)


def test_8005_retry_request_makes_the_phone_retry_with_its_count(tmp_path: Path) -> None:
    rule = FaultRule.model_validate({"name": "retry later", "match": {"name": "Inform"},
                                     "acs": {"fault": 8005}, "when": {"first": 2}})

    async def check(lab: RunningLab, acs: AcsServer, recorder: EventRecorder) -> None:
        settings = CwmpSettings(username="cpe", password="right", periodic_enable=False, duration=100_000)
        phone, driver = await phone_and_driver(lab.plan.inventory, MAC, ports(lab), load=OLD_LOAD,
                                               settings=settings)
        try:
            await driver.run(phone)
        finally:
            await driver.listener.close()
        sessions = acs.sessions(MAC)["sessions"]
        assert [s["outcome"] for s in sessions] == ["fault-8005", "fault-8005", "ok"]
        sent = [decode(body).body for status, body in driver.posts if status == 200]
        assert [i.retry_count for i in sent if isinstance(i, rpc.Inform)] == [0, 1, 2]  # RetryCount
        fired = [e for e in recorder.events if e.service == "acs" and e.action == "fault"]
        assert [e.detail["rule"] for e in fired] == ["retry later", "retry later"]
        assert phone.state.bootstrapped and phone.state.retry_count == 0

    run(tmp_path, "", check, faults=[rule])
