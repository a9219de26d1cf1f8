"""Helpers shared by the tests: run the command line, load the default lab, write small labs,
make events.

Import only what a test needs; nothing here starts a service or touches the network.
"""

from __future__ import annotations

import asyncio
import functools
import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from labkit.events import Event
from labkit.inventory.load import LoadedInventory, default_lab_dir, load

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


FIRMWARE = "sip88xx.12-0-1MPP-0001.loads"  # a firmware file the embedded default lab ships
ONE_PHONE_LAB = f"""\
lab: {{domain: t.example, address: 192.0.2.1/24}}
models: {{CP-8851-3PCC: {{firmware: {FIRMWARE}}}}}
phones: [{{mac: "00:56:2b:00:00:01", model: CP-8851-3PCC, ip: 192.0.2.9}}]
"""


@functools.cache
def default_inventory() -> LoadedInventory:
    """The embedded default lab, loaded once per test run (it is frozen: share it freely)."""
    return load(None)


def write_lab(folder: Path, text: str = ONE_PHONE_LAB, *, firmware: bool = True,
              templates: dict[str, str] | None = None) -> Path:
    """Write a lab folder: `lab.yaml` (dedented `text`), `firmware/` (with the default lab's
    firmware file unless `firmware` is False) and `templates/` (the given files). Returns the
    inventory's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "firmware").mkdir(exist_ok=True)
    if firmware:
        (folder / "firmware" / FIRMWARE).write_bytes((default_lab_dir() / "firmware" / FIRMWARE).read_bytes())
    (folder / "templates").mkdir(exist_ok=True)
    for name, body in (templates or {}).items():
        (folder / "templates" / name).write_text(body)
    path = folder / "lab.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def journal_in_time_order(path: Path, service: str, action: str) -> list[dict[str, Any]]:
    """The journal's events of one service and action, by their time: worker processes hand
    their events over in batches, so the journal interleaves two workers by batch, not by request."""
    with path.open() as lines:
        events = [json.loads(line) for line in lines]
    return sorted((e for e in events if e["service"] == service and e["action"] == action),
                  key=lambda e: e["time"])


async def answers_until_quiet(client: socket.socket, quiet: float = 0.5) -> list[bytes]:
    """Every datagram `client` receives until `quiet` seconds pass without one (a bound, not a
    measurement: the answers come from loopback)."""
    loop = asyncio.get_running_loop()
    answers: list[bytes] = []
    while True:
        try:
            async with asyncio.timeout(quiet):
                answers.append(await loop.sock_recv(client, 65535))
        except TimeoutError:
            return answers
