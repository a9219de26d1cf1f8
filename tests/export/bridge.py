"""Several namespaces on one bridge (itself in a namespace we create): a segment for a Kea HA
pair and a phone. Nothing touches this machine's own interfaces: every veth end is created
directly in its namespace, every process is started by us and stopped by its PID, and `close`
removes the namespaces (and with them the veths and the bridge)."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.interop import netns

PREFIX = "lkt-ex"
IFACE = "eth1"  # the same name in every member namespace: one exported config fits each server


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=True)


@dataclass
class Bridged:
    base: str
    members: dict[str, netns.Namespace] = field(default_factory=dict)
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)

    def start(self, member: str, args: list[str], output: Path) -> subprocess.Popen[Any]:
        with output.open("ab") as sink:
            process = subprocess.Popen(self.members[member].argv(*args), stdout=sink,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=netns.REPO)
        self.processes.append(process)
        return process

    def close(self) -> None:
        for process in self.processes:
            netns.stop_process(process)
        for name in [*(ns.name for ns in self.members.values()), f"{self.base}-br"]:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30, check=False)


@contextlib.contextmanager
def bridged(addresses: dict[str, str]) -> Iterator[Bridged]:
    """Member namespaces (name -> address with prefix, or "" for none) on one bridge."""
    netns.require_netns()
    base = f"{PREFIX}-{os.getpid()}-{secrets.token_hex(3)}"
    built = Bridged(base)
    bridge_ns = f"{base}-br"
    try:
        _ip("netns", "add", bridge_ns)
        _ip("-n", bridge_ns, "link", "add", "br0", "type", "bridge")
        _ip("-n", bridge_ns, "link", "set", "br0", "up")
        for index, (member, address) in enumerate(addresses.items()):
            ns = netns.Namespace(f"{base}-{member[:1]}{index}")
            _ip("netns", "add", ns.name)
            built.members[member] = ns
            _ip("-n", ns.name, "link", "set", "lo", "up")
            port = f"p{index}"
            _ip("link", "add", "name", IFACE, "netns", ns.name, "type", "veth", "peer", "name", port,
                "netns", bridge_ns)
            _ip("-n", bridge_ns, "link", "set", port, "master", "br0")
            _ip("-n", bridge_ns, "link", "set", port, "up")
            if address:
                _ip("-n", ns.name, "addr", "add", address, "dev", IFACE)
            _ip("-n", ns.name, "link", "set", IFACE, "up")
        yield built
    finally:
        built.close()
