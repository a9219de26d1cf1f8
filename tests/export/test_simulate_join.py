"""`labkit simulate --join BRIDGE` against exported engines, all inside namespaces we create.

A bridge lives in a namespace of the test's own (never in this machine's root namespace); the
exported dnsmasq + nginx serve from a member namespace on it; `labkit simulate` itself runs in the
bridge's namespace (`ip netns exec`), where `--join br0` makes its own namespace and veth pair.
What must hold: every default-lab phone provisioned through the joined namespace, the preflight
names the server that answered, no server means a refusal, and however it ends (done, refused,
SIGTERM) the veth is gone from the bridge.
"""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_tool
from tests.export.bridge import IFACE, Bridged, bridged
from tests.export.labs import default_plan
from tests.export.test_phones_provisioned import dnsmasq_stack
from tests.export.test_serving import SERVER
from tests.interop import netns


@dataclass
class OnBridge:
    """The server member of a bridged segment, shaped as the export stacks expect a Segment."""

    bridged: Bridged
    server_if: str = IFACE

    @property
    def server(self) -> netns.Namespace:
        return self.bridged.members["server"]

    def start(self, _ns: netns.Namespace, args: list[str], output: Path) -> subprocess.Popen[Any]:
        return self.bridged.start("server", args, output)


@pytest.fixture
def lan() -> Iterator[Bridged]:
    with bridged({"server": f"{SERVER}/24"}) as built:
        yield built


def _simulate(lan: Bridged, *args: str) -> list[str]:
    return ["ip", "netns", "exec", f"{lan.base}-br", netns.PYTHON, "-m", "labkit", "simulate",
            "--against", SERVER, "--join", "br0", *args]


def _bridge_ports(lan: Bridged) -> set[str]:
    listed = subprocess.run(["ip", "-n", f"{lan.base}-br", "-o", "link", "show"], capture_output=True,
                            text=True, timeout=30, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in listed.splitlines()}


def test_joined_phones_are_provisioned_by_the_exported_dnsmasq(lan: Bridged, tmp_path: Path) -> None:
    plan, out = default_plan(), tmp_path.resolve()
    before = _bridge_ports(lan)
    dnsmasq_stack(OnBridge(lan), plan, out)  # type: ignore[arg-type]
    done = subprocess.run(_simulate(lan, "--ca", str(out / "nginx" / "tls" / "ca.crt"), "--json"),
                          capture_output=True, text=True, timeout=300, cwd=netns.REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    outcomes = json.loads(done.stdout)["outcomes"]
    assert sorted(o["mac"] for o in outcomes) == sorted(plan.phones)
    assert all(o["provisioned"] for o in outcomes)
    lines = done.stderr.splitlines()
    assert any("joined to bridge br0" in line and "no route is added" in line for line in lines), lines
    answered = f"simulate: DHCP on sim0 answered by {SERVER} (OFFER"
    assert any(line.startswith(answered) for line in lines), lines
    assert _bridge_ports(lan) == before  # its veth left the bridge with the namespace


def test_no_dhcp_server_on_the_bridge_is_a_refusal(lan: Bridged) -> None:
    before = _bridge_ports(lan)
    done = subprocess.run(_simulate(lan, "--preflight-listen", "1"), capture_output=True, text=True,
                          timeout=120, cwd=netns.REPO)
    assert done.returncode == 1
    assert "no DHCP server answered a DISCOVER" in done.stderr and "--no-preflight" in done.stderr
    assert "Traceback" not in done.stderr
    assert _bridge_ports(lan) == before


def _in_phones_namespace(pid: int, *args: str) -> str:
    """`ip ARGS` in the network namespace of simulate's process (its main thread joined it)."""
    return subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "ip", *args], capture_output=True,
                          text=True, timeout=30, check=False).stdout


def test_no_route_is_added_and_sigterm_removes_the_namespace(lan: Bridged, tmp_path: Path) -> None:
    """The lab offers a router (option 3); the phones hold their leases, and their namespace still
    has no default route, only the segment's own; SIGTERM then takes the namespace and veth away."""
    require_tool("nsenter")
    plan, out = default_plan(), tmp_path.resolve()
    dnsmasq_stack(OnBridge(lan), plan, out)  # type: ignore[arg-type]
    before = _bridge_ports(lan)
    run = subprocess.Popen(_simulate(lan, "--ca", str(out / "nginx" / "tls" / "ca.crt"), "--time-scale", "1",
                                     "--hold", "3600"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=netns.REPO)
    try:
        netns.wait_for(lambda: _in_phones_namespace(run.pid, "-4", "-o", "addr", "show", "dev", "sim0")
                       .count(" inet ") == len(plan.phones), 120, "every phone's lease on sim0")
        routes = _in_phones_namespace(run.pid, "-4", "route", "show").splitlines()
        assert not [r for r in routes if r.startswith("default")], routes
        assert {r.split()[0] for r in routes} == {"10.42.0.0/24"}, routes
        assert _in_phones_namespace(run.pid, "-6", "addr", "show", "dev", "sim0").strip() == ""
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=60)
    finally:
        netns.stop_process(run)
    assert run.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "stopped by SIGTERM" in stderr and "Traceback" not in stderr
    assert _bridge_ports(lan) == before


def test_a_plain_interface_is_not_a_bridge(lan: Bridged) -> None:
    done = subprocess.run(["ip", "netns", "exec", f"{lan.base}-br", netns.PYTHON, "-m", "labkit", "simulate",
                           "--against", SERVER, "--join", "p0"], capture_output=True, text=True, timeout=60,
                          cwd=netns.REPO)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "simulate: p0 is not a bridge (veth): --join takes a bridge; for an interface of its own "
        "use --interface"]


def test_a_join_left_by_a_killed_run_is_removed_by_the_next(lan: Bridged) -> None:
    """A run killed by SIGKILL leaves its namespace and its veth on the bridge; the next --join
    removes them (its owner PID is gone, no process inside). simulate runs with only its network
    namespace switched (nsenter), so it sees the same /run/netns as this test."""
    require_tool("nsenter")
    before = _bridge_ports(lan)
    gone = subprocess.Popen(["true"])
    gone.wait()
    leftover = f"labkit-sim-{gone.pid}-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", leftover], check=True, timeout=30)
    try:
        subprocess.run(["ip", "link", "add", "name", "lksdead", "netns", f"{lan.base}-br", "type", "veth",
                        "peer", "name", "sim0", "netns", leftover], check=True, timeout=30)
        subprocess.run(["ip", "-n", f"{lan.base}-br", "link", "set", "lksdead", "master", "br0"], check=True,
                       timeout=30)
        assert "lksdead" in _bridge_ports(lan)
        done = subprocess.run(["nsenter", f"--net=/run/netns/{lan.base}-br", netns.PYTHON, "-m", "labkit",
                               "simulate", "--against", SERVER, "--join", "br0", "--preflight-listen", "0.5"],
                              capture_output=True, text=True, timeout=120, cwd=netns.REPO)
        assert f"simulate: removed {leftover}, left by a run that was killed" in done.stderr, done.stderr
        assert done.returncode == 1  # then: no DHCP server on this bridge
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30).stdout
        assert leftover not in listed
        netns.wait_for(lambda: _bridge_ports(lan) == before, 30, "the leftover veth to leave the bridge")
    finally:
        subprocess.run(["ip", "netns", "del", leftover], capture_output=True, timeout=30, check=False)
