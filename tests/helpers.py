"""Helpers shared by the tests: run the command line, write a small inventory, make events.

Import only what a test needs; nothing here starts a service or touches the network.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from labkit.events import Event

ROOT = Path(__file__).resolve().parents[1]

SMALL_LAB = """\
lab: {domain: t.example, address: 192.0.2.1/24}
models: {CP-8851-3PCC: {}}
phones: [{mac: "00:56:2b:00:00:01", model: CP-8851-3PCC, ip: 192.0.2.9}]
"""


def labkit(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`python -m labkit ARGS` in a child process: exit code, stdout and stderr as text."""
    return subprocess.run([sys.executable, "-m", "labkit", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def write_inventory(folder: Path, text: str = SMALL_LAB, name: str = "lab.yaml") -> Path:
    """Write an inventory (dedented) into `folder` and return its path."""
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def event(time: float, service: str, result: str = "ok", *, action: str = "query", request: str = "-",
          answer: str = "-", client: str | None = "192.0.2.9:5000", phone: str | None = None,
          **detail: Any) -> Event:
    """An Event with defaults for what a test does not care about."""
    return Event(time, service, client, phone, action, request, answer, result, dict(detail))


def assert_one_line_error(result: subprocess.CompletedProcess[str], *, code: int = 1,
                          says: str = "") -> None:
    """A command failed cleanly: exit `code`, no traceback, one line on stderr naming `says`."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert says in lines[0], result.stderr
