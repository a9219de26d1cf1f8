"""Commands about a running lab, what a lab left behind or ships with: status, ca, leases, timeline,
scenario. `--json` shapes: `labkit.cli.shapes`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from labkit.cli.common import (
    InventoryArg,
    StateOption,
    err,
    fail,
    load_inventory,
    os_problem,
    out,
    state_folder,
)
from labkit.errors import CodecError
from labkit.macros import normalize_mac

if TYPE_CHECKING:
    from labkit.scenarios import ScenarioResult

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object (shape: labkit.cli.shapes).")]


def status(state: StateOption = Path(".labkit"), as_json: JsonOption = False) -> None:
    """What the lab running with this state folder is doing: each phone's state and the service counters."""
    from labkit.cli.shapes import emit, print_status
    from labkit.services.admin import NoLab, ask

    state_folder(state)
    try:
        snapshot = ask(state)
    except NoLab as exc:
        fail(f"status: {exc}")
    if as_json:
        emit({k: v for k, v in snapshot.items() if k != "version"})
    else:
        print_status(snapshot)


def ca(inventory: InventoryArg = None, state: StateOption = Path(".labkit")) -> None:
    """Print the path of the lab CA certificate (made now if the lab has not started yet)."""
    from labkit.tls import ca_path, ensure_ca

    state_folder(state)
    loaded = load_inventory(inventory)
    try:
        ensure_ca(state, loaded.inventory.lab.name)
    except OSError as exc:
        fail(f"ca: {os_problem(exc)}")
    out.print(str(ca_path(state).resolve()), markup=False)


def leases(state: StateOption = Path(".labkit"), as_json: JsonOption = False) -> None:
    """List the DHCP leases kept in the state folder: MAC, IP, phone, expiry, state."""
    import datetime

    from rich.table import Table

    from labkit.services.leases import read_leases

    state_folder(state)
    if not state.is_dir():
        fail(f"leases: no state folder at {state}: `labkit up` makes it; name the lab's folder with --state")
    now = datetime.datetime.now(datetime.UTC).timestamp()
    table = Table(title=f"leases in {state}")
    for column in ("MAC", "IP", "phone", "expires (UTC)", "state"):
        table.add_column(column)
    rows = sorted(read_leases(state), key=lambda lease: int(lease.ip))
    if as_json:
        from labkit.cli.shapes import emit, leases_shape

        emit(leases_shape(str(state), rows, now))
        return
    for lease in rows:
        state_text: str = lease.state
        if lease.state == "bound" and lease.expires <= now:
            state_text = "expired"
        when = datetime.datetime.fromtimestamp(lease.expires, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
        mac = "-" if lease.state == "declined" else lease.mac
        table.add_row(mac, str(lease.ip), lease.phone or "", when, state_text)
    out.print(table)
    if not rows:
        out.print("no leases yet", markup=False)


def timeline(
    mac: Annotated[str, typer.Argument(help="The phone's MAC.")],
    log: Annotated[Path, typer.Option("--log", metavar="FILE", help="The event log (JSON lines).")] = Path(
        ".labkit/logs/events.jsonl"),
    as_json: JsonOption = False,
    since: Annotated[str | None, typer.Option(
        "--since", metavar="WHEN", help="Only events since then: a duration back from now (10m, 1h30m, "
        "2d) or a time (14:05, 2026-11-30 14:05).")] = None,
    last_boot: Annotated[bool, typer.Option("--last-boot", help="Only the phone's last boot.")] = False,
) -> None:
    """One phone's story from the event log, boot by boot, and where it stalled."""
    import time

    from labkit.timeline import parse_since, read_events, story

    try:
        phone = normalize_mac(mac)
    except CodecError as exc:
        fail(f"timeline: {exc}", 2)
    try:
        moment = parse_since(since, time.time()) if since is not None else None
    except ValueError as exc:
        fail(f"timeline: --since: {exc}", 2)
    if not log.is_file():
        fail(f"timeline: no event log at {log} (labkit up writes one; see --log)")
    told = story(read_events(log), phone)
    if as_json:
        from labkit.cli.shapes import emit, timeline_shape

        emit(timeline_shape(told))
        return
    for line in told.lines(last_boot=last_boot, since=moment):
        out.print(line, markup=False)


def scenario(
    name: Annotated[str | None, typer.Argument(help="Scenario name (a file in labkit/scenarios/).")] = None,
    run_all: Annotated[bool, typer.Option("--all", help="Run every scenario.")] = False,
    show: Annotated[bool, typer.Option("--list", help="List the scenarios.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Reproduce documented phone behaviour against the real services; pass or fail per scenario."""
    from labkit.scenarios import ScenarioError, names, run_scenario

    try:
        available = names()
    except ScenarioError as exc:
        fail(f"scenario: {exc}")
    if show or (name is None and not run_all):
        if as_json:
            from labkit.cli.shapes import emit

            emit({"scenarios": available})
            return
        _list_scenarios(available)
        return
    if run_all and not available:
        from labkit.scenarios import SCENARIO_DIR

        fail(f"scenario: --all: no scenarios found in {SCENARIO_DIR}; nothing was run")
    chosen = available if run_all else [name or ""]
    results = []
    for item in chosen:
        try:
            results.append(run_scenario(item))
        except ScenarioError as exc:
            err.print(f"scenario: {exc}", markup=False)
            raise typer.Exit(2) from None
        if not as_json:
            _print_scenario(item, results[-1])
    if as_json:
        from labkit.cli.shapes import emit, scenario_shape

        emit(scenario_shape(results))
    if any(not result.passed for result in results):
        raise typer.Exit(1)


def _print_scenario(item: str, result: ScenarioResult) -> None:
    verdict = "PASS" if result.passed else "FAIL"
    out.print(f"{verdict} {item}: {result.description}", markup=False)
    for problem in result.problems:
        out.print(f"     {problem}", markup=False)
    if not result.passed and result.outcome is not None:
        for step in result.outcome.timeline:
            out.print(f"       {step.kind:<9} {step.detail}", markup=False)


def _list_scenarios(available: list[str]) -> None:
    """One line per scenario: its name and the first sentence of its description."""
    from labkit.scenarios import ScenarioError, load_scenario

    width = max((len(item) for item in available), default=0)
    for item in available:
        try:
            text = " ".join(str(load_scenario(item).get("description") or "").split())
        except ScenarioError as exc:
            text = f"(does not read: {exc})"
        first = text.split(". ", 1)[0].rstrip(".")
        out.print(f"{item:<{width}}  {first}", markup=False)
