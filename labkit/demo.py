"""`labkit demo`: the embedded lab and all its phones, on loopback or in network namespaces."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from rich.console import Console

from labkit.board import BoardState, LiveBoard
from labkit.errors import LabkitError
from labkit.phone.driver import SwarmResult, run_swarm
from labkit.phone.swarm import inventory_configs
from labkit.plan.build import Plan


def choose_mode(mode: str) -> str:
    if mode in ("loopback", "netns"):
        return mode
    if mode != "auto":
        raise LabkitError(f"--mode {mode!r}: expected auto, loopback or netns")
    return "netns" if os.geteuid() == 0 and shutil.which("ip") else "loopback"


def free_offset() -> int:
    """A port offset at which every service port is free on 127.0.0.1."""
    import random
    import socket

    ports = (53, 67, 69, 80, 443, 514)
    for _ in range(200):
        offset = random.randrange(20000, 60000, 100)
        free = True
        for port in ports:
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                with socket.socket(socket.AF_INET, kind) as probe:
                    try:
                        probe.bind(("127.0.0.1", port + offset))
                    except OSError:
                        free = False
        if free:
            return offset
    raise LabkitError("no free port offset on 127.0.0.1")


async def run_loopback_demo(plan: Plan, workdir: Path, time_scale: float, out: Console,
                            err: Console) -> SwarmResult:
    from labkit.cli import _loopback_access
    from labkit.services.supervisor import JsonLinesLog, start_lab

    offset = free_offset()
    journal = JsonLinesLog(workdir / "events.jsonl")
    lab = await start_lab(plan, port_offset=offset, state_dir=workdir / "state", sinks=[journal])
    out.print(f"demo: loopback mode: the embedded lab on 127.0.0.1, ports +{offset}; "
              f"{len(plan.phones)} virtual phones", markup=False)
    board = LiveBoard(BoardState.from_plan(plan), out) if out.is_terminal else None
    try:
        if board is not None:
            board.__enter__()
            lab.bus.sinks.append(board)
        access = _loopback_access(plan.inventory, "127.0.0.1", offset, lab.ca_path)
        configs = inventory_configs(plan.inventory, rounds=3)
        return await run_swarm(configs, access, concurrency=64, time_scale=time_scale)
    finally:
        if board is not None:
            board.__exit__(None, None, None)
        await lab.close()
        journal.close()


def run_netns_demo(plan: Plan, workdir: Path, time_scale: float, out: Console, err: Console) -> SwarmResult:
    raise LabkitError("network-namespace mode is not built yet; run `labkit demo --mode loopback`")
