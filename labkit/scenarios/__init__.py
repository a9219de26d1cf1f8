"""Ready reproductions of documented phone behaviour: a lab fragment, a phone, the expected outcome.

A scenario file (`NAME.yaml` beside this module, in `labkit/scenarios/`, shipped with the package)
holds `description`, `lab` (top-level inventory sections laid over a one-phone base lab), optional
`files` (name -> text, written beside the lab: templates/..., a CSV a route looks up), optional
`phone` settings, and `expect`: `provisioned`, `steps` (an ordered subsequence of the phone's
timeline, each `kind` or `kind: text in the detail`), optional `last_error` (text it contains) and
`faults` (how many fault events fired), `customization` (the remote customization state at the
end), `resyncs` (at least this many resyncs after provisioning, with a `duration`).
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from labkit.errors import LabkitError
from labkit.events import EventRecorder
from labkit.inventory.load import default_lab_dir, load
from labkit.phone.core import Outcome, PhoneConfig
from labkit.plan.build import build_plan

SCENARIO_DIR = Path(__file__).resolve().parent  # the YAML files ship inside the package
MAC = "00:56:2b:00:00:01"
BASE: dict[str, Any] = {
    "lab": {"domain": "lab.example", "address": "10.42.0.1/24"},
    "models": {"CP-8851-3PCC": {"firmware": "sip88xx.12-0-1MPP-0001.loads"}},
    "phones": [{"mac": MAC, "model": "CP-8851-3PCC", "ip": "10.42.0.60", "serial": "FCH0001"}],
}
PHONE_SETTINGS = {"rounds", "retry_delays", "uid", "pwd", "option_order", "weight_order", "ikm", "load",
                  "generation", "duration", "activation_code", "remote_customization", "check_cert_names"}


class ScenarioError(LabkitError):
    """A scenario that does not exist or does not read."""


@dataclass
class ScenarioResult:
    name: str
    description: str
    passed: bool
    problems: list[str] = field(default_factory=list)
    outcome: Outcome | None = None
    fault_events: int = 0


def names(folder: Path = SCENARIO_DIR) -> list[str]:
    """The scenarios in `folder`, sorted. None at all is an error (a broken install, a wrong folder)."""
    found = sorted(p.stem for p in folder.glob("*.yaml"))
    if not found:
        raise ScenarioError(f"no scenarios found in {folder}")
    return found


def load_scenario(name: str, folder: Path = SCENARIO_DIR) -> dict[str, Any]:
    path = folder / f"{name}.yaml"
    if not path.is_file():
        raise ScenarioError(f"no scenario {name!r}; there are: {', '.join(names(folder))}")
    data = yaml.safe_load(path.read_text())
    unknown = set(data) - {"description", "lab", "files", "phone", "expect", "tr069"}
    if unknown:
        raise ScenarioError(f"{path}: unknown keys {sorted(unknown)}")
    phone_unknown = set(data.get("phone") or {}) - PHONE_SETTINGS
    if phone_unknown:
        raise ScenarioError(f"{path}: unknown phone settings {sorted(phone_unknown)}")
    return data


def _check(expect: dict[str, Any], outcome: Outcome, fault_events: int) -> list[str]:
    problems: list[str] = []
    if "provisioned" in expect and outcome.provisioned != expect["provisioned"]:
        problems.append(f"provisioned is {outcome.provisioned}, expected {expect['provisioned']} "
                        f"({outcome.reason}: {outcome.last_error})")
    steps = iter(outcome.timeline)
    for wanted in expect.get("steps", []):
        kind, _, text = str(wanted).partition(":")
        kind, text = kind.strip(), text.strip()
        if not any(step.kind == kind and text in step.detail for step in steps):
            problems.append(f"step {wanted!r} not found in order")
            break
    if "last_error" in expect and str(expect["last_error"]) not in str(outcome.last_error):
        problems.append(f"last_error is {outcome.last_error!r}, expected it to contain "
                        f"{expect['last_error']!r}")
    if "customization" in expect and outcome.customization != expect["customization"]:
        problems.append(f"customization state is {outcome.customization}, expected {expect['customization']}")
    if "resyncs" in expect and outcome.resyncs < int(expect["resyncs"]):
        problems.append(f"{outcome.resyncs} resyncs, expected at least {expect['resyncs']}")
    if "faults" in expect and fault_events != expect["faults"]:
        problems.append(f"{fault_events} fault events, expected {expect['faults']}")
    return problems


async def _run(inventory: Path, phone: dict[str, Any], workdir: Path) -> tuple[Outcome, EventRecorder]:
    from labkit.phone.driver import loopback_access, run_swarm
    from labkit.services.supervisor import free_port_offset, start_lab

    plan = build_plan(load(inventory))
    recorder = EventRecorder()
    offset = free_port_offset()
    lab = await start_lab(plan, port_offset=offset, state_dir=workdir / "state", sinks=[recorder],
                          fault_seed=1)
    try:
        access = loopback_access(plan.inventory, "127.0.0.1", offset, lab.ca_path)
        settings = {"rounds": 3, "retry_delays": (60, 120, 240), **phone}
        for key in ("retry_delays", "option_order"):
            if key in settings:
                settings[key] = tuple(settings[key])
        if "ikm" in settings:
            settings["ikm"] = str(settings["ikm"]).encode()
        config = PhoneConfig(MAC, "CP-8851-3PCC", "FCH0001", **settings)
        result = await run_swarm([config], access, time_scale=3600)  # an hour a second
        return result.outcomes[0], recorder
    finally:
        await lab.close()


def run_scenario(name: str, folder: Path = SCENARIO_DIR) -> ScenarioResult:
    data = load_scenario(name, folder)
    if "tr069" in data:  # the phone's CWMP life against the kit's ACS (labkit.scenarios.tr069)
        from labkit.scenarios.tr069 import run_tr069

        result: ScenarioResult = run_tr069(name, data)
        return result
    inventory = {**BASE, **(data.get("lab") or {})}
    with tempfile.TemporaryDirectory(prefix="labkit-scenario-") as tmp:
        work = Path(tmp)
        (work / "lab.yaml").write_text(yaml.safe_dump(inventory, sort_keys=False))
        for relative, text in (data.get("files") or {}).items():
            target = work / str(relative)
            if work.resolve() not in target.resolve().parents:
                raise ScenarioError(f"{name}: files: {relative!r} is outside the lab folder")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(str(text))
        (work / "firmware").mkdir()
        source = default_lab_dir() / "firmware" / "sip88xx.12-0-1MPP-0001.loads"
        (work / "firmware" / source.name).write_bytes(source.read_bytes())
        outcome, recorder = asyncio.run(_run(work / "lab.yaml", data.get("phone") or {}, work))
    fault_events = sum(1 for e in recorder.events if e.action == "fault")
    problems = _check(data.get("expect") or {}, outcome, fault_events)
    return ScenarioResult(name, str(data.get("description", "")).strip(), not problems, problems, outcome,
                          fault_events)
