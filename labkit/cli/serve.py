"""Commands that run things: up (the lab), simulate (virtual phones), demo (both)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from labkit.cli.common import InventoryArg, StateOption, err, load_inventory, make_plan, out, state_folder
from labkit.errors import LabkitError
from labkit.macros import normalize_mac
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
        "--log", help="Write every event as a JSON line to this file "
        "(default: STATE/logs/events.jsonl).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No live board and no event lines.")] = False,
    allow_other_dhcp: Annotated[bool, typer.Option(
        "--allow-other-dhcp", help="Serve DHCP even when another DHCP server answers on the segment.")
    ] = False,
    pcap: Annotated[Path | None, typer.Option(
        "--pcap", help="Write every packet the kit receives and sends to this pcap file (root).")] = None,
    pcap_per_phone: Annotated[Path | None, typer.Option(
        "--pcap-per-phone", help="Also write one pcap file per phone into this folder (root).")] = None,
    fault: Annotated[list[str] | None, typer.Option(
        "--fault", help="A fault rule in YAML flow syntax, e.g. "
        "'{match: {path: \"/Cisco/*\"}, http: {status: 404}, when: {first: 2}}' (repeatable).")] = None,
    log_max_mb: Annotated[float, typer.Option(
        "--log-max-mb", min=0.001, help="Rotate the event log when it reaches this size (MiB).")] = 32,
    log_files: Annotated[int, typer.Option(
        "--log-files", min=0, help="Rotated event logs kept (LOG.1 .. LOG.N) besides the current one.")] = 3,
) -> None:
    """Serve the plan: DHCP, DNS, TFTP, HTTP(S) and syslog in one process, until Ctrl-C or SIGTERM."""
    import asyncio

    from labkit.inventory.faults import parse_cli_rule
    from labkit.services.running import LogSettings

    state_folder(state)
    loaded = load_inventory(inventory)
    plan = make_plan(loaded)
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
        where = f": {exc.filename}" if exc.filename else ""
        err.print(f"error: {exc.strerror or exc}{where}", markup=False)
        raise typer.Exit(1) from None


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


def _summary_table(outcomes, wall: float, requests: dict[str, int]):
    from rich.table import Table

    from labkit.phone.swarm import Summary

    summary = Summary.of(outcomes)

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} s"

    table = Table(title="virtual phones", show_header=False)
    table.add_row("phones", str(summary.total))
    table.add_row("provisioned", str(summary.provisioned))
    table.add_row("failed", str(summary.failed))
    table.add_row("time to provisioned p50 / p95 / max (phone clock)",
                  f"{seconds(summary.p50)} / {seconds(summary.p95)} / {seconds(summary.maximum)}")
    table.add_row("wall time", f"{wall:.1f} s")
    table.add_row("requests", ", ".join(f"{k} {v}" for k, v in sorted(requests.items())))
    for reason, count in summary.failures.items():
        table.add_row(f"failed: {reason}", str(count))
    return table, summary


async def _swarm_with_progress(configs, access, concurrency: int, time_scale: float,
                               show: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from labkit.phone.driver import run_swarm

    if not show:
        return await run_swarm(configs, access, concurrency=concurrency, time_scale=time_scale)
    columns = (TextColumn("booting phones"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[ok]}"), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("phones", total=len(configs), ok="")
        done = {"ok": 0, "failed": 0}

        def finished(outcome) -> None:
            done["ok" if outcome.provisioned else "failed"] += 1
            progress.update(task, advance=1, ok=f"{done['ok']} provisioned, {done['failed']} failed")

        return await run_swarm(configs, access, concurrency=concurrency, time_scale=time_scale,
                               on_done=finished)


def simulate(
    inventory: InventoryArg = None,
    against: Annotated[str, typer.Option("--against", help="Address of the running lab.")] = "127.0.0.1",
    port_offset: Annotated[int | None, typer.Option(
        "--port-offset", help="The lab's port offset (default 10000 on loopback, else 0).")] = None,
    phones: Annotated[int | None, typer.Option("--phones", help="Boot N generated phones instead.")] = None,
    phone: Annotated[str | None, typer.Option("--phone", help="Boot only this inventory phone.")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1)] = 64,
    time_scale: Annotated[float, typer.Option(
        "--time-scale", help="Phone seconds per wall second (retry delays shrink by it).",
        min=0.001)] = 60.0,
    rounds: Annotated[int, typer.Option(
        "--rounds", min=1, help="Failed rounds before a phone gives up.")] = 3,
    interface: Annotated[str | None, typer.Option(
        "--interface", help="Broadcast DHCP on this interface (a real segment, not loopback).")] = None,
    ca: Annotated[Path | None, typer.Option(
        "--ca", help="Lab CA for HTTPS (default STATE/ca/ca.pem).")] = None,
    state: StateOption = Path(".labkit"),
    as_json: Annotated[bool, typer.Option("--json", help="Print outcomes as JSON.")] = False,
) -> None:
    """Boot virtual phones against a running lab and report what each achieved."""
    import asyncio
    import json

    from labkit.phone.driver import LabAccess, loopback_access
    from labkit.phone.network import DhcpSettings, NetworkMap
    from labkit.phone.swarm import generated_configs, inventory_configs, outcome_json

    loaded = load_inventory(inventory)
    inv = loaded.inventory
    settings = {"rounds": rounds}
    if phones is not None:
        configs = generated_configs(inv, phones, **settings)
    else:
        only = normalize_mac(phone) if phone else None
        configs = inventory_configs(inv, only=only, **settings)
        if only and not configs:
            err.print(f"--phone: {only} is not in the inventory", markup=False)
            raise typer.Exit(1)
    ca_file = ca or state / "ca" / "ca.pem"
    if against.startswith("127."):
        access = loopback_access(inv, against, 10000 if port_offset is None else port_offset, ca_file)
    else:
        offset = port_offset or 0
        dhcp = DhcpSettings(("255.255.255.255", 67 + offset), client_port=68 + offset, interface=interface)
        access = LabAccess(NetworkMap(), dhcp,
                           ca_file=str(ca_file) if ca_file.is_file() else None, interface=interface)
    result = asyncio.run(_swarm_with_progress(configs, access, concurrency, time_scale,
                                              show=not as_json and err.is_terminal))
    if as_json:
        out.print_json(json.dumps({"outcomes": [outcome_json(o) for o in result.outcomes],
                                   "wall_seconds": result.wall_seconds, "requests": result.requests}))
    else:
        table, _summary = _summary_table(result.outcomes, result.wall_seconds, result.requests)
        out.print(table)
    if not all(o.provisioned for o in result.outcomes):
        raise typer.Exit(1)


def demo(
    mode: Annotated[str, typer.Option(
        "--mode", help="auto (namespaces when root with `ip`, else loopback), loopback, or netns.")] = "auto",
    time_scale: Annotated[float, typer.Option("--time-scale", min=0.001)] = 60.0,
) -> None:
    """Start the embedded default lab, boot all its phones against it, and show how they did.

    Exits 0 only when every phone is provisioned, and leaves nothing behind."""
    import asyncio
    import tempfile

    from labkit.demo import choose_mode, run_loopback_demo, run_netns_demo

    chosen = choose_mode(mode)
    loaded = load_inventory(None)
    plan = make_plan(loaded)
    with tempfile.TemporaryDirectory(prefix="labkit-demo-") as workdir:
        try:
            if chosen == "netns":
                result = run_netns_demo(plan, Path(workdir), time_scale, out, err)
            else:
                result = asyncio.run(run_loopback_demo(plan, Path(workdir), time_scale, out, err))
        except LabkitError as exc:
            err.print(f"demo: {exc}", markup=False)
            raise typer.Exit(1) from None
    table, summary = _summary_table(result.outcomes, result.wall_seconds, result.requests)
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
