"""The `labkit` command line (typer). Thin: every command calls into the library."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from labkit.errors import CodecError, LabkitError
from labkit.inventory.load import LoadedInventory, default_lab_dir, load
from labkit.inventory.source import InventoryError
from labkit.macros import normalize_mac

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Network bootstrap lab kit for Cisco MPP (3PCC) phones: DHCP, DNS SRV, TFTP, HTTP(S), "
    "syslog, from one Jinja-templated inventory. Without an INVENTORY, the embedded default lab.",
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

InventoryArg = Annotated[
    Path | None,
    typer.Argument(help="Inventory file (lab.yaml, a Jinja template). Default: the embedded lab.",
                   show_default=False),
]


def _load(inventory: Path | None) -> LoadedInventory:
    """Load or exit 1 with every problem located; warnings go to stderr."""
    try:
        loaded = load(inventory)
    except InventoryError as exc:
        err.print(exc.render(), markup=False)
        count = sum(1 for p in exc.problems if p.severity == "error")
        err.print(f"{count} error(s): nothing was started.", markup=False)
        raise typer.Exit(1) from None
    for warning in loaded.warnings:
        err.print(warning.render(loaded.source.template_lines), markup=False)
    return loaded


def _plan(loaded: LoadedInventory):
    from labkit.plan.build import build_plan

    try:
        return build_plan(loaded)
    except LabkitError as exc:
        err.print(f"{loaded.source.file}: error: {exc}", markup=False)
        raise typer.Exit(1) from None


@app.command()
def check(inventory: InventoryArg = None) -> None:
    """Validate the inventory and build its plan without serving anything."""
    loaded = _load(inventory)
    plan = _plan(loaded)
    inv = loaded.inventory
    out.print(
        f"{loaded.source.file}: ok: lab {inv.lab.name!r}, domain {inv.lab.domain}, "
        f"{len(inv.phones)} phones over {len(inv.models)} models, {len(plan.files)} files, "
        f"{len(plan.zones)} zones, {len(loaded.warnings)} warning(s)",
        markup=False,
    )


@app.command()
def render(
    inventory: InventoryArg = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder to write the plan to.")] = Path(
        "plan"
    ),
) -> None:
    """Write what every service will serve: zones/, files/ and dhcp.json."""
    from labkit.plan.write import write_plan

    loaded = _load(inventory)
    plan = _plan(loaded)
    written = write_plan(plan, output)
    out.print(f"wrote {len(written)} files to {output}/ (zones/, files/, dhcp.json)", markup=False)


@app.command()
def explain(
    inventory: InventoryArg = None,
    phone: Annotated[str | None, typer.Option("--phone", help="MAC of the phone to explain.")] = None,
) -> None:
    """Show what a phone gets by DHCP (annotated bytes), finds in DNS, and fetches, in order."""
    from labkit.explain import explain_phone

    loaded = _load(inventory)
    plan = _plan(loaded)
    if phone is None:
        macs = list(plan.phones)
        if not macs:
            err.print("the inventory has no phones to explain", markup=False)
            raise typer.Exit(1)
        mac = macs[0]
        err.print(f"(no --phone given: explaining the first phone, {mac}; "
                  f"{len(macs)} in the inventory)", markup=False)
    else:
        try:
            mac = normalize_mac(phone)
        except CodecError as exc:
            err.print(f"--phone: {exc}", markup=False)
            raise typer.Exit(2) from None
        if mac not in plan.phones:
            err.print(f"--phone: {mac} is not in the inventory", markup=False)
            raise typer.Exit(1)
    out.print(explain_phone(plan, mac), markup=False)


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the starting lab in.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing lab.yaml.")] = False,
) -> None:
    """Write the default lab (lab.yaml with comments, templates/, firmware/) as a starting point."""
    source = default_lab_dir()
    target = directory / "lab.yaml"
    if target.exists() and not force:
        err.print(f"{target} exists; use --force to overwrite it", markup=False)
        raise typer.Exit(1)
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / "lab.yaml", target)
    for sub in ("templates", "firmware"):
        shutil.copytree(source / sub, directory / sub, dirs_exist_ok=True)
    out.print(f"wrote {target}, {directory / 'templates'}/ and {directory / 'firmware'}/; next: "
              f"labkit check {target}", markup=False)


StateOption = Annotated[
    Path, typer.Option("--state", help="Folder for what outlives the process: lab CA, leases, logs.")
]


@app.command()
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
) -> None:
    """Serve the plan: DHCP, DNS, TFTP, HTTP(S) and syslog in one process, until Ctrl-C or SIGTERM."""
    import asyncio

    from labkit.faults import parse_cli_rule

    loaded = _load(inventory)
    plan = _plan(loaded)
    try:
        rules = [parse_cli_rule(text) for text in fault or []]
        asyncio.run(_up(plan, loopback, port_offset, state, log, quiet, allow_other_dhcp, rules,
                        (pcap, pcap_per_phone)))
    except LabkitError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1) from None


async def _up(plan, loopback: bool, port_offset: int | None, state: Path, log: Path | None,
              quiet: bool, allow_other_dhcp: bool, faults: list | None = None,
              pcaps: tuple[Path | None, Path | None] = (None, None)) -> None:
    import asyncio

    from labkit.board import BoardState, LiveBoard
    from labkit.events import StaticDirectory
    from labkit.services.supervisor import JsonLinesLog, serve_until_stopped, start_lab

    log_path = log or state / "logs" / "events.jsonl"
    journal = JsonLinesLog(log_path)
    board: LiveBoard | None = None
    sinks = [journal]
    try:
        lab = await start_lab(plan, loopback=loopback, port_offset=port_offset, state_dir=state,
                              sinks=sinks, allow_other_dhcp=allow_other_dhcp, faults=faults)
    except LabkitError:
        journal.close()
        raise
    inv = plan.inventory
    capture = None
    if pcaps != (None, None):
        from labkit.capture import Capture, CaptureError

        on_loopback = any(e.host == "127.0.0.1" for e in lab.endpoints.values())
        interface = "lo" if on_loopback else (inv.lab.interface or "lo")
        ports = {e.port for e in lab.endpoints.values()}
        dhcp_ports: frozenset[int] = frozenset()
        if "dhcp" in lab.endpoints:
            dhcp_ports = frozenset({lab.endpoints["dhcp"].port, lab.endpoints["dhcp"].port + 1})
            ports |= dhcp_ports
        try:
            capture = Capture(interface, ports, pcaps[0], pcaps[1], lab.directory or StaticDirectory(),
                              dhcp_ports)
            capture.start()
        except (CaptureError, OSError) as exc:
            await lab.close()
            journal.close()
            raise LabkitError(f"--pcap: {exc}") from None
    out.print(f"labkit: lab {inv.lab.name!r} ({inv.lab.domain}), {len(inv.phones)} phones, "
              f"{len(plan.files)} files; events to {log_path}", markup=False)
    for endpoint in lab.endpoints.values():
        out.print(f"  {endpoint}", markup=False)
    if lab.ca_path is not None:
        out.print(f"  lab CA: {lab.ca_path} (curl --cacert {lab.ca_path})", markup=False)
    if lab.faults is not None:
        for index, rule in enumerate(lab.faults.rules):
            when, match = rule.when.model_dump(exclude_none=True), rule.match.model_dump(exclude_none=True)
            out.print(f"  fault: {rule.label(index)}: {rule.service} when {when} matching {match}",
                      markup=False)
    out.print("Ctrl-C stops the lab.", markup=False)
    if not quiet:
        if out.is_terminal:
            board = LiveBoard(BoardState.from_plan(plan), out)
            board.__enter__()
            lab.bus.sinks.append(board)
        else:
            lab.bus.sinks.append(lambda e: out.print(
                f"{e.service} {e.client or '-'} {e.phone or '-'} {e.action} {e.request} -> {e.answer} "
                f"[{e.result}]", markup=False))
    flusher = asyncio.create_task(journal.flush_periodically())
    try:
        await serve_until_stopped(lab)
    finally:
        if capture is not None:
            capture.stop()
            out.print(f"labkit: captured {capture.count} packets", markup=False)
        flusher.cancel()
        if board is not None:
            board.__exit__(None, None, None)
        journal.close()
        out.print(f"labkit: stopped; {lab.bus.count} events logged to {log_path}", markup=False)


@app.command()
def ca(inventory: InventoryArg = None, state: StateOption = Path(".labkit")) -> None:
    """Print the path of the lab CA certificate (made now if the lab has not started yet)."""
    from labkit.tls import ensure_ca

    loaded = _load(inventory)
    ensure_ca(state, loaded.inventory.lab.name)
    from labkit.tls import ca_path

    out.print(str(ca_path(state).resolve()), markup=False)


@app.command()
def leases(state: StateOption = Path(".labkit")) -> None:
    """List the DHCP leases kept in the state folder: MAC, IP, phone, expiry, state."""
    import datetime

    from rich.table import Table

    from labkit.services.leases import read_leases

    now = datetime.datetime.now(datetime.UTC).timestamp()
    table = Table(title=f"leases in {state}")
    for column in ("MAC", "IP", "phone", "expires (UTC)", "state"):
        table.add_column(column)
    rows = sorted(read_leases(state), key=lambda lease: int(lease.ip))
    for lease in rows:
        state_text = lease.state
        if lease.state == "bound" and lease.expires <= now:
            state_text = "expired"
        when = datetime.datetime.fromtimestamp(lease.expires, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
        mac = "-" if lease.state == "declined" else lease.mac
        table.add_row(mac, str(lease.ip), lease.phone or "", when, state_text)
    out.print(table)
    if not rows:
        out.print("no leases yet", markup=False)


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


@app.command()
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
    hold: Annotated[float, typer.Option(
        "--hold", min=0, help="Phone seconds each phone stays up once provisioned (renewing).")] = 0.0,
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
    from labkit.phone.stopping import Stopped
    from labkit.phone.swarm import generated_configs, inventory_configs, outcome_json

    loaded = _load(inventory)
    inv = loaded.inventory
    settings = {"rounds": rounds, "hold": hold}
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
    try:
        result = asyncio.run(_swarm_with_progress(configs, access, concurrency, time_scale,
                                                  show=not as_json and err.is_terminal))
    except LabkitError as exc:
        err.print(f"simulate: {exc}", markup=False)
        raise typer.Exit(1) from None
    except Stopped as stop:
        err.print(f"simulate: stopped by {stop.name}; the addresses it added are removed", markup=False)
        raise typer.Exit(stop.exit_code) from None
    if as_json:
        out.print_json(json.dumps({"outcomes": [outcome_json(o) for o in result.outcomes],
                                   "wall_seconds": result.wall_seconds, "requests": result.requests}))
    else:
        table, _summary = _summary_table(result.outcomes, result.wall_seconds, result.requests)
        out.print(table)
    if not all(o.provisioned for o in result.outcomes):
        raise typer.Exit(1)


@app.command()
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
    from labkit.phone.stopping import Stopped, stopped_by_signals

    chosen = choose_mode(mode)
    loaded = _load(None)
    plan = _plan(loaded)
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


@app.command()
def timeline(
    mac: Annotated[str, typer.Argument(help="The phone's MAC.")],
    log: Annotated[Path, typer.Option("--log", help="The event log (JSON lines).")] = Path(
        ".labkit/logs/events.jsonl"),
) -> None:
    """One phone's story from the event log, in order, and where it stalled."""
    from labkit.timeline import read_events, story

    try:
        phone = normalize_mac(mac)
    except CodecError as exc:
        err.print(f"timeline: {exc}", markup=False)
        raise typer.Exit(2) from None
    if not log.is_file():
        err.print(f"timeline: no event log at {log} (labkit up writes one; see --log)", markup=False)
        raise typer.Exit(1)
    for line in story(read_events(log), phone).lines():
        out.print(line, markup=False)


@app.command()
def scenario(
    name: Annotated[str | None, typer.Argument(help="Scenario name (a file in scenarios/).")] = None,
    run_all: Annotated[bool, typer.Option("--all", help="Run every scenario.")] = False,
    show: Annotated[bool, typer.Option("--list", help="List the scenarios.")] = False,
) -> None:
    """Reproduce documented phone behaviour against the real services; pass or fail per scenario."""
    from labkit.scenarios import ScenarioError, names, run_scenario

    available = names()
    if show or (name is None and not run_all):
        for item in available:
            out.print(item, markup=False)
        return
    chosen = available if run_all else [name or ""]
    failed = 0
    for item in chosen:
        try:
            result = run_scenario(item)
        except ScenarioError as exc:
            err.print(f"scenario: {exc}", markup=False)
            raise typer.Exit(2) from None
        verdict = "PASS" if result.passed else "FAIL"
        out.print(f"{verdict} {item}: {result.description}", markup=False)
        for problem in result.problems:
            out.print(f"     {problem}", markup=False)
        if not result.passed and result.outcome is not None:
            for step in result.outcome.timeline:
                out.print(f"       {step.kind:<9} {step.detail}", markup=False)
        failed += not result.passed
    if failed:
        raise typer.Exit(1)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
