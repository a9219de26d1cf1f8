"""Reload without restart: a new Plan swapped into a running lab (SIGHUP, `labkit reload`).

The new plan is loaded off the event loop (`load`, given by the command line: services never
read the inventory); then, in one event-loop step, between two datagrams, every service takes
its part of it (`reload(config, ctx)`): the sockets, leases, transfers and connections under
way and the event log carry on. What a running lab cannot change (a listening address or port,
a service turned on or off, the TLS credentials) stays as it was, and the summary says so. A
plan that does not load leaves the running one in place; the error is reported as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from labkit.errors import LabkitError
from labkit.events import StaticDirectory, make_event
from labkit.faults.engine import FaultEngine
from labkit.faults.hooks import Faults
from labkit.plan.build import Plan
from labkit.plan.diff import PlanDiff, diff_plans
from labkit.services.context import StartContext
from labkit.services.filetree import FileTree
from labkit.services.supervisor import RunningLab, StartError, endpoints

RESULT_FILE = "reload.json"  # in the state folder: the last reload's outcome, for `labkit reload`


class ReloadError(LabkitError):
    """The inventory could not be loaded or planned; the message is the loader's own rendering."""


@runtime_checkable
class Reloadable(Protocol):
    def reload(self, config: Any, ctx: StartContext) -> None: ...


CONFIGS: Mapping[str, Callable[[Plan], Any]] = {
    "dhcp": lambda plan: plan.dhcp,
    "dns": lambda plan: plan.dns,
    "tftp": lambda plan: plan.tftp,
    "http": lambda plan: plan.http,
    "https": lambda plan: plan.https,
    "syslog": lambda plan: None,
    "proxy": lambda plan: plan.proxy,
    "acs": lambda plan: plan.acs,
}


@dataclass(frozen=True)
class ReloadOutcome:
    ok: bool
    lines: tuple[str, ...]  # the change, or the error, for people
    diff: PlanDiff | None = None
    kept: tuple[str, ...] = ()  # endpoint changes the running lab did not take

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok, "lines": list(self.lines)}
        if self.diff is not None:
            out["diff"] = self.diff.as_dict()
        if self.kept:
            out["kept"] = list(self.kept)
        return out


def kept_endpoints(lab: RunningLab, new: Plan) -> tuple[str, ...]:
    """Where the new plan would listen differently from the running lab (not applied)."""
    try:
        wanted = endpoints(new, loopback=lab.loopback, port_offset=lab.port_offset)
    except StartError as exc:
        return (f"{exc} (kept the running endpoints)",)
    out = []
    for name in sorted(set(wanted) | set(lab.endpoints)):
        now, then = lab.endpoints.get(name), wanted.get(name)
        if now is None:
            out.append(f"{name}: enabled in the inventory, not started until a restart")
        elif then is None:
            out.append(f"{name}: disabled in the inventory, still serving until a restart")
        elif (now.host, now.port) != (then.host, then.port):
            out.append(f"{name}: still on {now.host}:{now.port} until a restart "
                       f"(the inventory says {then.host}:{then.port})")
    return tuple(out)


def _fixed_addresses(directory: StaticDirectory, old: Mapping[str, str], new: Mapping[str, str]) -> None:
    """The directory (shared with DHCP's bound leases) with the old fixed addresses replaced."""
    table = directory.by_address
    for address, mac in old.items():
        if address not in new and table.get(address) == mac:
            del table[address]
    table.update(new)


def apply_plan(lab: RunningLab, new: Plan) -> ReloadOutcome:
    """Swap `new` (the inventory's plan; the command line's fault rules are added here) into the
    running lab, in one step; the summary of what changed."""
    new = new.with_faults(list(lab.cli_faults))
    diff = diff_plans(lab.plan, new)
    kept = kept_endpoints(lab, new)
    engine = lab.faults.engine
    if engine is None or new.faults != lab.plan.faults:  # same rules: their counts carry on
        engine = FaultEngine(new.faults, random.Random(lab.fault_seed))
    faults = Faults.build(engine, lab.bus, new.fault_phones, started=lab.started)
    if isinstance(lab.directory, StaticDirectory):
        _fixed_addresses(lab.directory, lab.plan.fixed_ips, new.fixed_ips)
    directory = lab.directory if lab.directory is not None else StaticDirectory(dict(new.fixed_ips))
    ctx = StartContext(FileTree(new.files), lab.bus, directory, new.known_macs, lab.state_dir, faults,
                       lab.ca_path)
    for name, service in lab.services.items():
        if isinstance(service, Reloadable):
            service.reload(CONFIGS[name](new), ctx)
    lab.plan, lab.faults = new, faults
    if lab.ops is not None:
        lab.ops.replan(new)
    return ReloadOutcome(True, (*diff.lines(), *kept), diff, kept)


@dataclass
class Reloader:
    """Runs one reload at a time; a request during a reload runs one more after it.

    `load`: the new plan (raises ReloadError, another LabkitError or OSError when it cannot);
    `report`: told every outcome (the command line prints it)."""

    lab: RunningLab
    load: Callable[[], Plan]
    report: Callable[[ReloadOutcome], None] = lambda outcome: None
    source: str = "inventory"
    count: int = 0
    again: bool = False
    task: asyncio.Task[None] | None = None
    outcomes: list[ReloadOutcome] = field(default_factory=list)

    def request(self) -> None:
        """Ask for a reload (a signal handler may call this)."""
        if self.task is not None and not self.task.done():
            self.again = True
            return
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        """Reload; again while requests came meanwhile (those before the load began share it)."""
        while True:
            self.again = False
            await self.reload()
            if not self.again:
                return

    async def reload(self) -> ReloadOutcome:
        try:
            plan = await asyncio.to_thread(self.load)
        except (LabkitError, OSError) as exc:
            outcome = ReloadOutcome(False, (str(exc),))
        else:
            try:
                outcome = apply_plan(self.lab, plan)
            except LabkitError as exc:
                outcome = ReloadOutcome(False, (str(exc),))
        self.count += 1
        self._tell(outcome)
        return outcome

    def _tell(self, outcome: ReloadOutcome) -> None:
        if outcome.ok:
            answer = "; ".join(outcome.lines)
            result = "ok"
        else:
            answer = f"kept the running plan: {outcome.lines[0].splitlines()[0] if outcome.lines[0] else ''}"
            result = "error"
        self.lab.bus(make_event("kit", None, None, "reload", self.source, answer, result,
                                **outcome.as_dict()))
        self.outcomes.append(outcome)
        write_result(self.lab.state_dir, self.count, outcome)
        self.report(outcome)


def write_result(state_dir: Path, count: int, outcome: ReloadOutcome) -> None:
    """The outcome for `labkit reload` to read, replaced whole (never half written)."""
    data = {"pid": os.getpid(), "count": count, **outcome.as_dict()}
    part = state_dir / f".{RESULT_FILE}.part"
    with contextlib.suppress(OSError):  # the event log and the console still have it
        part.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        part.replace(state_dir / RESULT_FILE)


def read_result(state_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((state_dir / RESULT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
