"""TR-069 scenarios: the phone's whole life against the kit's ACS. A scenario with a `tr069`
section boots the phone with the `dslforum.org` vendor class (DHCP gives it option 43 from the
lab's classes), lets it provision, then runs its CWMP side (`run_swarm(cwmp=...)`) against
the lab's ACS while an operator acts (queue a request, send a Connection Request) once the ACS
has recorded a number of sessions.

    tr069:
      settings: {username: cpe, password: s3cret, duration: 7200}   # labkit.phone.cwmp.CwmpSettings
      operator:
        - {after: 1, queue: {kind: get, names: [Device.DeviceInfo.SoftwareVersion]}, connect: true}
    expect:
      sessions:              # the ACS's sessions, in order, from the first: each key optional
        - {events: [0 BOOTSTRAP, 1 BOOT], outcome: ok, requests: [SetParameterValues]}
      steps: [...]           # the phone's timeline, its CWMP steps after its provisioning ones

`events` lists codes the session's Inform carried (all of them, any order); `requests` the ACS's
requests answered in it, in order; `outcome` "ok", "fault-8005", ...
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from labkit.events import Event, EventRecorder
from labkit.inventory.load import default_lab_dir, load
from labkit.phone.core import Outcome, PhoneConfig
from labkit.plan.build import build_plan

WAIT = 120.0  # real seconds a scenario may wait for the ACS to record what the operator waits for
SESSION_KEYS = {"events", "outcome", "requests"}
NOT_REQUESTS = ("Inform", "TransferComplete", "GetRPCMethods", "cwmp", "auth", "post")


class _Watch:
    """An event sink that wakes the operator when the lab has seen something."""

    def __init__(self) -> None:
        self.changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.changed.set()

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


def _settings(given: dict[str, Any]) -> Any:
    from labkit.phone.cwmp import CwmpSettings

    known = {f.name for f in fields(CwmpSettings)} - {"tree"}
    unknown = set(given) - known
    if unknown:
        from labkit.scenarios import ScenarioError

        raise ScenarioError(f"tr069.settings: unknown {sorted(unknown)}; known: {', '.join(sorted(known))}")
    return CwmpSettings(**{"enabled": True, "cr_port": 0, **given})


async def _operate(acs: Any, mac: str, steps: list[dict[str, Any]], watch: _Watch) -> None:
    from labkit.services.acs_rpcs import from_operator

    def recorded(count: int) -> Callable[[], bool]:
        return lambda: len(acs.sessions(mac)["sessions"]) >= count

    for step in steps:
        await watch.until(recorded(int(step.get("after", 0))))
        if "queue" in step:
            acs.queue(mac, from_operator(step["queue"]))
        if step.get("connect"):
            await acs.connect(mac)


async def _life(inventory: Path, tr069: dict[str, Any], workdir: Path, mac: str,
                serial: str) -> tuple[Outcome, EventRecorder, list[dict[str, Any]]]:
    from labkit.phone.driver import loopback_access, run_swarm
    from labkit.services.supervisor import free_port_offset, start_lab

    plan = build_plan(load(inventory))
    recorder, watch = EventRecorder(), _Watch()
    settings, steps = _settings(dict(tr069.get("settings") or {})), list(tr069.get("operator") or [])
    offset = free_port_offset()
    lab = await start_lab(plan, port_offset=offset, state_dir=workdir / "state", sinks=[recorder, watch],
                          fault_seed=1)
    acs: Any = lab.services["acs"]  # labkit.services.acs.AcsServer
    try:
        access = loopback_access(plan.inventory, "127.0.0.1", offset, lab.ca_path)
        config = PhoneConfig(mac, "CP-8851-3PCC", serial, rounds=1, retry_delays=(60,), seed=1)
        operator = asyncio.create_task(_operate(acs, mac, steps, watch))
        try:  # an hour a second
            result = await asyncio.wait_for(run_swarm([config], access, time_scale=3600, cwmp=settings), WAIT)
            await asyncio.wait_for(operator, WAIT)
        finally:
            operator.cancel()
        return result.outcomes[0], recorder, acs.sessions(mac)["sessions"]
    finally:
        await lab.close()


def check_sessions(expected: list[dict[str, Any]], sessions: list[dict[str, Any]]) -> list[str]:
    """What differs between the ACS's recorded sessions and the scenario's (in order, a prefix;
    an empty list: no session at all)."""
    problems: list[str] = []
    if not expected and sessions:  # `sessions: []`: the ACS must record none
        problems.append(f"the ACS recorded {len(sessions)} sessions, expected none")
    if len(sessions) < len(expected):
        problems.append(f"the ACS recorded {len(sessions)} sessions, expected at least {len(expected)}")
    for n, (want, got) in enumerate(zip(expected, sessions, strict=False), start=1):
        unknown = set(want) - SESSION_KEYS
        if unknown:
            problems.append(f"session {n}: unknown keys {sorted(unknown)}")
        if "events" in want and set(want["events"]) != set(got["events"]):
            problems.append(f"session {n}: events {got['events']}, expected {want['events']}")
        if "outcome" in want and str(want["outcome"]) != got["outcome"]:
            problems.append(f"session {n}: outcome {got['outcome']}, expected {want['outcome']}")
        asked = [x["action"] for x in got["exchanges"] if x["action"] not in NOT_REQUESTS]
        if "requests" in want and list(want["requests"]) != asked:
            problems.append(f"session {n}: requests {asked}, expected {want['requests']}")
    return problems


def run_tr069(name: str, data: dict[str, Any]) -> Any:
    from labkit.scenarios import BASE, MAC, ScenarioResult, _check

    inventory = {**BASE, **(data.get("lab") or {})}
    expect = dict(data.get("expect") or {})
    with tempfile.TemporaryDirectory(prefix="labkit-scenario-") as tmp:
        work = Path(tmp)
        (work / "lab.yaml").write_text(yaml.safe_dump(inventory, sort_keys=False))
        (work / "firmware").mkdir()
        source = default_lab_dir() / "firmware" / "sip88xx.12-0-1MPP-0001.loads"
        (work / "firmware" / source.name).write_bytes(source.read_bytes())
        outcome, recorder, sessions = asyncio.run(_life(work / "lab.yaml", data["tr069"] or {}, work, MAC,
                                                        "FCH0001"))
    fault_events = sum(1 for e in recorder.events if e.action == "fault")
    problems = _check({k: v for k, v in expect.items() if k != "sessions"}, outcome, fault_events)
    if "sessions" in expect:
        problems += check_sessions(list(expect["sessions"] or []), sessions)
    return ScenarioResult(name, str(data.get("description", "")).strip(), not problems, problems, outcome,
                          fault_events)
