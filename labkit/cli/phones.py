"""`labkit simulate`: boot virtual phones against a running lab and report what each achieved."""

from __future__ import annotations

import errno
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
    return table, summary


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
    time_scale: Annotated[float, typer.Option(
        "--time-scale", metavar="FACTOR", help="Phone seconds per wall second (retry delays shrink by it).",
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
    import json

    from labkit.phone.swarm import generated_configs, inventory_configs, outcome_json

    loaded = load_inventory(inventory)
    inv = loaded.inventory
    settings = {"rounds": rounds, "hold": hold}
    if phones is not None:
        if inv.lab.answer != "any":
            fail(f"simulate: --phones {phones} boots phones the inventory does not list, and this lab "
                 f"answers only its inventory's phones (lab.answer: {inv.lab.answer}), so none would get "
                 "a lease; give the lab `answer: any` and a `pool`, or leave --phones out to boot the "
                 "inventory's phones")
        configs = generated_configs(inv, phones, **settings)
    else:
        only = normalize_mac(phone) if phone else None
        configs = inventory_configs(inv, only=only, **settings)
        if only and not configs:
            err.print(f"--phone: {only} is not in the inventory", markup=False)
            raise typer.Exit(1)
    access = _access(inv, against, port_offset, interface, ca or state / "ca" / "ca.pem")
    result = _run(configs, access, concurrency, time_scale, show=not as_json and err.is_terminal)
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
