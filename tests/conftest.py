"""Shared test helpers.

Interop tests call real tools (named-checkzone, openssl, ...). Without the tool they
skip, except under LABKIT_REQUIRE_INTEROP=1 (set by .ci/run), where a missing tool
is a failure: CI must never go green by skipping the referees.
"""

from __future__ import annotations

import os
import shutil

import pytest
from hypothesis import settings

# No per-example deadline anywhere: a loaded 2-core CI machine makes a deadline a coin toss, and
# the properties are about answers, not time (28 tests said so one by one; this says it for all).
settings.register_profile("labkit", deadline=None)
settings.load_profile("labkit")

REQUIRE_INTEROP = os.environ.get("LABKIT_REQUIRE_INTEROP") == "1"


def require_tool(name: str) -> str:
    """Return the path of tool `name`, or skip (fail under LABKIT_REQUIRE_INTEROP=1)."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (the interop referee for this test)"
        if REQUIRE_INTEROP:
            pytest.fail(message + "; LABKIT_REQUIRE_INTEROP=1 forbids skipping")
        pytest.skip(message)
    return path


def require_root(why: str) -> None:
    """Skip (fail under LABKIT_REQUIRE_INTEROP=1) unless running as root; `why` says what needs it."""
    if os.geteuid() != 0:
        message = f"{why} needs root"
        if REQUIRE_INTEROP:
            pytest.fail(message + "; LABKIT_REQUIRE_INTEROP=1 forbids skipping")
        pytest.skip(message)


def require_module(name: str):
    """Import and return module `name`, or skip (fail under LABKIT_REQUIRE_INTEROP=1)."""
    try:
        return __import__(name)
    except ImportError:
        message = f"python module {name} is not installed"
        if REQUIRE_INTEROP:
            pytest.fail(message + "; LABKIT_REQUIRE_INTEROP=1 forbids skipping")
        pytest.skip(message)
