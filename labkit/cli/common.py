"""What every command shares: the consoles, the inventory argument, loading with located errors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from labkit.errors import LabkitError
from labkit.inventory.load import LoadedInventory, load
from labkit.inventory.source import InventoryError
from labkit.plan.build import Plan, build_plan

# emoji=False: rich would turn the ":ab:" or ":cd:" of a MAC address into an emoji.
out = Console(highlight=False, soft_wrap=True, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

InventoryArg = Annotated[
    Path | None,
    typer.Argument(help="Inventory file (lab.yaml, a Jinja template). Default: the embedded lab.",
                   show_default=False),
]
StateOption = Annotated[
    Path, typer.Option("--state", metavar="DIR",
        help="Folder for what outlives the process: lab CA, leases, logs.")
]


def load_inventory(inventory: Path | None) -> LoadedInventory:
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


def make_plan(loaded: LoadedInventory, *, serving: bool = False) -> Plan:
    """Build the plan, or exit 1. `serving` (check, up): also warn about what only the plan
    shows, URLs that send phones to files it does not serve (located, on stderr; the lab still
    runs: DHCP and DNS work, those fetches fail). Commands that only write the plan out
    (render, export, explain) skip that: their files may be served elsewhere."""
    from labkit.plan.checks import plan_problems

    try:
        plan = build_plan(loaded)
    except LabkitError as exc:
        err.print(f"{loaded.source.file}: error: {exc}", markup=False)
        raise typer.Exit(1) from None
    if serving:
        for problem in plan_problems(plan):
            loaded.warnings.append(problem)
            err.print(problem.render(loaded.source.template_lines), markup=False)
    return plan


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr, then exit `code` (no traceback)."""
    err.print(message, markup=False)
    raise typer.Exit(code)


def os_problem(exc: OSError) -> str:
    """An OSError in one line: what went wrong, and on which file."""
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def state_folder(path: Path) -> Path:
    """The state folder, or exit 1 with one line when something that is not a folder is there."""
    if path.exists() and not path.is_dir():
        fail(f"--state {path}: not a folder (it holds the lab CA, leases and logs); name a folder, "
             "or leave --state out for ./.labkit")
    return path


def output_folder(path: Path, option: str, holds: str) -> Path:
    """A folder a command writes into, or exit 1 with one line when a file is in the way."""
    if path.exists() and not path.is_dir():
        fail(f"{option} {path}: exists and is not a folder; name a new or existing folder for {holds}")
    return path
