"""`labkit simulate`: boot virtual phones against a running lab and report what each achieved."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from labkit.cli.common import InventoryArg, StateOption, err, fail, load_inventory, out
from labkit.errors import LabkitError
from labkit.macros import normalize_mac

if TYPE_CHECKING:
    from rich.table import Table

    from labkit.inventory.model import Inventory
    from labkit.phone.core import Outcome, PhoneConfig
    from labkit.phone.driver import LabAccess, SwarmResult
    from labkit.phone.swarm import Summary


def summary_table(outcomes: list[Outcome], wall: float,
                  requests: dict[str, int]) -> tuple[Table, Summary]:
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
    spread = summary.resync_spread
    if spread is not None:
        table.add_row("resyncs per phone min / median / max", f"{spread[0]} / {spread[1]:g} / {spread[2]}")
        table.add_row("failed resyncs (all phones)", str(summary.resync_failures))
    if set(summary.customization) - {"Open"}:
        table.add_row("remote customization", ", ".join(f"{state} {n}" for state, n in
                                                         summary.customization.items()))
    return table, summary


def parse_duration(text: str) -> float:
    """`6h`, `90m`, `45s`, `2d` or plain seconds -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value = text.strip().lower()
    factor = units.get(value[-1:])
    number = value[:-1] if factor is not None else value
    try:
        seconds = float(number) * (factor or 1)
    except ValueError:
        raise typer.BadParameter(f"{text!r}: expected a duration like 6h, 90m, 45s or 3600") from None
    if seconds < 0:
        raise typer.BadParameter(f"{text!r}: a duration is not negative")
    return seconds


def parse_generations(values: list[str]) -> dict[str, str]:
    """`--generation NAME` (every phone) or `--generation MODEL=NAME`, checked against the table."""
    from labkit.phone.traits import GENERATIONS

    chosen: dict[str, str] = {}
    for value in values:
        model, _, name = value.rpartition("=")
        if name not in GENERATIONS:
            raise typer.BadParameter(f"{name!r} is not a firmware generation; known: "
                                     + ", ".join(GENERATIONS))
        chosen[model or "*"] = name
    return chosen


async def _swarm_with_progress(configs: list[PhoneConfig], access: LabAccess, concurrency: int,
                               time_scale: float, show: bool) -> SwarmResult:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from labkit.phone.driver import run_swarm

    if not show:
        return await run_swarm(configs, access, concurrency=concurrency, time_scale=time_scale)
    columns = (TextColumn("booting phones"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[ok]}"), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("phones", total=len(configs), ok="")
        done = {"ok": 0, "failed": 0}

        def finished(outcome: Outcome) -> None:
            done["ok" if outcome.provisioned else "failed"] += 1
            progress.update(task, advance=1, ok=f"{done['ok']} provisioned, {done['failed']} failed")

        return await run_swarm(configs, access, concurrency=concurrency, time_scale=time_scale,
                               on_done=finished)


def simulate(
    inventory: InventoryArg = None,
    against: Annotated[str, typer.Option(
        "--against", metavar="ADDRESS", help="Address of the running lab.")] = "127.0.0.1",
    port_offset: Annotated[int | None, typer.Option(
        "--port-offset", help="The lab's port offset (default 10000 on loopback, else 0).")] = None,
    phones: Annotated[int | None, typer.Option(
        "--phones", metavar="N", help="Boot N generated phones instead.")] = None,
    phone: Annotated[str | None, typer.Option(
        "--phone", metavar="MAC", help="Boot only this inventory phone.")] = None,
    concurrency: Annotated[int, typer.Option(
        "--concurrency", min=1, help="Phones booting at the same time.")] = 64,
    time_scale: Annotated[float | None, typer.Option(
        "--time-scale", metavar="FACTOR", help="Phone seconds per wall second (retry delays shrink by "
        "it); default 60, with --duration enough to live it in about a minute.", min=0.001)] = None,
    duration: Annotated[str | None, typer.Option(
        "--duration", metavar="TIME", help="Phone time each phone lives after its boot (6h, 90m, "
        "3600): resyncs, upgrades and retries as its profile sets them.")] = None,
    generation: Annotated[list[str] | None, typer.Option(
        "--generation", metavar="[MODEL=]NAME", help="Firmware generation of the phones (or of one "
        "model's): mpp-11, mpp-12 (default), pn-cfg, cisco-ma. Repeatable.")] = None,
    rounds: Annotated[int, typer.Option(
        "--rounds", min=1, help="Failed rounds before a phone gives up.")] = 3,
    interface: Annotated[str | None, typer.Option(
        "--interface", help="Broadcast DHCP on this interface (a real segment, not loopback).")] = None,
    join: Annotated[str | None, typer.Option(
        "--join", metavar="BRIDGE", help="Run the phones in a network namespace of their own, joined "
        "to this bridge by a veth pair; all removed at the end.")] = None,
    check_dhcp: Annotated[bool, typer.Option(
        "--preflight/--no-preflight", help="On a segment, first name the DHCP servers that answer "
        "and stop when none does.")] = True,
    listen: Annotated[float, typer.Option(
        "--preflight-listen", min=0.1, help="Seconds the preflight listens for DHCP servers.")] = 6.0,
    hold: Annotated[float, typer.Option(
        "--hold", min=0, help="Phone seconds each phone stays up once provisioned (renewing).")] = 0.0,
    ca: Annotated[Path | None, typer.Option(
        "--ca", help="Lab CA for HTTPS (default STATE/ca/ca.pem).")] = None,
    state: StateOption = Path(".labkit"),
    as_json: Annotated[bool, typer.Option("--json", help="Print outcomes as JSON.")] = False,
) -> None:
    """Boot virtual phones against a running lab and report what each achieved."""
    loaded = load_inventory(inventory)
    inv = loaded.inventory
    lifetime = parse_duration(duration) if duration is not None else 0.0
    if time_scale is None:
        time_scale = max(60.0, lifetime / 60)  # a lifetime in about a wall minute
    configs = _configs(inv, phones, phone, rounds=rounds, hold=hold, duration=lifetime,
                       generations=parse_generations(generation or []))
    try:
        with _segment(against, interface, join, len(configs)) as segment:
            access = _access(inv, against, port_offset, segment, ca or state / "ca" / "ca.pem")
            if segment is not None and configs:
                _before_boot(access, configs[0], check_dhcp, listen, 0 if join else len(configs))
            result = _run(configs, access, concurrency, time_scale, show=not as_json and err.is_terminal)
    except LabkitError as exc:
        err.print(f"simulate: {exc}", markup=False)
        raise typer.Exit(1) from None
    except KeyboardInterrupt as stop:  # Stopped: a stop signal before or after the swarm
        _stopped(stop)
    _report(result, as_json)


def _report(result: SwarmResult, as_json: bool) -> None:
    """The outcomes (a table, or JSON); exit 1 unless every phone provisioned."""
    import json

    from labkit.phone.swarm import outcome_json

    if as_json:
        out.print_json(json.dumps({"outcomes": [outcome_json(o) for o in result.outcomes],
                                   "wall_seconds": result.wall_seconds, "requests": result.requests}))
    else:
        table, _summary = summary_table(result.outcomes, result.wall_seconds, result.requests)
        out.print(table)
    if not all(o.provisioned for o in result.outcomes):
        raise typer.Exit(1)


def _run(configs: list[PhoneConfig], access: LabAccess, concurrency: int, time_scale: float, *,
         show: bool) -> SwarmResult:
    """The swarm, or one line on stderr and exit 1 (exit 128+N when stopped by signal N)."""
    import asyncio

    from labkit.phone.stopping import Stopped

    try:
        return asyncio.run(_swarm_with_progress(configs, access, concurrency, time_scale, show=show))
    except OSError as exc:
        err.print(f"simulate: {_socket_problem(exc, access)}", markup=False)
        raise typer.Exit(1) from None
    except LabkitError as exc:
        err.print(f"simulate: {exc}", markup=False)
        raise typer.Exit(1) from None
    except Stopped as stop:
        err.print(f"simulate: stopped by {stop.name}; the addresses it added are removed", markup=False)
        raise typer.Exit(stop.exit_code) from None


def _configs(inv: Inventory, phones: int | None, phone: str | None, *, rounds: int,
             hold: float, duration: float = 0.0,
             generations: dict[str, str] | None = None) -> list[PhoneConfig]:
    from labkit.phone.swarm import generated_configs, inventory_configs

    if phones is not None:
        if inv.lab.answer != "any":
            fail(f"simulate: --phones {phones} boots phones the inventory does not list, and this lab "
                 f"answers only its inventory's phones (lab.answer: {inv.lab.answer}), so none would get "
                 "a lease; give the lab `answer: any` and a `pool`, or leave --phones out to boot the "
                 "inventory's phones")
        return generated_configs(inv, phones, rounds=rounds, hold=hold, duration=duration,
                                 generations=generations)
    only = normalize_mac(phone) if phone else None
    configs = inventory_configs(inv, only=only, rounds=rounds, hold=hold, duration=duration,
                                generations=generations)
    if only and not configs:
        err.print(f"--phone: {only} is not in the inventory", markup=False)
        raise typer.Exit(1)
    return configs


def _stopped(stop: KeyboardInterrupt) -> None:
    """A stop signal outside the swarm (namespace set-up, preflight): exit 128+N once undone."""
    from labkit.phone.stopping import Stopped

    if not isinstance(stop, Stopped):
        raise stop
    err.print(f"simulate: stopped by {stop.name}; what it added is removed", markup=False)
    raise typer.Exit(stop.exit_code) from None


@contextlib.contextmanager
def _segment(against: str, interface: str | None, join: str | None, phones: int) -> Iterator[str | None]:
    """The interface the phones broadcast on (None: a lab on loopback), named by the user, never
    guessed; with `join`, inside a namespace of the phones' own, joined to that bridge."""
    from labkit.phone.segment import INSIDE, SegmentError, check_bridge, joined, new_names, sweep_leftovers
    from labkit.phone.stopping import stopped_by_signals

    if against.startswith("127."):
        if join is not None:
            raise SegmentError("--join is for a real segment, and --against names a lab on loopback")
        yield None  # relay-style over loopback: no segment
        return
    if interface is not None and join is not None:
        raise SegmentError("--interface or --join, not both")
    if interface is None and join is None:
        raise SegmentError(f"--against {against} is not on loopback: name the segment with --interface IF "
                           "or --join BRIDGE (the phones never choose a network themselves)")
    with stopped_by_signals():
        if join is None:
            yield interface  # its banner comes once the segment is known to be free (_before_boot)
            return
        check_bridge(join)
        for leftover in sweep_leftovers():
            err.print(f"simulate: removed {leftover}, left by a run that was killed", markup=False)
        names = new_names()
        err.print(f"simulate: {phones} phones in network namespace {names[0]} ({INSIDE}), joined to "
                  f"bridge {join} by veth {names[1]}, {COMMON}; namespace and veth are removed at the end",
                  markup=False)
        with joined(join, names) as joined_segment:
            yield joined_segment.interface


COMMON = ("against whatever DHCP server answers there; no route is added, so only servers on the "
          "segment are reached")


def _before_boot(access: LabAccess, first: PhoneConfig, check_dhcp: bool, listen: float,
                 phones: int) -> None:
    """One swarm per segment; then the DHCP servers that answer there, or stop when none does."""
    from labkit.phone.segment import SegmentError, describe_servers, ensure_free, preflight

    interface, dhcp = access.interface, access.dhcp
    assert interface is not None
    ensure_free(interface, dhcp.client_port)
    if phones:  # 0: the join banner already said it
        err.print(f"simulate: {phones} phones on {interface}, {COMMON}; the addresses they lease go on "
                  f"{interface} and come off at the end", markup=False)
    if not check_dhcp:
        err.print("simulate: no preflight (--no-preflight): the phones boot without a look for DHCP "
                  "servers first", markup=False)
        return
    servers = preflight(interface, first.mac, first.model, listen=listen, server_port=dhcp.server[1],
                        client_port=dhcp.client_port)
    if not servers:
        raise SegmentError(f"no DHCP server answered a DISCOVER from {first.mac} on {interface} within "
                           f"{listen:g} s: nothing to test there (--no-preflight boots the phones anyway)")
    many = "" if len(servers) == 1 else f" ({len(servers)} of them: each phone takes the first OFFER it gets)"
    err.print(f"simulate: DHCP on {interface} answered by {describe_servers(servers)}{many}", markup=False)


def _access(inv: Inventory, against: str, port_offset: int | None, interface: str | None,
            ca_file: Path) -> LabAccess:
    """How the phones reach the lab: relay-style on loopback, by broadcast on a real segment."""
    from labkit.phone.driver import LabAccess, loopback_access
    from labkit.phone.network import DhcpSettings, NetworkMap

    if against.startswith("127."):
        return loopback_access(inv, against, 10000 if port_offset is None else port_offset, ca_file)
    offset = port_offset or 0
    dhcp = DhcpSettings(("255.255.255.255", 67 + offset), client_port=68 + offset, interface=interface)
    return LabAccess(NetworkMap(), dhcp, ca_file=str(ca_file) if ca_file.is_file() else None,
                     interface=interface)


def _socket_problem(exc: OSError, access: LabAccess) -> str:
    """One line for a socket the phones could not open, saying what to do."""
    dhcp = access.dhcp
    local = f"{dhcp.relay_ip}:{dhcp.server[1]}" if dhcp.relay_ip else f"port {dhcp.client_port}"
    if exc.errno == errno.EADDRINUSE:
        return (f"the phones' DHCP address {local} is already in use ({exc.strerror}): another "
                "`labkit simulate` (or a DHCP client) is running against this lab; wait for it to "
                "finish or stop it, then run again")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"cannot open the phones' DHCP socket at {local} ({exc.strerror}): this needs root"
    return f"the phones' network failed: {exc.strerror or exc}"
