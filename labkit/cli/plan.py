"""Commands about the plan, without serving anything: check, render, explain, init."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from labkit.cli.common import (
    InventoryArg,
    err,
    fail,
    load_inventory,
    make_plan,
    os_problem,
    out,
    output_folder,
)
from labkit.errors import CodecError
from labkit.inventory.load import LoadedInventory, default_lab_dir
from labkit.macros import normalize_mac

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object (shape: labkit.cli.shapes).")]


def check(inventory: InventoryArg = None, as_json: JsonOption = False) -> None:
    """Validate the inventory and build its plan without serving anything."""
    loaded = _load_for_json(inventory) if as_json else load_inventory(inventory)
    plan = make_plan(loaded, serving=True)
    inv = loaded.inventory
    if as_json:
        from labkit.cli.shapes import emit

        emit({"ok": True, "file": str(loaded.source.file), "lab": inv.lab.name, "domain": inv.lab.domain,
              "phones": len(inv.phones), "models": len(inv.models), "files": len(plan.files),
              "zones": len(plan.zones),
              "warnings": [w.render(loaded.source.template_lines) for w in loaded.warnings]})
        return
    out.print(
        f"{loaded.source.file}: ok: lab {inv.lab.name!r}, domain {inv.lab.domain}, "
        f"{len(inv.phones)} phones over {len(inv.models)} models, {len(plan.files)} files, "
        f"{len(plan.zones)} zones, {len(loaded.warnings)} warning(s)",
        markup=False,
    )


def _load_for_json(inventory: Path | None) -> LoadedInventory:
    """Load, or print the problems as `check --json` shapes them and exit 1."""
    from labkit.cli.shapes import check_failed_shape, emit
    from labkit.inventory.load import load
    from labkit.inventory.source import InventoryError

    try:
        return load(inventory)
    except InventoryError as exc:
        emit(check_failed_shape(str(inventory or "(embedded default lab)"), exc))
        raise typer.Exit(1) from None


def render(
    inventory: InventoryArg = None,
    output: Annotated[Path, typer.Option("-o", "--output", metavar="DIR",
                                         help="Folder to write the plan to.")] = Path("plan"),
    force: Annotated[bool, typer.Option(
        "--force", help="Replace zones/ and files/ in DIR even when they hold files labkit did not write.")
    ] = False,
) -> None:
    """Write what every service will serve: zones/, files/ and dhcp.json."""
    from labkit.plan.write import RenderRefused, write_plan

    output_folder(output, "-o", "zones/, files/ and dhcp.json")
    loaded = load_inventory(inventory)
    plan = make_plan(loaded)
    try:
        written = write_plan(plan, output, force=force)
    except RenderRefused as exc:
        fail(f"render: {exc}")
    except OSError as exc:
        fail(f"render: {os_problem(exc)}")
    out.print(f"wrote {len(written)} files to {output}/ (zones/, files/, dhcp.json)", markup=False)


def explain(
    inventory: InventoryArg = None,
    phone: Annotated[str | None, typer.Option("--phone", metavar="MAC",
        help="MAC of the phone to explain.")] = None,
    generation: Annotated[str, typer.Option("--generation", metavar="NAME",
        help="The phone's firmware generation: mpp-11, mpp-12, pn-cfg, cisco-ma.")] = "mpp-12",
    as_json: JsonOption = False,
) -> None:
    """Show what a phone gets by DHCP (annotated bytes), finds in DNS, and fetches, in order."""
    from labkit.explain import explain_phone

    loaded = load_inventory(inventory)
    plan = make_plan(loaded)
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
    from labkit.phone.traits import GENERATIONS

    if generation not in GENERATIONS:
        err.print(f"--generation: {generation!r} is not one of {', '.join(GENERATIONS)}", markup=False)
        raise typer.Exit(2)
    text = explain_phone(plan, mac, generation)
    if as_json:
        from labkit.cli.shapes import emit, explain_shape

        emit(explain_shape(plan, mac, text))
        return
    out.print(text, markup=False)


def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the starting lab in.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing lab.yaml.")] = False,
) -> None:
    """Write the default lab (lab.yaml with comments, templates/, firmware/) as a starting point."""
    source = default_lab_dir()
    target = directory / "lab.yaml"
    output_folder(directory, "init:", "the lab")
    if target.exists() and not force:
        err.print(f"{target} exists; use --force to overwrite it", markup=False)
        raise typer.Exit(1)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / "lab.yaml", target)
        for sub in ("templates", "firmware"):
            shutil.copytree(source / sub, directory / sub, dirs_exist_ok=True)
    except OSError as exc:
        fail(f"init: {os_problem(exc)}")
    out.print(f"wrote {target}, {directory / 'templates'}/ and {directory / 'firmware'}/; next: "
              f"labkit check {target}", markup=False)
