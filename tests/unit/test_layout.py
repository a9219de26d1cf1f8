"""The shape issue 9 asked for, kept: small modules, short functions, and protocol/format cores
that import nothing above their layer (checked in a fresh interpreter per module)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "labkit"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
# what a core may never pull in (directly or through anything it imports)
ABOVE_THE_CORES = ("pydantic", "yaml", "jinja2", "labkit.inventory", "labkit.plan", "labkit.services",
                   "labkit.faults", "labkit.phone", "labkit.cli")


def _modules(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (PACKAGE / folder).rglob("*.py"))


def _dotted(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_module_over_400_lines_and_no_function_over_60() -> None:
    too_long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        if source.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(PACKAGE)}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(PACKAGE)}: {node.name}() {length} lines")
    assert too_long == []


@pytest.mark.parametrize("module", [_dotted(p) for p in _modules("protocols", "formats", "native")])
def test_a_core_imports_nothing_above_its_layer(module: str) -> None:
    probe = (f"import importlib, json, sys; importlib.import_module({module!r}); "
             "print(json.dumps(sorted(sys.modules)))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                       check=True, timeout=60).stdout)
    leaked = sorted(name for name in loaded if name.startswith(ABOVE_THE_CORES))
    assert leaked == [], f"{module} loads {leaked}"
