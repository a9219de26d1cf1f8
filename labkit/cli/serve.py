"""Commands that run things: up (the lab), simulate (virtual phones), demo (both)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from labkit.cli.common import (
    InventoryArg,
    StateOption,
    err,
    fail,
    load_inventory,
    make_plan,
    os_problem,
    out,
    state_folder,
)
from labkit.cli.phones import summary_table
from labkit.errors import LabkitError
from labkit.plan.build import Plan

if TYPE_CHECKING:
    from labkit.services.running import LogSettings
    from labkit.services.supervisor import RunningLab


def up(
    inventory: InventoryArg = None,
    loopback: Annotated[bool, typer.Option(
        "--loopback", help="Bind every service to 127.0.0.1 on ports offset by 10000 (no root needed).")
    ] = False,
    port_offset: Annotated[int | None, typer.Option(
        "--port-offset", help="Offset added to every standard port (implies 127.0.0.1).")] = None,
    state: StateOption = Path(".labkit"),
    log: Annotated[Path | None, typer.Option(
        "--log", metavar="FILE", help="Write every event as a JSON line to this file "
        "(default: STATE/logs/events.jsonl).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No live board and no event lines.")] = False,
    allow_other_dhcp: Annotated[bool, typer.Option(
        "--allow-other-dhcp", help="Serve DHCP even when another DHCP server answers on the segment.")
    ] = False,
    pcap: Annotated[Path | None, typer.Option(
        "--pcap", metavar="FILE",
        help="Write every packet the kit receives and sends to this pcap file (root).")] = None,
    pcap_per_phone: Annotated[Path | None, typer.Option(
        "--pcap-per-phone", metavar="DIR",
        help="Also write one pcap file per phone into this folder (root).")] = None,
    fault: Annotated[list[str] | None, typer.Option(
        "--fault", metavar="RULE", help="A fault rule in YAML flow syntax, e.g. "
        "'{match: {path: \"/Cisco/*\"}, http: {status: 404}, when: {first: 2}}' (repeatable).")] = None,
    log_max_mb: Annotated[float, typer.Option(
        "--log-max-mb", metavar="MIB", help="Rotate the event log when it reaches this size (MiB).")] = 32,
    log_files: Annotated[int, typer.Option(
        "--log-files", help="Rotated event logs kept (LOG.1 .. LOG.N) besides the current one.")] = 3,
) -> None:
    """Serve the plan: DHCP, DNS, TFTP, HTTP(S) and syslog in one process, until Ctrl-C or SIGTERM."""
    import asyncio

    from labkit.inventory.faults import parse_cli_rule
    from labkit.services.running import LogSettings

    state_folder(state)
    if log_max_mb <= 0 or log_files < 0:
        fail("--log-max-mb must be above 0 and --log-files 0 or more", 2)
    loaded = load_inventory(inventory)
    plan = make_plan(loaded, serving=True)
    settings = LogSettings(log or state / "logs" / "events.jsonl", max_bytes=int(log_max_mb * 1024 * 1024),
                           backups=log_files)
    try:
        rules = [parse_cli_rule(text) for text in fault or []]
        asyncio.run(_up(plan, settings, quiet, pcaps=(pcap, pcap_per_phone), loopback=loopback,
                        port_offset=port_offset, state_dir=state, allow_other_dhcp=allow_other_dhcp,
                        faults=rules))
    except LabkitError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1) from None
    except OSError as exc:
        fail(f"error: {os_problem(exc)}")


async def _up(plan: Plan, log: LogSettings, quiet: bool, **start: Any) -> None:
    """`start`: run_lab's keyword arguments (pcaps, loopback, port_offset, state_dir, ...)."""
    from labkit.board import BoardState, LiveBoard
    from labkit.services.running import run_lab
    from labkit.services.supervisor import wait_for_stop

    log_path = log.path
    async with run_lab(plan, log=log, **start) as lab:
        _banner(lab, log_path)
        if not quiet and out.is_terminal:
            lab.watch(LiveBoard(BoardState.from_plan(lab.plan), out))
        elif not quiet:
            lab.follow(lambda e: out.print(
                f"{e.service} {e.client or '-'} {e.phone or '-'} {e.action} {e.request} -> {e.answer} "
                f"[{e.result}]", markup=False))
        await wait_for_stop()
    if lab.capture is not None:
        out.print(f"labkit: captured {lab.capture.count} packets", markup=False)
    out.print(f"labkit: stopped; {lab.bus.count} events logged to {log_path}", markup=False)


def _banner(lab: RunningLab, log_path: Path) -> None:
    inv = lab.plan.inventory
    out.print(f"labkit: lab {inv.lab.name!r} ({inv.lab.domain}), {len(inv.phones)} phones, "
              f"{len(lab.plan.files)} files; events to {log_path}", markup=False)
    for endpoint in lab.endpoints.values():
        out.print(f"  {endpoint}", markup=False)
    if lab.ca_path is not None:
        out.print(f"  lab CA: {lab.ca_path} (curl --cacert {lab.ca_path})", markup=False)
    for rule in lab.plan.faults:
        when = {k: v for k, v in dataclasses.asdict(rule.when).items() if v is not None}
        match = {k: v for k, v in dataclasses.asdict(rule.match).items() if v is not None}
        out.print(f"  fault: {rule.label}: {rule.service} when {when} matching {match}", markup=False)
    out.print("Ctrl-C stops the lab.", markup=False)


def demo(
    mode: Annotated[str, typer.Option(
        "--mode", metavar="MODE",
        help="auto (namespaces when root with `ip`, else loopback), loopback, or netns.")] = "auto",
    time_scale: Annotated[float, typer.Option(
        "--time-scale", metavar="FACTOR", min=0.001,
        help="Phone seconds per wall second: retry delays and lease times shrink by it.")] = 60.0,
) -> None:
    """Start the embedded default lab, boot all its phones against it, and show how they did.

    Exits 0 only when every phone is provisioned, and leaves nothing behind."""
    import asyncio
    import tempfile

    from labkit.demo import choose_mode, run_loopback_demo, run_netns_demo
    from labkit.phone.stopping import Stopped, stopped_by_signals

    try:
        chosen = choose_mode(mode)
    except LabkitError as exc:
        fail(f"demo: {exc}", 2)
    loaded = load_inventory(None)
    plan = make_plan(loaded)
    try:
        with stopped_by_signals(), tempfile.TemporaryDirectory(prefix="labkit-demo-") as workdir:
            if chosen == "netns":
                result = run_netns_demo(plan, Path(workdir), time_scale, out, err)
            else:
                result = asyncio.run(run_loopback_demo(plan, Path(workdir), time_scale, out, err))
    except LabkitError as exc:
        err.print(f"demo: {exc}", markup=False)
        raise typer.Exit(1) from None
    except Stopped as stop:
        err.print(f"demo: stopped by {stop.name}; its namespaces and files are removed", markup=False)
        raise typer.Exit(stop.exit_code) from None
    table, summary = summary_table(result.outcomes, result.wall_seconds, result.requests)
    out.print(table)
    first = next((o for o in result.outcomes if o.provisioned), None)
    if first is not None:
        out.print(f"timeline of {first.mac}:", markup=False)
        start = first.timeline[0].time
        for step in first.timeline:
            out.print(f"  +{step.time - start:7.2f} s  {step.kind:<9} {step.detail}", markup=False)
    verdict = ("every phone provisioned" if summary.failed == 0
               else f"{summary.failed} phone(s) NOT provisioned")
    out.print(f"demo ({chosen} mode): {verdict}", markup=False)
    if summary.failed:
        raise typer.Exit(1)
