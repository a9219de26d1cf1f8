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


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
