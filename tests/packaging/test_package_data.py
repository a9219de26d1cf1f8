"""The data the commands need is found inside the installed package, never beside the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

import labkit
from labkit.plan.zones import LAB_TEMPLATE, SINKHOLE_TEMPLATE, ZONE_TEMPLATES
from labkit.scenarios import SCENARIO_DIR, ScenarioError, names, run_scenario

PACKAGE = Path(labkit.__file__).resolve().parent


def test_zone_templates_live_in_the_package() -> None:
    assert PACKAGE in ZONE_TEMPLATES.resolve().parents
    assert (ZONE_TEMPLATES / LAB_TEMPLATE).is_file() and (ZONE_TEMPLATES / SINKHOLE_TEMPLATE).is_file()


def test_scenarios_live_in_the_package() -> None:
    assert SCENARIO_DIR.resolve() == PACKAGE / "scenarios"
    assert "profile-404-retry" in names()


def test_a_folder_without_scenarios_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a scenario")
    with pytest.raises(ScenarioError, match=f"no scenarios found in {tmp_path}"):
        names(tmp_path)
    with pytest.raises(ScenarioError, match="no scenarios found in"):
        run_scenario("profile-404-retry", tmp_path)
