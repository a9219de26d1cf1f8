"""A normal install works (issue 10 item 10): the wheel holds everything the commands need.

The wheel is built from a copy of this checkout, installed with its dependencies into a fresh
venv (no system site-packages, nothing of the checkout on the path), and `labkit check`,
`labkit scenario --all` and `labkit demo --mode loopback` run from a folder outside the checkout.
Installing the dependencies needs the package index (PyPI); when it cannot be reached the test
skips, except under LABKIT_REQUIRE_INTEROP=1, where that is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_INTEROP

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parents[2]
TOP_LEVEL_SKIPPED = {".git", ".venv", "build", "dist", "plan", ".labkit", "tests", "bench"}
CACHES = shutil.ignore_patterns("*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis", ".mypy_cache",
                                ".ruff_cache")
NETWORK_TROUBLE = re.compile(
    r"NewConnectionError|Temporary failure in name resolution|Network is unreachable|"
    r"Failed to establish a new connection|ConnectTimeout|ReadTimeout|No route to host"
)


def _not_source(folder: str, entries: list[str]) -> set[str]:
    skipped = set(CACHES(folder, entries))
    if Path(folder) == ROOT:
        skipped |= TOP_LEVEL_SKIPPED & set(entries)
    return skipped


def _run(args: list[str | Path], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _need_index(result: subprocess.CompletedProcess[str], what: str) -> None:
    if result.returncode == 0:
        return
    output = result.stdout + result.stderr
    if NETWORK_TROUBLE.search(output) and not REQUIRE_INTEROP:
        pytest.skip(f"{what}: the package index cannot be reached")
    pytest.fail(f"{what} failed ({result.returncode}):\n{output[-4000:]}")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=_not_source)  # the build must not write into the checkout
    dist = work / "dist"
    built = _run([sys.executable, "-m", "pip", "wheel", source, "--no-deps", "-q", "-w", dist],
                 cwd=work, timeout=600)
    _need_index(built, "pip wheel")
    wheels = sorted(dist.glob("labkit-*.whl"))
    assert len(wheels) == 1, f"expected one labkit wheel in {dist}, found {wheels}"
    return wheels[0]


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ folder of a fresh venv holding the wheel and its dependencies."""
    env = tmp_path_factory.mktemp("venv") / "env"
    made = _run([sys.executable, "-m", "venv", env], cwd=env.parent, timeout=300)
    assert made.returncode == 0, made.stderr
    pip = _run([env / "bin" / "python", "-m", "pip", "install", "-q", wheel], cwd=env.parent, timeout=900)
    _need_index(pip, "pip install of the wheel")
    return env / "bin"


@pytest.fixture()
def outside(tmp_path: Path) -> Path:
    """A working folder outside the checkout, holding nothing."""
    assert ROOT not in tmp_path.parents
    return tmp_path


def test_the_wheel_holds_the_zone_templates_scenarios_and_default_lab(wheel: Path) -> None:
    files = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("labkit/zones/lab.zone.j2", "labkit/zones/sinkhole.zone.j2", "labkit/default_lab/lab.yaml",
                   "labkit/scenarios/__init__.py", "labkit/scenarios/profile-404-retry.yaml"):
        assert needed in files, f"{needed} missing from {wheel.name}"
    shipped = {Path(f).stem for f in files if re.fullmatch(r"labkit/scenarios/[^/]+\.yaml", f)}
    in_checkout = {p.stem for p in (ROOT / "labkit" / "scenarios").glob("*.yaml")}
    assert shipped == in_checkout


def test_the_installed_package_is_the_wheel_not_the_checkout(installed: Path, outside: Path) -> None:
    found = _run([installed / "python", "-c", "import labkit; print(labkit.__file__)"], cwd=outside,
                 timeout=60)
    assert found.returncode == 0, found.stderr
    location = Path(found.stdout.strip()).resolve()
    assert installed.parent.resolve() in location.parents, location
    assert ROOT not in location.parents


def test_check_from_outside_the_checkout(installed: Path, outside: Path) -> None:
    result = _run([installed / "labkit", "check"], cwd=outside, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: lab 'default-lab'" in result.stdout
    assert re.search(r"\b4 zones\b", result.stdout), result.stdout


def test_every_scenario_runs_from_outside_the_checkout(installed: Path, outside: Path) -> None:
    result = _run([installed / "labkit", "scenario", "--all"], cwd=outside, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    verdicts = [line.split()[0] for line in result.stdout.splitlines() if line[:4] in ("PASS", "FAIL")]
    expected = len(list((ROOT / "labkit" / "scenarios").glob("*.yaml")))
    assert expected > 0 and verdicts == ["PASS"] * expected, result.stdout


def test_demo_in_loopback_mode_from_outside_the_checkout(installed: Path, outside: Path) -> None:
    result = _run([installed / "labkit", "demo", "--mode", "loopback"], cwd=outside, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every phone provisioned" in result.stdout + result.stderr


def test_the_wheel_holds_every_compiled_fast_path(wheel: Path, installed: Path, outside: Path) -> None:
    """setup.py builds each labkit/native/_NAME.c into the wheel (CI has gcc), and the installed
    package loads them all."""
    sources = {p.stem for p in (ROOT / "labkit" / "native").glob("_*.c")}
    compiled = {Path(f).name.split(".")[0] for f in zipfile.ZipFile(wheel).namelist()
                if re.fullmatch(r"labkit/native/_[a-z0-9_]+\.cpython-[^/]+\.so", f)}
    assert compiled == sources
    probe = "from labkit import native; print(sorted(n for n, ok in native.available().items() if ok))"
    loaded = _run([installed / "python", "-c", probe], cwd=outside, timeout=60)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == repr(sorted(sources))
