"""The virtual phones on a real segment, and the care that keeps them off segments they don't belong to.

Two ways onto a segment, both named explicitly by the user (never a guess, never loopback):
`--interface IF` broadcasts on an interface that already exists (the phones' leased addresses
are added to it and removed at the end); `--join BRIDGE` makes a network namespace of its own,
joins it to the named bridge with a veth pair (one end inside, the other enslaved to the
bridge), and runs the phones inside it. Neither adds a route: with no default route the phones
reach only the servers on the segment's own subnets, and nothing they do leaves it through a
router. IPv6 is off on both veth ends (no router solicitations, no DAD on the user's bridge).

Before a phone boots, `preflight` broadcasts a DISCOVER as the first phone (the server may
answer only known phones) and names every DHCP server that answers: none, and the run stops
unless told to go on; more than one, and the report says the phones take whichever is first.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import secrets
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from labkit.errors import LabkitError
from labkit.phone.stopping import STOP_SIGNALS
from labkit.services.preflight import PreflightError, RivalServer, probe

CLONE_NEWNET = 0x40000000
NAMESPACE_PREFIX = "labkit-sim"
INSIDE = "sim0"  # the phones' interface in the namespace labkit makes


class SegmentError(LabkitError):
    """The phones cannot go onto the segment the user named (or should not)."""


@dataclass(frozen=True)
class Joined:
    """A namespace of labkit's own, joined to `bridge` by a veth pair; the phones use `interface`."""

    namespace: str
    host_end: str  # the veth end enslaved to the bridge, in the caller's namespace
    bridge: str
    interface: str = INSIDE


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise SegmentError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done


def link_kind(name: str) -> str:
    """The kind of link `name` is in this namespace ("bridge", "veth", "" for a plain device)."""
    done = _ip("-j", "-d", "link", "show", "dev", name, check=False)
    if done.returncode != 0:
        raise SegmentError(f"there is no interface {name!r} in this network namespace")
    links = json.loads(done.stdout or "[]")
    info = links[0].get("linkinfo", {}) if links else {}
    return str(info.get("info_kind", ""))


def _setns(fd: int) -> None:
    """Move the calling thread (and the threads and processes it starts later) to netns `fd`."""
    setns = getattr(os, "setns", None)  # Python 3.12+
    if setns is not None:
        setns(fd, CLONE_NEWNET)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"setns: {os.strerror(code)}")


def _no_ipv6(interface: str) -> None:
    """IPv6 off on `interface` of the current namespace (absent IPv6 support: nothing to do)."""
    with contextlib.suppress(OSError), open(f"/proc/sys/net/ipv6/conf/{interface}/disable_ipv6", "w") as f:
        f.write("1")


def new_names() -> tuple[str, str]:
    """(namespace, host veth end) for a new join: the PID and a random tag, never a collision."""
    tag = secrets.token_hex(3)
    return f"{NAMESPACE_PREFIX}-{os.getpid()}-{tag}", f"lks{tag}"


def sweep_leftovers() -> list[str]:
    """Remove the namespaces of joins whose process is gone (a run killed by SIGKILL) and that
    hold no process: each takes its veth pair along, so the bridge is as it was."""
    removed = []
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        match = re.fullmatch(rf"{NAMESPACE_PREFIX}-(\d+)-[0-9a-f]{{6}}", name)
        if match is None or Path(f"/proc/{match.group(1)}").exists():
            continue  # not ours, or its run is still there (or its PID was reused: left alone)
        if _ip("netns", "pids", name, check=False).stdout.strip():
            continue
        _ip("netns", "del", name, check=False)
        removed.append(name)
    return removed


def check_bridge(bridge: str) -> None:
    """Root, and `bridge` a bridge of this namespace, or a one-line refusal."""
    if os.geteuid() != 0:
        raise SegmentError("--join needs root (it makes a network namespace and a veth pair)")
    kind = link_kind(bridge)
    if kind != "bridge":
        raise SegmentError(f"{bridge} is not a bridge ({kind or 'a plain interface'}): --join takes a "
                           "bridge; for an interface of its own use --interface")


@contextlib.contextmanager
def joined(bridge: str, names: tuple[str, str] | None = None) -> Iterator[Joined]:
    """Inside: this thread is in a new namespace joined to `bridge`. On the way out (however it
    ends) the thread is back home, the veth pair is deleted (leaving the bridge as it was) and the
    namespace is removed; stop signals wait until that is done."""
    check_bridge(bridge)
    namespace, host_end = names or new_names()
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    made: list[str] = []
    try:
        _ip("netns", "add", namespace)
        made.append("namespace")
        _ip("link", "add", "name", host_end, "type", "veth", "peer", "name", INSIDE, "netns", namespace)
        made.append("veth")
        _no_ipv6(host_end)
        _ip("link", "set", host_end, "master", bridge)
        _ip("link", "set", host_end, "up")
        inside = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
        try:
            _setns(inside)
        finally:
            os.close(inside)
        _no_ipv6(INSIDE)
        _ip("link", "set", "lo", "up")
        _ip("link", "set", INSIDE, "up")
        yield Joined(namespace, host_end, bridge)
    finally:
        _leave(home, namespace, host_end, made)


def _leave(home: int, namespace: str, host_end: str, made: list[str]) -> None:
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # a second Ctrl-C waits for this
    try:
        _setns(home)
        os.close(home)
        if "veth" in made:
            _ip("link", "del", host_end, check=False)  # both ends at once, synchronously
        if "namespace" in made:
            _ip("netns", "del", namespace, check=False)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def ensure_free(interface: str, client_port: int) -> None:
    """Fail in one line when another swarm already listens on this segment (see DhcpClient)."""
    claim = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        claim.bind(f"\0labkit-simulate/{interface}/{client_port}")
    except OSError:
        raise SegmentError(f"another `labkit simulate` already listens for DHCP replies on {interface}, "
                           f"port {client_port}") from None
    finally:
        claim.close()


def mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def preflight(interface: str, mac: str, vendor_class: str, *, listen: float, server_port: int = 67,
              client_port: int = 68) -> list[RivalServer]:
    """The DHCP servers that answer a DISCOVER from `mac` on `interface` within `listen` seconds."""
    try:
        return probe(interface, listen=listen, server_port=server_port, client_port=client_port,
                     mac=mac_bytes(mac), vendor_class=vendor_class.encode())
    except PreflightError as exc:
        raise SegmentError(str(exc)) from None
    except OSError as exc:
        if exc.errno == errno.ENODEV:
            raise SegmentError(f"there is no interface {interface!r}") from None
        raise SegmentError(f"the DHCP preflight on {interface} failed: {exc.strerror or exc}") from None


def describe_servers(servers: list[RivalServer]) -> str:
    return "; ".join(f"{s.server_id} ({s.kind} of {s.offered} from {s.mac})" for s in servers)
