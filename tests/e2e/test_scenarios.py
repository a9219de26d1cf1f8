"""Every ready-made scenario in scenarios/ runs against the real services and passes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from labkit.scenarios import names, run_scenario

SCENARIOS = names()


def test_the_issue_s_scenarios_are_all_there() -> None:
    assert {"profile-404-retry", "http-401-two-retries", "http-301-followed", "tftp-down-http-fallback",
            "no-dhcp-options-srv", "srv-first-target-down", "wrong-key-then-fixed"} <= set(SCENARIOS)


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario(name: str) -> None:
    result = run_scenario(name)
    timeline = [f"{s.kind}: {s.detail}" for s in result.outcome.timeline] if result.outcome else []
    assert result.passed, "\n".join(result.problems + timeline)


def test_scenario_command_reports_pass_and_fail(tmp_path) -> None:
    ok = subprocess.run([sys.executable, "-m", "labkit", "scenario", "http-301-followed"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and ok.stdout.startswith("PASS http-301-followed")
    missing = subprocess.run([sys.executable, "-m", "labkit", "scenario", "nope"], capture_output=True,
                             text=True, timeout=120)
    assert missing.returncode == 2 and "no scenario 'nope'" in missing.stderr
