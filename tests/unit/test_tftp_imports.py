"""The TFTP and syslog cores depend on nothing above them (issue 9): importing them in a fresh
interpreter loads none of pydantic, yaml, jinja2 or labkit's upper layers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FORBIDDEN = ("pydantic", "yaml", "jinja2", "labkit.inventory", "labkit.plan", "labkit.services",
             "labkit.faults")
CORES = ("labkit.protocols.tftp", "labkit.protocols.tftp.accept", "labkit.protocols.tftp.client",
         "labkit.protocols.tftp.read", "labkit.protocols.tftp.write", "labkit.protocols.tftp.faults",
         "labkit.protocols.syslog")


@pytest.mark.parametrize("module", CORES)
def test_core_imports_nothing_above_it(module: str) -> None:
    probe = (f"import importlib, json, sys; importlib.import_module({module!r}); "
             "print(json.dumps(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                          check=True)
    loaded = json.loads(done.stdout)
    leaked = [name for name in loaded if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)]
    assert module in loaded
    assert leaked == []
