"""The DHCP core depends on nothing above it: importing it in a fresh interpreter loads neither
pydantic, YAML, Jinja nor any of labkit's upper layers (inventory, plan, services, faults)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = ("pydantic", "yaml", "jinja2", "labkit.inventory", "labkit.plan", "labkit.services",
             "labkit.faults")
CORE = sorted(f"labkit.protocols.dhcp.{p.stem}" for p in (REPO / "labkit/protocols/dhcp").glob("*.py")
              if p.stem != "__init__")


@pytest.mark.parametrize("module", ["labkit.protocols.dhcp", *CORE])
def test_the_dhcp_core_imports_nothing_above_it(module: str) -> None:
    probe = (f"import importlib, json, sys; importlib.import_module({module!r}); "
             f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'yaml', "
             f"'jinja2') or m.startswith(('labkit.inventory', 'labkit.plan', 'labkit.services', "
             f"'labkit.faults')))))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert loaded == [], f"{module} loads {loaded}"
    assert all(not any(m == f or m.startswith(f + ".") for f in FORBIDDEN) for m in loaded)


def test_every_core_module_is_probed() -> None:
    assert {"labkit.protocols.dhcp.server", "labkit.protocols.dhcp.faults", "labkit.protocols.dhcp.config",
            "labkit.protocols.dhcp.leases", "labkit.protocols.dhcp.message"} <= set(CORE)
