"""`labkit demo`: the embedded lab and all its phones, on loopback or in network namespaces."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from labkit.board import BoardState, LiveBoard
from labkit.errors import LabkitError
from labkit.phone.core import Outcome, Step
from labkit.phone.driver import SwarmResult, run_swarm
from labkit.phone.swarm import inventory_configs
from labkit.plan.build import Plan


def choose_mode(mode: str) -> str:
    if mode in ("loopback", "netns"):
        return mode
    if mode != "auto":
        raise LabkitError(f"--mode {mode!r}: expected auto, loopback or netns")
    return "netns" if os.geteuid() == 0 and shutil.which("ip") else "loopback"


async def run_loopback_demo(plan: Plan, workdir: Path, time_scale: float, out: Console,
                            err: Console) -> SwarmResult:
    from labkit.phone.driver import loopback_access
    from labkit.services.supervisor import JsonLinesLog, free_port_offset, start_lab

    offset = free_port_offset()
    journal = JsonLinesLog(workdir / "events.jsonl")
    lab = await start_lab(plan, port_offset=offset, state_dir=workdir / "state", sinks=[journal])
    out.print(f"demo: loopback mode: the embedded lab on 127.0.0.1, ports +{offset}; "
              f"{len(plan.phones)} virtual phones", markup=False)
    board = LiveBoard(BoardState.from_plan(plan), out) if out.is_terminal else None
    try:
        if board is not None:
            board.__enter__()
            lab.bus.sinks.append(board)
        access = loopback_access(plan.inventory, "127.0.0.1", offset, lab.ca_path)
        configs = inventory_configs(plan.inventory, rounds=3)
        return await run_swarm(configs, access, concurrency=64, time_scale=time_scale)
    finally:
        if board is not None:
            board.__exit__(None, None, None)
        await lab.close()
        journal.close()


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise LabkitError(f"ip {' '.join(args)}: {result.stderr.strip()}")


class Segment:
    """Two network namespaces joined by a veth pair: the lab's interface and the phones' side."""

    def __init__(self, lab_interface: str, lab_address: str) -> None:
        tag = secrets.token_hex(3)
        self.lab_ns, self.phones_ns = f"lkd-{tag}-lab", f"lkd-{tag}-ph"
        self.lab_interface, self.phones_interface = lab_interface, "phones0"
        self.lab_address = lab_address
        self.veth_tmp = f"lkd{tag}a", f"lkd{tag}b"

    def __enter__(self) -> Segment:
        try:
            _ip("netns", "add", self.lab_ns)
            _ip("netns", "add", self.phones_ns)
            _ip("link", "add", self.veth_tmp[0], "type", "veth", "peer", "name", self.veth_tmp[1])
            _ip("link", "set", self.veth_tmp[0], "netns", self.lab_ns)
            _ip("link", "set", self.veth_tmp[1], "netns", self.phones_ns)
            for ns, old, new in ((self.lab_ns, self.veth_tmp[0], self.lab_interface),
                                 (self.phones_ns, self.veth_tmp[1], self.phones_interface)):
                _ip("-n", ns, "link", "set", old, "name", new)
                _ip("-n", ns, "link", "set", new, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", self.lab_ns, "addr", "add", self.lab_address, "dev", self.lab_interface)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *_: object) -> None:
        # deleting a namespace removes its veth end, and the peer with it
        for ns in (self.lab_ns, self.phones_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self.veth_tmp[0]], capture_output=True, timeout=30)


def _stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.communicate(timeout=30)[0] or ""
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate(timeout=30)[0] or ""


def run_netns_demo(plan: Plan, workdir: Path, time_scale: float, out: Console, err: Console) -> SwarmResult:
    """The lab in one namespace on the inventory's interface and address, the phones in another.

    However it ends (an error, or `Stopped` by a signal), both processes are stopped before the
    namespaces go: a process left inside would keep a deleted namespace alive."""
    inv = plan.inventory
    interface = inv.lab.interface or "labkit0"
    state, log = workdir / "state", workdir / "events.jsonl"
    python = sys.executable
    with Segment(interface, str(inv.lab.address)) as segment:
        out.print(f"demo: network-namespace mode: lab in {segment.lab_ns} on {interface} "
                  f"({inv.lab.address}), phones in {segment.phones_ns}; DHCP by broadcast", markup=False)
        lab = subprocess.Popen(["ip", "netns", "exec", segment.lab_ns, python, "-m", "labkit", "up",
                                "--state", str(state), "--log", str(log), "--quiet"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        phones: subprocess.Popen[str] | None = None
        try:
            _wait_ready(lab)
            board = LiveBoard(BoardState.from_plan(plan), out) if out.is_terminal else None
            command = ["ip", "netns", "exec", segment.phones_ns, python, "-m", "labkit", "simulate",
                       "--against", str(inv.lab.address.ip), "--interface", segment.phones_interface,
                       "--ca", str(state / "ca" / "ca.pem"), "--json", "--time-scale", str(time_scale)]
            started = time.monotonic()
            phones = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if board is not None:
                with board:
                    _follow(log, board, phones)
            stdout, stderr = phones.communicate(timeout=600)
            wall = time.monotonic() - started
        finally:
            if phones is not None and phones.poll() is None:
                _stop(phones)
            lab_output = _stop(lab)
        if "Traceback" in lab_output:
            err.print(lab_output, markup=False)
        try:
            data = json.loads(stdout)
        except ValueError:
            raise LabkitError(f"the phones did not report: {stderr.strip() or stdout.strip()}") from None
    return SwarmResult([_outcome(o) for o in data["outcomes"]], wall, data["requests"])


def _wait_ready(lab: subprocess.Popen[str]) -> None:
    assert lab.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = lab.stdout.readline()
        if not line:
            break
        seen.append(line)
        if "Ctrl-C stops the lab." in line:
            return
    raise LabkitError("the lab did not start:\n" + "".join(seen) + _stop(lab))


def _follow(log: Path, board: LiveBoard, phones: subprocess.Popen[str]) -> None:
    """Feed the lab's event log to the board while the phones run."""
    from labkit.events import Event

    offset = 0
    while True:
        done = phones.poll() is not None
        if log.exists():
            with log.open(encoding="utf-8") as f:
                f.seek(offset)
                for line in f:
                    if line.endswith("\n"):
                        board(Event(**json.loads(line)))
                offset = f.tell()
        if done:
            return
        time.sleep(0.25)


def _outcome(data: dict[str, Any]) -> Outcome:
    outcome = Outcome(data["mac"], data["provisioned"], data["reason"], data["last_error"],
                      data["profile_source"], data["firmware"], data["sinkhole_hit"])
    outcome.timeline = [Step.of(s["time"], s["kind"], s["detail"], s["ok"], data["mac"])
                        for s in data["timeline"]]
    return outcome
