"""Reload without restart, command-line side: `labkit reload`, the PID file `labkit up` keeps in
its state folder, the plan loader a running lab calls on SIGHUP, and `up --watch`'s file poll."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from labkit.cli.common import StateOption, err, fail, out
from labkit.errors import LabkitError
from labkit.plan.build import Plan

if TYPE_CHECKING:
    from labkit.services.reload import Reloader, ReloadOutcome

PID_FILE = "labkit.pid"
WATCH_EVERY = 1.0  # seconds between two looks at the inventory's files (`up --watch`)
WATCH_MAX_FILES = 2000  # files of the templates folder watched at most


def plan_loader(inventory: Path | None) -> Callable[[], Plan]:
    """What a running lab calls to reload: the inventory loaded and planned again; a failure
    raises ReloadError with the loader's own rendering (file:line of every problem)."""
    from labkit.inventory.load import load
    from labkit.inventory.source import InventoryError
    from labkit.plan.build import build_plan
    from labkit.services.reload import ReloadError

    def reload_plan() -> Plan:
        try:
            loaded = load(inventory)
        except InventoryError as exc:
            count = sum(1 for p in exc.problems if p.severity == "error")
            raise ReloadError(f"{exc.render()}\n{count} error(s)") from None
        try:
            return build_plan(loaded)
        except LabkitError as exc:
            raise ReloadError(f"{loaded.source.file}: error: {exc}") from None

    return reload_plan


def report(outcome: ReloadOutcome) -> None:
    """Print a reload's outcome: the change on stdout, an error on stderr."""
    if outcome.ok:
        out.print("labkit: reloaded: " + "; ".join(outcome.lines), markup=False)
        return
    err.print("labkit: reload failed, the running plan stays:", markup=False)
    for line in outcome.lines:
        err.print(line, markup=False)


@contextlib.contextmanager
def pid_file(state: Path) -> Iterator[Path]:
    """STATE/labkit.pid while the lab runs (removed at the end if it is still ours)."""
    path = state / PID_FILE
    path.write_text(f"{os.getpid()}\n", encoding="ascii")
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            if path.read_text(encoding="ascii").strip() == str(os.getpid()):
                path.unlink()


def _watched(inventory: Path | None, templates: Path | None) -> list[Path]:
    files = [inventory] if inventory is not None else []
    if templates is not None and templates.is_dir():
        for count, path in enumerate(sorted(templates.rglob("*"))):
            if count >= WATCH_MAX_FILES:
                break
            files.append(path)
    return files


def _stamps(files: list[Path]) -> dict[Path, float | None]:
    stamps: dict[Path, float | None] = {}
    for path in files:
        try:
            stamps[path] = path.stat().st_mtime
        except OSError:
            stamps[path] = None
    return stamps


def watch_files(inventory: Path | None, templates: Callable[[], Path | None],
                reloader: Reloader) -> Coroutine[Any, Any, None]:
    """Reload whenever the inventory file or a file of its templates folder changes (mtime polled
    every WATCH_EVERY s; the lab's stop cancels it). The files are looked at once now, so that a
    change made as soon as the lab is up is seen."""
    return _poll(_stamps(_watched(inventory, templates())), inventory, templates, reloader)


async def _poll(seen: dict[Path, float | None], inventory: Path | None, templates: Callable[[], Path | None],
                reloader: Reloader) -> None:
    while True:
        await asyncio.sleep(WATCH_EVERY)
        now = await asyncio.to_thread(lambda: _stamps(_watched(inventory, templates())))
        if now != seen:
            seen = now
            reloader.request()


def _running_pid(state: Path) -> int:
    path = state / PID_FILE
    try:
        pid = int(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        fail(f"no lab is running with state folder {state} (no {path}); start one with `labkit up`")
    except (OSError, ValueError) as exc:
        fail(f"cannot read {path}: {exc}")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        fail(f"no lab is running with state folder {state}: process {pid} of {path} is gone")
    except PermissionError:
        pass  # it runs as another user (root): SIGHUP will say whether we may signal it
    cmdline = Path(f"/proc/{pid}/cmdline")
    with contextlib.suppress(OSError):
        if b"labkit" not in cmdline.read_bytes():
            fail(f"process {pid} of {path} is not labkit; is the lab still running?")
    return pid


def reload(
    state: StateOption = Path(".labkit"),
    timeout: Annotated[float, typer.Option(
        "--timeout", help="Seconds to wait for the running lab to say how the reload went.", min=0.1)] = 30.0,
) -> None:
    """Reload the running lab's inventory without a restart (as SIGHUP does).

    Phones, options, files, zones and faults change; leases and transfers under way carry on.
    Exits 1 when the inventory is broken (the lab keeps its running plan)."""
    from labkit.services.reload import read_result

    pid = _running_pid(state)
    before = read_result(state) or {}
    seen = before.get("count", 0) if before.get("pid") == pid else 0
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as exc:
        fail(f"cannot signal the lab (process {pid}): {exc.strerror or exc}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = read_result(state)
        if result is not None and result.get("pid") == pid and int(result.get("count", 0)) > seen:
            lines = [str(line) for line in result.get("lines", [])]
            if result.get("ok"):
                out.print("labkit: reloaded: " + "; ".join(lines), markup=False)
                return
            err.print("labkit: reload failed, the running plan stays:\n" + "\n".join(lines), markup=False)
            raise typer.Exit(1)
        time.sleep(0.1)
    fail(f"the lab (process {pid}) did not report a reload within {timeout:g} s")
