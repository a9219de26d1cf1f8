"""Test helpers for inventories: the embedded default lab, and small labs written to a folder.

Kept apart from tests/helpers.py (command line and events) so both can grow without colliding.
Nothing here starts a service or touches the network.
"""

from __future__ import annotations

import functools
import textwrap
from pathlib import Path

from labkit.inventory.load import LoadedInventory, default_lab_dir, load

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
