"""The DNS core depends on nothing above it: importing any of its modules in a fresh interpreter
loads neither pydantic, yaml nor jinja2, nor any labkit layer above the protocols."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

import labkit.protocols.dns

FORBIDDEN = ("pydantic", "yaml", "jinja2", "labkit.inventory", "labkit.plan", "labkit.services",
             "labkit.faults")
CORE = labkit.protocols.dns.__path__
MODULES = sorted({"labkit.protocols.dns", "labkit.protocols.result",
                  *(f"labkit.protocols.dns.{m.name}" for m in pkgutil.iter_modules(CORE))})

PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(sys.modules)))
"""


def test_the_core_has_modules_to_check() -> None:
    assert {"labkit.protocols.dns.resolver", "labkit.protocols.dns.faults",
            "labkit.protocols.dns.zone"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_core_module_imports_nothing_above_it(module: str) -> None:
    out = subprocess.run([sys.executable, "-c", PROBE, module], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    loaded = json.loads(out)
    assert module in loaded
    leaks = [name for name in loaded if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)]
    assert leaks == []
