"""Network namespaces for DHCP interop tests: two namespaces joined by a veth pair, and nothing else.

Safety first: the veth ends are created directly inside their namespaces (`ip link add ... netns`),
so no DHCP server or client ever touches an interface of the machine itself. Every name carries
the owner's PID and a random tag (parallel and leftover runs never collide), every process is
started by us and stopped by its PID, and `Segment.close` removes the namespaces even after a
failure. Without root or `ip`, tests skip (fail under LABKIT_REQUIRE_INTEROP=1).

Run as `python -m tests.interop.netns COMMAND JSON` inside a namespace, this module is also the
scapy-built DHCP client the tests drive (`dora`, `relay`) and a child reaper (`reap`).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REQUIRE_INTEROP, require_tool

REPO = Path(__file__).resolve().parents[2]
PREFIX = "lkt-dh"  # our namespaces: lkt-dh-<owner pid>-<tag>-{s,c}
PYTHON = sys.executable


def _skip_or_fail(message: str) -> None:
    if REQUIRE_INTEROP:
        pytest.fail(message + "; LABKIT_REQUIRE_INTEROP=1 forbids skipping")
    pytest.skip(message)


def require_netns() -> str:
    """Path of `ip`, or skip (fail under LABKIT_REQUIRE_INTEROP=1) without root or iproute2."""
    ip = require_tool("ip")
    if os.geteuid() != 0:
        _skip_or_fail("network namespaces need root")
    return ip


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


def sweep_leftovers() -> list[str]:
    """Delete our namespaces whose owner process is gone and that hold no process (a killed run)."""
    removed = []
    listing = _ip("netns", "list", check=False).stdout
    for line in listing.splitlines():
        name = line.split()[0] if line.split() else ""
        match = re.fullmatch(rf"{PREFIX}-(\d+)-[0-9a-f]+-[sc]", name)
        if match is None or Path(f"/proc/{match.group(1)}").exists():
            continue
        if _ip("netns", "pids", name, check=False).stdout.strip():
            continue  # someone still runs in it: not ours to stop
        _ip("netns", "del", name, check=False)
        removed.append(name)
    return removed


@dataclass
class Namespace:
    name: str

    def argv(self, *args: str) -> list[str]:
        # `ip netns exec` execs the command: the PID we get is the command's own
        return ["ip", "netns", "exec", self.name, *args]

    def run(self, *args: str, timeout: float = 60, check: bool = True,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout,
                              check=check, cwd=cwd)

    def call(self, command: str, timeout: float = 120, **kwargs: Any) -> Any:
        """Run one of this module's commands (below) in the namespace; its JSON answer."""
        done = self.run(PYTHON, "-m", "tests.interop.netns", command, json.dumps(kwargs),
                        timeout=timeout, check=False, cwd=REPO)
        if done.returncode != 0:
            raise AssertionError(f"{command} in {self.name} failed ({done.returncode}):\n{done.stderr}")
        return json.loads(done.stdout.splitlines()[-1])


@dataclass
class Segment:
    """A server namespace and a client namespace joined by one veth pair."""

    tag: str
    server: Namespace
    client: Namespace
    server_if: str
    client_if: str
    client_mac: str
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)
    cleanup_files: list[Path] = field(default_factory=list)

    def start(self, ns: Namespace, args: list[str], output: Path, *,
              cwd: Path | None = None) -> subprocess.Popen[Any]:
        """Start a process in `ns` (output to a file: a full pipe would stall it); stopped at close."""
        with output.open("ab") as sink:
            process = subprocess.Popen(ns.argv(*args), stdout=sink, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, cwd=cwd or REPO)
        self.processes.append(process)
        return process

    def close(self) -> None:
        for process in self.processes:
            stop_process(process)
        for ns in (self.server, self.client):
            _ip("netns", "del", ns.name, check=False)  # takes its veth end (and so the pair) along
        for path in self.cleanup_files:
            with contextlib.suppress(OSError):
                path.unlink()


def stop_process(process: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    """Signal one process we started, by its PID; SIGKILL if it outlives `timeout`."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    return process.returncode


def new_segment(*, server_address: str = "10.42.0.1/24", client_address: str | None = None,
                client_mac: str | None = None) -> Segment:
    """Two fresh namespaces, a veth pair between them, both ends up. Close it with `close()`."""
    require_netns()
    sweep_leftovers()
    tag = secrets.token_hex(3)
    base = f"{PREFIX}-{os.getpid()}-{tag}"
    mac = client_mac or "00:56:2b:" + ":".join(tag[i:i + 2] for i in (0, 2, 4))
    segment = Segment(tag, Namespace(base + "-s"), Namespace(base + "-c"), f"lk{tag}s", f"lk{tag}c", mac)
    try:
        for ns in (segment.server, segment.client):
            _ip("netns", "add", ns.name)
            _ip("-n", ns.name, "link", "set", "lo", "up")
        # created inside the namespaces: the pair never exists in the machine's own namespace
        _ip("link", "add", "name", segment.server_if, "netns", segment.server.name, "type", "veth",
            "peer", "name", segment.client_if, "netns", segment.client.name)
        _ip("-n", segment.client.name, "link", "set", "dev", segment.client_if, "address", mac)
        _ip("-n", segment.server.name, "addr", "add", server_address, "dev", segment.server_if)
        if client_address is not None:
            _ip("-n", segment.client.name, "addr", "add", client_address, "dev", segment.client_if)
        _ip("-n", segment.server.name, "link", "set", segment.server_if, "up")
        _ip("-n", segment.client.name, "link", "set", segment.client_if, "up")
    except subprocess.CalledProcessError as exc:
        segment.close()
        _skip_or_fail(f"cannot build a veth segment: {' '.join(exc.cmd)}: {exc.stderr.strip()}")
    return segment


@contextlib.contextmanager
def segment(**kwargs: Any) -> Iterator[Segment]:
    built = new_segment(**kwargs)
    try:
        yield built
    finally:
        built.close()


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    """Poll `check` until it returns something truthy (never a bare sleep as a synchronisation)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


# ------------------------------------------------------------------------------ labkit in a namespace

BANNER_END = "Ctrl-C stops the lab."


@dataclass
class NetnsLab:
    """`labkit up` running in the server namespace, on the veth (not loopback)."""

    segment: Segment
    process: subprocess.Popen[Any]
    output: Path
    state: Path
    log: Path

    def text(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    def events(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        lines = self.log.read_text().splitlines()
        # the last line may be half-written while the log flushes
        return [json.loads(line) for line in lines if line.strip() and line.endswith("}")]

    def wait_event(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 60) -> dict[str, Any]:
        return wait_for(lambda: next((e for e in self.events() if predicate(e)), None), timeout,
                        f"an event in {self.log}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        return stop_process(self.process, sig)


def launch_lab(seg: Segment, inventory: Path, state: Path, output: Path, log: Path,
               *extra: str) -> subprocess.Popen[Any]:
    args = [PYTHON, "-m", "labkit", "up", str(inventory), "--state", str(state), "--log", str(log),
            "--quiet", *extra]
    return seg.start(seg.server, args, output)


def start_lab(seg: Segment, inventory: Path, state: Path, *extra: str, name: str = "lab",
              timeout: float = 90) -> NetnsLab:
    """Start `labkit up` and wait for its banner (the preflight alone listens for 2 s)."""
    workdir = inventory.parent
    output = workdir / f"{name}.out"
    log = workdir / f"{name}.events.jsonl"
    process = launch_lab(seg, inventory, state, output, log, *extra)
    lab = NetnsLab(seg, process, output, state, log)

    def started() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"labkit up exited {process.returncode}:\n{lab.text()}")
        return BANNER_END in lab.text()

    wait_for(started, timeout, "the labkit banner")
    return lab


# ------------------------------------------------------------------------------ commands run inside
# Each takes keyword arguments (from JSON) and returns something JSON-able. They run in a namespace.


def _mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def _options(packet: Any) -> dict[str, Any]:
    """scapy's DHCP options as {name or code: value}, bytes as hex."""
    out: dict[str, Any] = {}
    for item in packet.options:
        if isinstance(item, tuple) and len(item) >= 2:
            value = item[1] if len(item) == 2 else list(item[1:])
            out[str(item[0])] = value.hex() if isinstance(value, bytes) else value
    return out


def _message_type(packet: Any) -> int | None:
    for item in packet.options:
        if isinstance(item, tuple) and item[0] == "message-type":
            return int(item[1])
    return None


def dora(*, iface: str, macs: list[str], out: str | None = None, rounds: int = 1, seconds: float = 60,
         vendor: str = "CP-8851-3PCC", prl: list[int] | None = None, wait: float = 30.0,
         expect: list[str] | None = None, settle: float = 2.0, stop_file: str | None = None,
         extra: dict[str, str] | None = None, broadcast: bool = False, kill_pid: int | None = None,
         kill_after_requests: int = 0) -> dict[str, Any]:
    """DISCOVER/OFFER/REQUEST/ACK for every MAC at once, `rounds` times (bounded by `seconds`).

    Frames are built and parsed with scapy and sent on a packet socket, each from its own MAC, so
    many clients share one veth. A round ends `settle` seconds after every MAC in `expect` (default:
    all) has its ACK or NAK, and after `wait` seconds at most. Every outcome is appended to `out` as
    a JSON line at once. With `kill_pid`, the server is sent SIGKILL right after the
    `kill_after_requests`-th REQUEST, and the next REQUESTs leave only once it is dead: they are in
    flight at the kill by construction. `extra` adds raw options (code -> hex).
    """
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    prl = prl or [1, 3, 6, 15, 35, 66, 150, 2, 7, 42, 43, 58, 59, 159, 160]  # an MPP 8851 (reference §1.1)
    extra_options = [(int(code), bytes.fromhex(value)) for code, value in (extra or {}).items()]
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    sock.bind((iface, 0))
    sink = open(out, "a", encoding="utf-8") if out else None  # noqa: SIM115 - closed below
    results: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    expected = set(expect if expect is not None else macs)
    requests = 0

    def frame(mac: str, xid: int, options: list[Any]) -> bytes:
        return bytes(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255")
                     / UDP(sport=68, dport=67)
                     / BOOTP(chaddr=_mac_bytes(mac), xid=xid, flags=0x8000 if broadcast else 0)
                     / DHCP(options=[*options, "end"]))

    def common(mac: str) -> list[Any]:
        return [("client_id", b"\x01" + _mac_bytes(mac)), ("hostname", "SEP" + mac.replace(":", "").upper()),
                ("vendor_class_id", vendor), *extra_options, ("param_req_list", prl)]

    def record(entry: dict[str, Any]) -> None:
        results.append(entry)
        if sink is not None:
            sink.write(json.dumps(entry) + "\n")
            sink.flush()

    try:
        for number in range(rounds):
            if time.monotonic() > deadline or (stop_file and os.path.exists(stop_file)):
                break
            pending: dict[int, str] = {}
            for mac in macs:
                xid = secrets.randbits(32)
                pending[xid] = mac
                sock.send(frame(mac, xid, [("message-type", "discover"), *common(mac)]))
            round_end = time.monotonic() + wait
            settling = False
            while pending and (left := round_end - time.monotonic()) > 0:
                if not settling and not expected.intersection(pending.values()):
                    settling = True  # only clients nobody answers are left: listen a little more
                    round_end = min(round_end, time.monotonic() + settle)
                    continue
                ready, _, _ = select.select([sock], [], [], left)
                if not ready:
                    break
                packet = Ether(sock.recv(65535))
                if not packet.haslayer(BOOTP) or packet[UDP].dport != 68 or packet[BOOTP].op != 2:
                    continue
                reply = packet[BOOTP]
                mac = pending.get(reply.xid)
                if mac is None or not packet.haslayer(DHCP):
                    continue
                kind = _message_type(packet[DHCP])
                options = _options(packet[DHCP])
                if kind == 2:  # OFFER: select it
                    sock.send(frame(mac, reply.xid, [
                        ("message-type", "request"), ("server_id", options.get("server_id")),
                        ("requested_addr", reply.yiaddr), *common(mac)]))
                    record({"round": number, "mac": mac, "type": "offer", "ip": reply.yiaddr,
                            "eth_dst": packet.dst, "ip_dst": packet[IP].dst})
                    requests += 1
                    if kill_pid is not None and requests == kill_after_requests:
                        os.kill(kill_pid, signal.SIGKILL)
                        _wait_dead(kill_pid)
                        record({"round": number, "type": "killed", "requests": requests})
                elif kind in (5, 6):
                    del pending[reply.xid]
                    record({"round": number, "mac": mac, "type": "ack" if kind == 5 else "nak",
                            "ip": reply.yiaddr, "options": options, "eth_dst": packet.dst,
                            "ip_dst": packet[IP].dst})
            for mac in pending.values():
                record({"round": number, "mac": mac, "type": "timeout"})
    finally:
        sock.close()
        if sink is not None:
            sink.close()
    return {"results": results if out is None else len(results)}


def _wait_dead(pid: int, timeout: float = 30) -> None:
    """Until `pid` is gone or a zombie (its parent, the test, reaps it later)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.01)
    raise TimeoutError(f"process {pid} still runs {timeout} s after SIGKILL")


def relay(*, server: str, relay_address: str, mac: str, vendor: str = "CP-8851-3PCC",
          circuit_id: str = "port-7", wait: float = 10.0) -> dict[str, Any]:
    """Act as a relay agent: DISCOVER then REQUEST with giaddr set, unicast from port 67 to port 67.

    Returns every reply with where it came from and what it carried.
    """
    from scapy.layers.dhcp import BOOTP, DHCP

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((relay_address, 67))  # replies come back to the relay's own port 67
    sock.settimeout(wait)
    agent_info = bytes([1, len(circuit_id)]) + circuit_id.encode()
    replies: list[dict[str, Any]] = []
    xid = secrets.randbits(32)

    def send(options: list[Any]) -> dict[str, Any]:
        request = BOOTP(chaddr=_mac_bytes(mac), xid=xid, giaddr=relay_address, hops=1) / DHCP(
            options=[*options, ("vendor_class_id", vendor),
                     ("param_req_list", [1, 3, 6, 15, 66, 150, 159, 160]),
                     ("relay_agent_information", agent_info), "end"])
        sock.sendto(bytes(request), (server, 67))
        data, source = sock.recvfrom(4096)
        reply = BOOTP(data)
        entry = {"from": list(source), "type": _message_type(reply[DHCP]), "yiaddr": reply.yiaddr,
                 "giaddr": reply.giaddr, "xid": reply.xid, "options": _options(reply[DHCP]),
                 "chaddr": reply.chaddr[:6].hex()}
        replies.append(entry)
        return entry

    try:
        offer = send([("message-type", "discover")])
        send([("message-type", "request"), ("server_id", offer["options"]["server_id"]),
              ("requested_addr", offer["yiaddr"])])
    finally:
        sock.close()
    return {"replies": replies, "relay_circuit": agent_info.hex()}


PR_SET_CHILD_SUBREAPER = 36


def reap(*, argv: list[str], timeout: float = 120) -> dict[str, Any]:
    """Run `argv` and reap every descendant it leaves (dhcpcd's privilege-separated helpers would
    otherwise linger as zombies of PID 1); returns its exit code."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    child = subprocess.Popen(argv, stdout=sys.stderr)  # stdout carries our JSON answer only
    code = child.wait(timeout=timeout)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break  # none left
        if pid == 0:
            time.sleep(0.05)
    else:  # still running after 30 s: ours, so stop them by PID
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError):
                    if (entry / "stat").read_text().rsplit(")", 1)[1].split()[1] == str(os.getpid()):
                        os.kill(int(entry.name), signal.SIGKILL)
    return {"returncode": code}


COMMANDS: dict[str, Callable[..., Any]] = {"dora": dora, "relay": relay, "reap": reap}


def main(argv: list[str]) -> int:
    command, arguments = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    print(json.dumps(COMMANDS[command](**arguments)))
    return 0


def tool(name: str) -> str:
    """A referee's path (require-style), also when it lives in /usr/sbin outside a user's PATH."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    return found or require_tool(name)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
