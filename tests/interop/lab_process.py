"""Run `labkit up --port-offset N` as a real process for interop tests, and stop it by its PID."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from labkit.services.supervisor import STANDARD_PORTS, free_port_offset


@dataclass
class LabProcess:
    process: subprocess.Popen[str]
    offset: int
    state: Path
    log: Path
    banner: list[str]

    def port(self, service: str) -> int:
        return STANDARD_PORTS[service] + self.offset

    def events(self) -> list[dict[str, object]]:
        """Events written so far (the log is flushed at stop, and every second while running)."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def stop(self) -> tuple[int, str]:
        """SIGTERM, wait, and return (exit code, everything printed)."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
        try:
            out, _ = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            out, _ = self.process.communicate(timeout=30)
        return self.process.returncode, "\n".join(self.banner) + "\n" + (out or "")


def start_lab_process(tmp_path: Path, inventory: Path | None = None, *extra: str,
                      loopback: bool = False) -> LabProcess:
    """`labkit up` on a free port offset, or with `loopback` exactly as the README runs it."""
    offset = 10000 if loopback else free_port_offset()
    placement = ["--loopback"] if loopback else ["--port-offset", str(offset)]
    state = tmp_path / "state"
    log = tmp_path / "events.jsonl"
    args = [sys.executable, "-m", "labkit", "up", *placement, "--state", str(state), "--log", str(log),
            *extra]
    if inventory is not None:
        args.insert(4, str(inventory))
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               cwd=tmp_path)
    banner: list[str] = []
    deadline = time.monotonic() + 60
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        banner.append(line.rstrip("\n"))
        if "Ctrl-C stops the lab." in line:
            return LabProcess(process, offset, state, log, banner)
    process.kill()
    rest = process.communicate(timeout=30)[0] or ""
    raise AssertionError("labkit up did not start:\n" + "\n".join(banner) + rest)


def wait_for_event(lab: LabProcess, predicate, timeout: float = 30.0) -> dict[str, object]:
    """Poll the JSON lines log until an event matches (the log flushes once a second)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in lab.events():
            if predicate(event):
                return event
        time.sleep(0.2)
    raise AssertionError(f"no matching event in {lab.log}: {lab.events()[-5:]}")
