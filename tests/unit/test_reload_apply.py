"""Swapping a new plan into a running lab (labkit.services.reload), without sockets: a service
takes its new config, the phone directory's fixed addresses follow, fault counts carry on while
the rules stay, endpoint changes are kept and said, a broken load leaves the plan in place."""

from __future__ import annotations

import asyncio
import json
import random
import threading
from pathlib import Path
from typing import Any

from labkit.events import EventRecorder, StaticDirectory
from labkit.faults.engine import FaultEngine
from labkit.faults.hooks import Faults
from labkit.inventory.load import load
from labkit.plan.build import Plan, build_plan
from labkit.services.context import StartContext
from labkit.services.reload import RESULT_FILE, Reloader, ReloadError, apply_plan
from labkit.services.supervisor import RunningLab, endpoints
from tests.helpers import FIRMWARE, write_lab

LAB = f"""\
lab: {{domain: t.example, address: 192.0.2.1/24}}
models: {{CP-8851-3PCC: {{firmware: {FIRMWARE}}}}}
phones: [{{mac: "00:56:2b:00:00:01", model: CP-8851-3PCC, ip: 192.0.2.9}}]
faults: [{{name: gone, match: {{path: "/x.cfg"}}, http: {{status: 410}}}}]
"""
MOVED = LAB.replace("ip: 192.0.2.9", "ip: 192.0.2.19")


class Taker:
    """A service that records what it was given."""

    def __init__(self) -> None:
        self.taken: list[tuple[Any, StartContext]] = []

    def reload(self, config: Any, ctx: StartContext) -> None:
        self.taken.append((config, ctx))

    async def close(self) -> None:
        self.taken.clear()


def _plan(folder: Path, text: str) -> Plan:
    return build_plan(load(write_lab(folder, text)))


def _lab(plan: Plan, state: Path) -> tuple[RunningLab, EventRecorder]:
    recorder = EventRecorder()
    lab = RunningLab(plan, endpoints(plan, port_offset=30000), state_dir=state, port_offset=30000,
                     directory=StaticDirectory(dict(plan.fixed_ips)))
    lab.bus.sinks.append(recorder)
    engine = FaultEngine(plan.faults, random.Random(1))
    lab.faults = Faults.build(engine, lab.bus, plan.fault_phones, started=0)
    return lab, recorder


def test_services_take_their_part_and_the_directory_follows(tmp_path: Path) -> None:
    old = _plan(tmp_path, LAB)
    lab, _ = _lab(old, tmp_path)
    dns, http = Taker(), Taker()
    lab.services = {"dns": dns, "http": http}
    lab.directory.by_address["192.0.2.150"] = "00:56:2b:00:00:77"  # a lease DHCP bound meanwhile
    engine = lab.faults.engine
    outcome = apply_plan(lab, _plan(tmp_path, MOVED))
    assert outcome.ok and outcome.kept == ()
    assert [config for config, _ in dns.taken] == [lab.plan.dns]
    assert [config for config, _ in http.taken] == [lab.plan.http]
    ctx = http.taken[0][1]
    assert ctx.tree.lookup("Cisco/CP-8851-3PCC/00562b000001.cfg") is not None
    assert ctx.faults.http is not None and ctx.faults.engine is engine  # same rules: counts go on
    assert lab.directory.by_address == {"192.0.2.19": "00:56:2b:00:00:01", "192.0.2.150": "00:56:2b:00:00:77"}
    assert lab.plan.fixed_ips == {"192.0.2.19": "00:56:2b:00:00:01"}


def test_changed_fault_rules_get_a_new_engine(tmp_path: Path) -> None:
    lab, _ = _lab(_plan(tmp_path, LAB), tmp_path)
    engine = lab.faults.engine
    outcome = apply_plan(lab, _plan(tmp_path, LAB.replace("410", "404")))
    assert outcome.diff is not None and outcome.diff.faults.changed == ("gone",)
    assert lab.faults.engine is not engine and lab.faults.dns is None


def test_a_moved_port_is_kept_and_said(tmp_path: Path) -> None:
    lab, _ = _lab(_plan(tmp_path, LAB), tmp_path)
    before = dict(lab.endpoints)
    moved = LAB + "services: {http: {port: 8080}, syslog: {enabled: false}}\n"
    outcome = apply_plan(lab, _plan(tmp_path, moved))
    assert lab.endpoints == before
    assert outcome.kept == (
        "http: still on 127.0.0.1:30080 until a restart (the inventory says 127.0.0.1:38080)",
        "syslog: disabled in the inventory, still serving until a restart")
    assert any("not applied until a restart" in line for line in outcome.lines)


def test_a_reload_that_fails_keeps_the_plan_and_says_why(tmp_path: Path) -> None:
    plan = _plan(tmp_path, LAB)
    lab, recorder = _lab(plan, tmp_path)

    def broken() -> Plan:
        raise ReloadError("lab.yaml:3: error: phonez: not a key labkit knows")

    told = []
    reloader = Reloader(lab, broken, told.append, "lab.yaml")
    outcome = asyncio.run(reloader.reload())
    assert not outcome.ok and lab.plan is plan and told == [outcome]
    [event] = [e for e in recorder.events if e.action == "reload"]
    assert event.service == "kit" and event.result == "error" and "lab.yaml:3" in event.answer
    written = json.loads((tmp_path / RESULT_FILE).read_text())
    assert written["count"] == 1 and written["ok"] is False and "lab.yaml:3" in written["lines"][0]


def test_requests_during_a_reload_run_one_more_after_it(tmp_path: Path) -> None:
    lab, recorder = _lab(_plan(tmp_path, LAB), tmp_path)
    plans = [_plan(tmp_path / "a", LAB), _plan(tmp_path / "b", MOVED)]
    loads = iter(plans)
    loading, go_on = threading.Event(), threading.Event()

    def load_plan() -> Plan:
        loading.set()
        assert go_on.wait(60)
        return next(loads)

    async def main() -> None:
        reloader = Reloader(lab, load_plan)
        reloader.request()
        assert await asyncio.to_thread(loading.wait, 60)
        reloader.request()  # while the first one loads
        reloader.request()  # shares the second
        go_on.set()
        assert reloader.task is not None
        await reloader.task
        assert reloader.count == 2

    asyncio.run(main())
    assert lab.plan.fixed_ips == {"192.0.2.19": "00:56:2b:00:00:01"}
    assert len([e for e in recorder.events if e.action == "reload"]) == 2
