"""`labkit export`: the plan written for a production engine.

    labkit export [lab.yaml] --to TARGET DIR [--allow-partial] [--lease-backend B] [--ha]

Exit status: 0 when written whole (or with gaps under --allow-partial), 1 on an inventory or
export error, 2 when the target cannot express something the inventory uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from labkit.cli.common import err, load_inventory, make_plan, out
from labkit.errors import LabkitError
from labkit.export import TARGETS, ExportReport, export


def _paths(paths: list[Path]) -> tuple[Path | None, Path]:
    if len(paths) == 1:
        return None, paths[0]
    if len(paths) == 2:
        return paths[0], paths[1]
    err.print("expected [INVENTORY] DIR", markup=False)
    raise typer.Exit(1)


def show(report: ExportReport) -> None:
    out.print(f"{report.target}: wrote {len(report.files)} files to {report.out_dir}/", markup=False)
    for note in report.notes:
        out.print(f"  note: {note}", markup=False)
    for gap in report.gaps:
        err.print(f"  not exported: {gap}", markup=False)
    if report.gaps:
        verdict = "accepted (--allow-partial)" if report.allow_partial else \
            "the export is partial: exit 2 (--allow-partial accepts it)"
        err.print(f"{len(report.gaps)} item(s) not exported; {verdict}", markup=False)


def export_plan(
    paths: Annotated[list[Path], typer.Argument(help="[INVENTORY] DIR: the inventory (default: the "
                                                "embedded lab) and the folder to write to.",
                                                show_default=False)],
    to: Annotated[str, typer.Option("--to", metavar="TARGET", help=f"Target: {', '.join(TARGETS)}.")],
    allow_partial: Annotated[bool, typer.Option("--allow-partial", help="Exit 0 even when the target "
                                                "cannot express everything the inventory uses.")] = False,
    lease_backend: Annotated[str, typer.Option(
        "--lease-backend", metavar="BACKEND",
        help="Kea lease backend: memfile, postgresql, mysql.")] = "memfile",
    ha: Annotated[bool, typer.Option("--ha", help="Kea: a hot-standby pair (two configurations).")] = False,
    interface: Annotated[str | None, typer.Option("--interface", metavar="NAME", help="DHCP interface "
                                                  "(default: lab.interface).")] = None,
    state: Annotated[Path, typer.Option("--state", metavar="DIR",
        help="labkit's state folder: its lab CA issues "
                                        "the nginx certificate.")] = Path(".labkit"),
) -> None:
    """Write the plan for a production engine: kea, dnsmasq, knot, nsd, bind, nginx, tftpd-hpa, all."""
    inventory, out_dir = _paths(paths)
    plan = make_plan(load_inventory(inventory))
    try:
        report = export(plan, to, out_dir, allow_partial=allow_partial, lease_backend=lease_backend,
                        ha=ha, interface=interface, state_dir=state,
                        base_dir=inventory.parent if inventory else None)
    except LabkitError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1) from None
    show(report)
    raise typer.Exit(report.exit_code)
