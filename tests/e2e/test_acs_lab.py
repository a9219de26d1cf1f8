"""The ACS in a whole lab (`run_lab`, ports moved like every service's), and `labkit acs ...`
against it through the control socket: queue a request, knock with a Connection Request, list
the sessions; the RPCs reach the status model and the phone's timeline."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from labkit.inventory.load import load
from labkit.plan.build import build_plan
from labkit.protocols.cwmp.values import Value
from labkit.services.admin import AdminSettings, ask
from labkit.services.running import LogSettings, run_lab
from labkit.services.supervisor import STANDARD_PORTS, free_port_offset
from tests.acs_cpe import ConnectionRequestListener, LabCpe
from tests.helpers import labkit, write_lab

MAC = "00:56:2b:00:00:01"
LAB = f"""\
lab: {{domain: t.example, address: 192.0.2.1/24}}
models: {{CP-8851-3PCC: {{}}}}
phones: [{{mac: "{MAC}", model: CP-8851-3PCC, ip: 192.0.2.9, serial: FCH0001}}]
acs:
  connection_request: {{user: acs, password: knock}}
  defaults: {{set: {{Device.DeviceInfo.ProvisioningCode: bench}}}}
"""


def test_labkit_acs_commands_against_a_running_lab(tmp_path: Path) -> None:
    plan = build_plan(load(write_lab(tmp_path / "lab", LAB, firmware=False)))
    state = tmp_path / "state"
    offset = free_port_offset()
    log = tmp_path / "events.jsonl"

    async def main() -> None:
        async with run_lab(plan, port_offset=offset, state_dir=state, admin=AdminSettings(),
                           log=LogSettings(log)) as lab:
            assert lab.endpoints["acs"].port == STANDARD_PORTS["acs"] + offset
            cpe = LabCpe(f"http://127.0.0.1:{lab.endpoints['acs'].port}/", "FCH0001")
            listener = ConnectionRequestListener("acs", "knock")
            cpe.params["Device.ManagementServer.ConnectionRequestURL"] = Value.string(await listener.start())
            try:
                first = await cpe.session("0 BOOTSTRAP", "1 BOOT")
                assert [type(r).__name__ for r in first.received] == ["SetParameterValues"]
                asked = ("acs", "get", MAC, "Device.DeviceInfo.ProvisioningCode", "--now",
                         "--state", str(state), "--json")
                queued = await asyncio.to_thread(labkit, *asked)
                assert queued.returncode == 0, queued.stderr
                answer = json.loads(queued.stdout)
                assert answer["queued"] == "GetParameterValues" and answer["connection_request"]["ok"]
                await asyncio.wait_for(listener.knocked.wait(), 10)
                second = await cpe.session("6 CONNECTION REQUEST")
                assert [type(r).__name__ for r in second.received] == ["GetParameterValues"]
            finally:
                await listener.close()
            listed = await asyncio.to_thread(labkit, "acs", "sessions", MAC, "--state", str(state), "--json")
            assert listed.returncode == 0, listed.stderr
            sessions = json.loads(listed.stdout)["sessions"]
            assert [s["events"] for s in sessions] == [["0 BOOTSTRAP", "1 BOOT"], ["6 CONNECTION REQUEST"]]
            assert sessions[1]["exchanges"][1]["answer"] == \
                "GetParameterValuesResponse Device.DeviceInfo.ProvisioningCode=bench"
            human = await asyncio.to_thread(labkit, "acs", "sessions", "--state", str(state))
            assert "GetParameterValues Device.DeviceInfo.ProvisioningCode -> " in human.stdout
            for args, queued_name, waiting in (
                    (("attributes", MAC, "Device.A=2"), "SetParameterAttributes", 1),
                    (("rpc", MAC, "add", "Device.Services.X."), "AddObject", 2),
                    (("set", MAC, "Device.A:unsignedInt=5", "Device.B=x"), "SetParameterValues", 3)):
                said = await asyncio.to_thread(labkit, "acs", *args, "--state", str(state), "--json")
                assert said.returncode == 0, said.stderr
                assert (json.loads(said.stdout)["queued"], json.loads(said.stdout)["waiting"]) == (
                    queued_name, waiting)
            bad = await asyncio.to_thread(labkit, "acs", "set", MAC, "NoEquals", "--state", str(state))
            assert bad.returncode == 2 and "expected Name=value" in bad.stderr
            snapshot = await asyncio.to_thread(ask, state)
            assert snapshot["services"]["acs"]["requests"] >= 4
            timeline = await asyncio.to_thread(ask, state, f"/api/phones/{MAC}")
            actions = [e["action"] for e in timeline["events"] if e["service"] == "acs"]
            assert actions[:2] == ["Inform", "SetParameterValues"] and "connection-request" in actions

    asyncio.run(main())
    told = labkit("timeline", MAC, "--log", str(log), "--json")  # the TR-069 story in the timeline
    assert told.returncode == 0, told.stderr
    acs = [(e["action"], e["request"]) for e in json.loads(told.stdout)["events"] if e["service"] == "acs"]
    assert ("Inform", "Inform 0 BOOTSTRAP,1 BOOT") in acs and ("Inform", "Inform 6 CONNECTION REQUEST") in acs
    text = labkit("timeline", MAC, "--log", str(log)).stdout
    assert "acs    SetParameterValues SetParameterValues Device.DeviceInfo.ProvisioningCode=bench" in text


def test_labkit_acs_without_an_acs_says_so(tmp_path: Path) -> None:
    plan = build_plan(load(write_lab(tmp_path / "lab", LAB[:LAB.index("acs:")], firmware=False)))
    state = tmp_path / "state"

    async def main() -> None:
        async with run_lab(plan, port_offset=free_port_offset(), state_dir=state, admin=AdminSettings()):
            said = await asyncio.to_thread(labkit, "acs", "reboot", MAC, "--state", str(state))
            assert said.returncode == 1 and "this lab runs no ACS" in said.stderr

    asyncio.run(main())
