"""`labkit demo` (the README's first command): every phone provisioned, nothing left behind."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_INTEROP


def namespaces() -> set[str]:
    if shutil.which("ip") is None:
        return set()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30).stdout
    return {line.split()[0] for line in listed.splitlines() if line.startswith("lkd-")}


def links() -> set[str]:
    listed = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, timeout=30).stdout
    return {m.group(1) for m in re.finditer(r"^\d+: (lkd[^:@]+)", listed, flags=re.MULTILINE)}


def run_demo(tmp_path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    return subprocess.run([sys.executable, "-m", "labkit", "demo", "--mode", mode], capture_output=True,
                          text=True, timeout=600, env=env)


def check_output(result: subprocess.CompletedProcess[str], mode: str) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    text = result.stdout
    assert f"demo ({mode} mode): every phone provisioned" in text
    assert re.search(r"provisioned\s+│\s+24\s", text), text
    steps = re.findall(r"^\s+\+\s*[\d.]+ s\s+(\w+)", text, flags=re.MULTILINE)
    # remote customization stops once the DHCP-supplied server worked; the upgrade ends in a reboot
    assert steps == ["dhcp", "profile", "customization", "profile", "firmware", "reboot"]
    assert "Traceback" not in result.stderr


def test_demo_on_loopback(tmp_path: Path) -> None:
    result = run_demo(tmp_path, "loopback")
    check_output(result, "loopback")
    assert "loopback mode" in result.stdout
    assert list(tmp_path.iterdir()) == []  # the demo's temporary folder is gone


def test_demo_in_network_namespaces(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        message = "namespace mode needs root and iproute2"
        if REQUIRE_INTEROP:
            pytest.fail(message)
        pytest.skip(message)
    before_ns, before_links = namespaces(), links()
    result = run_demo(tmp_path, "netns")
    check_output(result, "netns")
    assert "network-namespace mode" in result.stdout
    assert namespaces() == before_ns and links() == before_links
    assert list(tmp_path.iterdir()) == []
