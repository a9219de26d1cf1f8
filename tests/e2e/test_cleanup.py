"""Nothing left behind: `demo` and `simulate` stopped by SIGTERM/SIGINT/SIGHUP, or run twice.

Namespace tests need root and iproute2 (they skip without them, fail under
LABKIT_REQUIRE_INTEROP=1). Every process here is started by the test and stopped by its PID;
every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from labkit.demo import Segment
from labkit.services.supervisor import free_port_offset
from tests.conftest import REQUIRE_INTEROP
from tests.e2e.test_demo import links, namespaces

PYTHON = sys.executable


def need_namespaces() -> None:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        message = "network namespaces need root and iproute2"
        if REQUIRE_INTEROP:
            pytest.fail(message)
        pytest.skip(message)


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate(timeout=30)


def ns_pids(name: str) -> list[str]:
    listed = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, timeout=30)
    return listed.stdout.split()


def new_namespaces(before: set[str]) -> set[str]:
    return namespaces() - before


# -- demo ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("signum", "stage"), [
    (signal.SIGTERM, "lab"), (signal.SIGINT, "lab"), (signal.SIGHUP, "lab"), (signal.SIGTERM, "phones")])
def test_demo_in_namespaces_stopped_by_a_signal_leaves_nothing(tmp_path: Path, signum: int,
                                                                stage: str) -> None:
    need_namespaces()
    before_ns, before_links = namespaces(), links()
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    demo = subprocess.Popen([PYTHON, "-m", "labkit", "demo", "--mode", "netns", "--time-scale", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for(lambda: len(new_namespaces(before_ns)) == 2, "the demo's two namespaces")
        lab_ns = next(n for n in new_namespaces(before_ns) if n.endswith("-lab"))
        phones_ns = lab_ns.removesuffix("-lab") + "-ph"
        watched = lab_ns if stage == "lab" else phones_ns
        wait_for(lambda: bool(ns_pids(watched)), f"a process in the {stage} namespace")
        demo.send_signal(signum)
        _, stderr = demo.communicate(timeout=120)
    finally:
        stop(demo)
    assert demo.returncode == 128 + signum, stderr
    assert f"stopped by {signal.Signals(signum).name}" in stderr and "Traceback" not in stderr
    assert namespaces() == before_ns and links() == before_links
    assert list(tmp_path.iterdir()) == []


def test_demo_on_loopback_stopped_by_sigterm_leaves_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    demo = subprocess.Popen([PYTHON, "-m", "labkit", "demo", "--mode", "loopback", "--time-scale", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for(lambda: any((d / "events.jsonl").exists() for d in tmp_path.iterdir()), "the demo's lab")
        demo.send_signal(signal.SIGTERM)
        _, stderr = demo.communicate(timeout=120)
    finally:
        stop(demo)
    if demo.returncode == 0:
        pytest.skip("the demo finished before the signal came")  # not a leak: nothing to assert on
    assert demo.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []


# -- simulate on a real interface ------------------------------------------------------------------

@pytest.fixture()
def lab_segment(tmp_path: Path) -> Iterator[tuple[Segment, Path]]:
    """The embedded lab served in a namespace on labkit0 (10.42.0.1/24); phones0 in another."""
    need_namespaces()
    state = tmp_path / "state"
    with Segment("labkit0", "10.42.0.1/24") as segment:
        lab = subprocess.Popen(["ip", "netns", "exec", segment.lab_ns, PYTHON, "-m", "labkit", "up",
                                "--state", str(state), "--log", str(tmp_path / "events.jsonl"), "--quiet"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            assert lab.stdout is not None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                line = lab.stdout.readline()
                if not line or "Ctrl-C stops the lab." in line:
                    break
            assert lab.poll() is None, "the lab did not start"
            yield segment, state
        finally:
            stop(lab)


def simulate(segment: Segment, state: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(["ip", "netns", "exec", segment.phones_ns, PYTHON, "-m", "labkit", "simulate",
                             "--against", "10.42.0.1", "--interface", segment.phones_interface,
                             "--ca", str(state / "ca" / "ca.pem"), "--json", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def lab_addresses(segment: Segment) -> set[str]:
    listed = subprocess.run(["ip", "-n", segment.phones_ns, "-o", "-4", "addr", "show", "dev",
                             segment.phones_interface], capture_output=True, text=True, timeout=30).stdout
    return {word for word in listed.split() if word.startswith("10.42.")}


def test_simulate_removes_its_addresses_and_runs_again_over_a_leftover(
        lab_segment: tuple[Segment, Path]) -> None:
    segment, state = lab_segment
    # a leftover of a run killed with SIGKILL: the first phone's address is already there
    subprocess.run(["ip", "-n", segment.phones_ns, "addr", "add", "10.42.0.20/24", "dev",
                    segment.phones_interface], check=True, timeout=30)
    for _ in range(2):
        run = simulate(segment, state)
        _, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr[-2000:]
        assert "Traceback" not in stderr and "already assigned" not in stderr
        assert lab_addresses(segment) == {"10.42.0.20/24"}  # its own removed, the leftover kept


def test_simulate_stopped_by_sigterm_removes_its_addresses(lab_segment: tuple[Segment, Path]) -> None:
    segment, state = lab_segment
    run = simulate(segment, state, "--time-scale", "1", "--hold", "3600")
    try:
        wait_for(lambda: len(lab_addresses(segment)) == 24, "24 leased addresses on phones0", 120)
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=60)
    finally:
        stop(run)
    assert run.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "stopped by SIGTERM" in stderr and "Traceback" not in stderr
    assert lab_addresses(segment) == set()


def test_a_second_simulate_on_the_same_segment_fails_with_one_line(lab_segment: tuple[Segment, Path]) -> None:
    segment, state = lab_segment
    first = simulate(segment, state, "--time-scale", "1", "--hold", "3600")
    try:
        wait_for(lambda: len(lab_addresses(segment)) == 24, "the first run's 24 leases", 120)
        second = simulate(segment, state)
        _, stderr = second.communicate(timeout=120)
        assert second.returncode == 1
        assert stderr.strip().splitlines() == [
            "simulate: another `labkit simulate` already listens for DHCP replies on phones0, port 68"]
        assert first.poll() is None  # the first run is undisturbed
    finally:
        stop(first)
    assert lab_addresses(segment) == set()


# -- two simulate runs against one loopback lab ------------------------------------------------------

def test_a_second_simulate_against_the_same_lab_takes_another_relay_address(tmp_path: Path) -> None:
    offset = free_port_offset()
    state = tmp_path / "state"
    lab = subprocess.Popen([PYTHON, "-m", "labkit", "up", "--loopback", "--port-offset", str(offset),
                            "--state", str(state), "--quiet"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    held = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        assert lab.stdout is not None
        for line in lab.stdout:
            if "Ctrl-C stops the lab." in line:
                break
        held.bind(("127.0.0.2", 67 + offset))  # what a first `simulate` against this lab holds
        run = subprocess.run([PYTHON, "-m", "labkit", "simulate", "--port-offset", str(offset),
                              "--state", str(state), "--json"], capture_output=True, text=True, timeout=300)
    finally:
        held.close()
        stop(lab)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
