"""The compiled fast paths (labkit/native): every C source builds into a module here (CI has a
compiler, so a build that silently fell back to pure Python fails there), and LABKIT_NATIVE=0
turns them all off."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from labkit import native

SOURCES = sorted((Path(native.__file__).parent).glob("_*.c"))


@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_each_c_source_is_built_into_a_module(source: Path) -> None:
    module = native.load(source.stem)
    if module is None and os.environ.get("LABKIT_REQUIRE_INTEROP") != "1":
        pytest.skip(f"{source.name} is not built here (no compiler when labkit was installed)")
    assert module is not None, f"{source.name} was not built: run `make test` again after installing gcc"
    assert native.available()[source.stem] is True


def test_labkit_native_0_selects_the_pure_paths() -> None:
    probe = ("from labkit import native; "
             "print(native.enabled(), [n for n, ok in native.available().items() if ok])")
    env = {**os.environ, "LABKIT_NATIVE": "0"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                         check=True, timeout=60).stdout.split()
    assert out == ["False", "[]"]


def test_labkit_up_names_the_fast_paths_it_runs_with(monkeypatch: pytest.MonkeyPatch) -> None:
    from labkit.cli.serve import _fast_paths

    monkeypatch.setenv("LABKIT_NATIVE", "0")
    assert _fast_paths() == "off (LABKIT_NATIVE=0): pure Python"
    monkeypatch.delenv("LABKIT_NATIVE")
    built = [name for name, ok in native.available().items() if ok]
    text = _fast_paths()
    assert ("TFTP steady phase" in text) == ("_tftp" in built)
    assert ("DNS UDP drain" in text) == ("_udp" in built)
    assert ("DHCP codec" in text) == ("_dhcp" in built)
    assert ("journal lines" in text) == ("_events" in built)
    assert "_" not in text  # every module has its words
    assert ("not built here" in text) == (len(built) < len(native.available()))
