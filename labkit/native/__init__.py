"""Compiled fast paths for the per-packet loops where a Python round trip per datagram is the
cost (issue 15). Each module here is optional and has a pure-Python twin that stays the
reference: `load` returns None when the module was not built (no compiler on the machine) or
when LABKIT_NATIVE=0, and the caller then runs the pure path. Like the protocol cores, nothing
here imports anything above it."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

DISABLE_VARIABLE = "LABKIT_NATIVE"


def enabled() -> bool:
    """False when the environment asks for the pure-Python paths (LABKIT_NATIVE=0)."""
    return os.environ.get(DISABLE_VARIABLE, "1").strip().lower() not in ("0", "no", "off", "false")


def load(name: str) -> ModuleType | None:
    """The compiled module `labkit.native.<name>`, or None (not built here, or turned off)."""
    if not enabled():
        return None
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ImportError:
        return None


def available() -> dict[str, bool]:
    """Which compiled fast paths this installation has, for `labkit up`'s banner and --version."""
    names = sorted({entry.split(".")[0] for entry in os.listdir(os.path.dirname(__file__))
                    if entry.startswith("_") and not entry.startswith("__")})
    return {name: load(name) is not None for name in names}
