"""Commands that run things: up (the lab), simulate (virtual phones), demo (both)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
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
    from labkit.board import BoardState
    from labkit.services.admin import AdminSettings
    from labkit.services.running import LogSettings
    from labkit.services.supervisor import RunningLab


# the longer `up` options, named here so that `up` itself stays readable
PcapOption = Annotated[Path | None, typer.Option(
        "--pcap", metavar="FILE",
        help="Write every packet the kit receives and sends to this pcap file (root). Off the "
        "standard ports, FILE.decode-as.txt beside it holds the tshark/Wireshark arguments that dissect it.")]
TlsKeylogOption = Annotated[Path | None, typer.Option(
        "--tls-keylog", metavar="FILE",
        help="Append the TLS session keys of every HTTPS connection to this file "
        "(NSS key log format), so Wireshark or tshark decrypt a --pcap capture "
        "(-o tls.keylog_file:FILE). Anyone with the file reads the traffic.")]
FaultOption = Annotated[list[str] | None, typer.Option(
        "--fault", metavar="RULE", help="A fault rule in YAML flow syntax, e.g. "
        "'{match: {path: \"/Cisco/*\"}, http: {status: 404}, when: {first: 2}}' (repeatable).")]
AdminOption = Annotated[str, typer.Option(
        "--admin", metavar="WHERE",
        help="Where the dashboard, /metrics and the control API listen: HOST, HOST:PORT, :PORT "
        "or off (default 127.0.0.1, port 8080 moved like every port). Off loopback a token is required.")]
AdminTokenOption = Annotated[str | None, typer.Option(
        "--admin-token", metavar="TOKEN", envvar="LABKIT_ADMIN_TOKEN", show_envvar=True,
        help="The token the admin port requires (Bearer, Basic password or ?token=); made up and "
        "printed when the port is off loopback and none is given.")]


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
    pcap: PcapOption = None,
    pcap_per_phone: Annotated[Path | None, typer.Option(
        "--pcap-per-phone", metavar="DIR",
        help="Also write one pcap file per phone into this folder (root).")] = None,
    tls_keylog: TlsKeylogOption = None,
    fault: FaultOption = None,
    log_max_mb: Annotated[float, typer.Option(
        "--log-max-mb", metavar="MIB", help="Rotate the event log when it reaches this size (MiB).")] = 32,
    log_files: Annotated[int, typer.Option(
        "--log-files", help="Rotated event logs kept (LOG.1 .. LOG.N) besides the current one.")] = 3,
    admin: AdminOption = "127.0.0.1",
    admin_token: AdminTokenOption = None,
    watch: Annotated[bool, typer.Option(
        "--watch", help="Reload when the inventory file or a file of its templates folder changes.")] = False,
    workers: Annotated[str, typer.Option(
        "--workers", metavar="N|auto", help="Serve DNS, TFTP and HTTP in N processes (auto: one per "
        "CPU); DHCP, HTTPS, syslog and the event log stay in the main process.")] = "1",
) -> None:
    """Serve the plan: DHCP, DNS, TFTP, HTTP(S) and syslog in one process, until Ctrl-C or SIGTERM.

    SIGHUP (or `labkit reload`) reloads the inventory without a restart."""
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
    admin_settings = admin_option(admin, admin_token)
    try:
        rules = [parse_cli_rule(text) for text in fault or []]
        asyncio.run(_up(plan, settings, quiet, Reloading(inventory, watch), pcaps=(pcap, pcap_per_phone),
                        loopback=loopback, port_offset=port_offset, state_dir=state,
                        allow_other_dhcp=allow_other_dhcp, faults=rules, admin=admin_settings,
                        tls_keylog=tls_keylog, workers=workers_option(workers)))
    except LabkitError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1) from None
    except OSError as exc:
        fail(f"error: {os_problem(exc)}")


def workers_option(value: str) -> int:
    """--workers: a count of 1 or more, or `auto` (the CPUs this process may use)."""
    if value.strip().lower() == "auto":
        from labkit.services.workers import auto_workers

        return auto_workers()
    if not value.strip().isdigit() or int(value) < 1:
        fail(f"--workers takes a count of 1 or more, or auto, not {value!r}", 2)
    return int(value)


@dataclasses.dataclass(frozen=True)
class Reloading:
    """How `labkit up` reloads: the inventory to read again, and whether to watch its files."""

    inventory: Path | None
    watch: bool = False


async def _up(plan: Plan, log: LogSettings, quiet: bool, reloading: Reloading, **start: Any) -> None:
    """`start`: run_lab's keyword arguments (pcaps, loopback, port_offset, state_dir, ...)."""
    from labkit.board import BoardState, LiveBoard
    from labkit.services.running import run_lab

    log_path = log.path
    async with run_lab(plan, log=log, **start) as lab:
        board = BoardState.from_plan(lab.plan) if not quiet and out.is_terminal else None

        def ready() -> None:  # signals are handled from here on: SIGHUP reloads
            _banner(lab, log_path)
            _capture_banner(lab, start.get("tls_keylog"))
            out.print("`labkit reload` (or SIGHUP) reloads the inventory without a restart.", markup=False)
            out.print("Ctrl-C stops the lab.", markup=False)
            if board is not None:
                lab.watch(LiveBoard(board, out))
            elif not quiet:
                lab.follow(lambda e: out.print(
                    f"{e.service} {e.client or '-'} {e.phone or '-'} {e.action} {e.request} -> {e.answer} "
                    f"[{e.result}]", markup=False))

        await _serve(lab, reloading, board, ready)
    if lab.capture is not None:
        out.print(f"labkit: captured {lab.capture.count} packets", markup=False)
    out.print(f"labkit: stopped; {lab.bus.count} events logged to {log_path}", markup=False)


async def _serve(lab: RunningLab, reloading: Reloading, board: BoardState | None,
                 ready: Callable[[], None]) -> None:
    """Serve until SIGINT or SIGTERM; SIGHUP (and `--watch`) reload the inventory meanwhile."""
    import asyncio

    from labkit.cli.reload import pid_file, plan_loader, report, watch_files
    from labkit.services.reload import Reloader, ReloadOutcome
    from labkit.services.supervisor import wait_for_stop

    def told(outcome: ReloadOutcome) -> None:
        if board is not None and outcome.ok:  # new phones get their row
            for mac, row in BoardState.from_plan(lab.plan).rows.items():
                board.rows.setdefault(mac, row)
        report(outcome)
        if outcome.ok:  # the new inventory's warnings, as `labkit up` prints them at start
            for warning in lab.plan.loaded.warnings:
                err.print(warning.render(lab.plan.loaded.source.template_lines), markup=False)

    source = str(reloading.inventory) if reloading.inventory is not None else "<embedded default>"
    reloader = Reloader(lab, plan_loader(reloading.inventory), told, source)
    watcher = None
    if reloading.watch:
        watcher = asyncio.create_task(watch_files(reloading.inventory, lambda: lab.plan.loaded.templates_dir,
                                                  reloader))
    try:
        with pid_file(lab.state_dir):
            await wait_for_stop(on_reload=reloader.request, ready=ready)
    finally:
        for task in (watcher, reloader.task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def _banner(lab: RunningLab, log_path: Path) -> None:
    inv = lab.plan.inventory
    out.print(f"labkit: lab {inv.lab.name!r} ({inv.lab.domain}), {len(inv.phones)} phones, "
              f"{len(lab.plan.files)} files; events to {log_path}", markup=False)
    for name, endpoint in lab.endpoints.items():
        pids = getattr(lab.services.get(name), "workers", None)
        shared = f"  ({len(pids)} worker processes: {' '.join(map(str, pids))})" if pids else ""
        out.print(f"  {endpoint}{shared}", markup=False)
    if lab.ca_path is not None:
        out.print(f"  lab CA: {lab.ca_path} (curl --cacert {lab.ca_path})", markup=False)
    out.print(f"  fast paths: {_fast_paths()}", markup=False)
    if lab.admin is not None:
        url = f"http://{lab.admin.host}:{lab.admin.port}/"
        keyed = f"?token={lab.admin_token}" if lab.admin_token else ""
        out.print(f"  admin:  dashboard {url}{keyed}  metrics {url}metrics", markup=False)
    if lab.control_socket is not None:
        out.print(f"  control socket: {lab.control_socket} (labkit status --state "
                  f"{lab.control_socket.parent})", markup=False)
    for rule in lab.plan.faults:
        when = {k: v for k, v in dataclasses.asdict(rule.when).items() if v is not None}
        match = {k: v for k, v in dataclasses.asdict(rule.match).items() if v is not None}
        out.print(f"  fault: {rule.label}: {rule.service} when {when} matching {match}", markup=False)


def _fast_paths() -> str:
    """Which compiled fast paths (labkit.native) this process runs with, in the banner's words."""
    from labkit import native

    names = {"_tftp": "TFTP steady phase", "_tftp_pool": "TFTP loop threads",
             "_udp": "DNS UDP drain", "_dhcp": "DHCP codec", "_events": "journal lines",
             "_fold": "status fold"}
    built = native.available()
    if not native.enabled():
        return "off (LABKIT_NATIVE=0): pure Python"
    running = [names.get(name, name) for name, ok in built.items() if ok]
    missing = [names.get(name, name) for name, ok in built.items() if not ok]
    text = ", ".join(running) if running else "none"
    return text + (f"; not built here: {', '.join(missing)} (pure Python)" if missing else "")


def _capture_banner(lab: RunningLab, keylog: Path | None) -> None:
    """Where the TLS keys go, and how to read the capture when the lab is on other ports."""
    if keylog is not None:
        where = (f"{keylog} (tshark -o tls.keylog_file:{keylog})" if "https" in lab.endpoints
                 else f"{keylog}: no HTTPS in this lab, nothing will be logged")
        out.print(f"  TLS session keys: {where}", markup=False)
    capture = lab.capture
    if capture is None or not capture.hints:
        return
    for pcap, arguments in capture.hints:
        out.print(f"  pcap: {capture.dissection.command(pcap)}", markup=False)
        out.print(f"        (arguments in {arguments}; decode_as_entries beside it for a Wireshark "
                  "profile)", markup=False)


def admin_option(value: str, token: str | None) -> AdminSettings:
    """--admin HOST | HOST:PORT | :PORT | off, and the token it needs off loopback."""
    import ipaddress
    import secrets

    from labkit.services.admin import AdminSettings

    if value.strip().lower() == "off":
        return AdminSettings(enabled=False)
    host, port_text = value, ""
    if value.count(":") == 1:
        host, port_text = value.split(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text) if port_text else None
        address = ipaddress.ip_address(host)
    except ValueError:
        fail(f"--admin {value}: expected an IP address, ADDRESS:PORT, :PORT or off", 2)
    if port is not None and not 1 <= port <= 65535:
        fail(f"--admin {value}: port {port} is outside 1..65535", 2)
    if not address.is_loopback and not token:
        token = secrets.token_urlsafe(18)
    return AdminSettings(True, host, port, token or None)


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
