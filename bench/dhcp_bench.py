"""DHCP benchmark (on demand, not a test): `labkit up` (DHCP only) against perfdhcp, as root.

    .venv/bin/python bench/dhcp_bench.py [--duration 3] [--start-rate 250] [--repeat 1]
    .venv/bin/python bench/dhcp_bench.py --profile 1000   # one trial under cProfile: where time goes

peer-benchmarks.md's method: the server and perfdhcp (Debian package kea-admin) each sit in a
network namespace of their own, joined by a veth pair with addresses from 198.18.0.0/15, the server
pinned to CPU 1 and perfdhcp to CPU 0 (taskset, when there is one). Every trial restarts the server
on an empty lease store with a /16 pool and `answer: any`, runs perfdhcp for 3 s at a fixed rate,
and passes when fewer than 1% of the exchanges it started failed (no ACK within its 1 s drop time).
The rate doubles until a trial fails, then bisects. Leases are durable before each ACK, as always:
SQLite in WAL mode with synchronous=FULL, one commit per batch of datagrams, on the state folder's
disk (given in the output). The JSON event log is written as `labkit up` always does.

Printed: the highest passing rate (DORA/s), completed DORAs per second, and the server process's CPU
time (user + system, /proc) per completed DORA. perfdhcp acts as a relay (giaddr = its address), so
replies are ordinary unicast UDP to port 67. Nothing leaves the two namespaces, which are removed
at the end (also on failure or Ctrl-C); the processes started here are stopped by their own PID.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import pstats
import re
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVER_CPU, GENERATOR_CPU = "1", "0"
SERVER_ADDRESS, CLIENT_ADDRESS = "198.18.0.1/16", "198.18.0.2/16"
CLIENTS = 60000  # distinct MACs perfdhcp draws from: fewer than the /16 pool, which never runs out
LIMIT = 0.01  # a trial passes with fewer than 1% failed exchanges
BANNER_END = "Ctrl-C stops the lab."

LAB = """\
lab:
  name: dhcp-bench
  domain: bench.example
  interface: {interface}
  address: {address}
  pool: {{start: 198.18.1.0, end: 198.18.255.254}}
  answer: any
services: {{dns: {{enabled: false}}, tftp: {{enabled: false}}, http: {{enabled: false}},
           https: {{enabled: false}}, syslog: {{enabled: false}}}}
dhcp:
  lease_time: 3600
  options: {{routers: [198.18.0.1], dns_servers: [198.18.0.1], domain_name: bench.example}}
models: {{CP-8851-3PCC: {{}}}}
phones: []
"""


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


@dataclass
class Segment:
    server_ns: str
    client_ns: str
    server_if: str
    client_if: str

    @classmethod
    def create(cls) -> Segment:
        tag = secrets.token_hex(3)
        base = f"lkt-bench-{os.getpid()}-{tag}"
        seg = cls(base + "-s", base + "-c", f"lb{tag}s", f"lb{tag}c")
        try:
            for ns in (seg.server_ns, seg.client_ns):
                ip("netns", "add", ns)
                ip("-n", ns, "link", "set", "lo", "up")
            # made inside the namespaces: the pair never appears in the machine's own namespace
            ip("link", "add", "name", seg.server_if, "netns", seg.server_ns, "type", "veth", "peer",
               "name", seg.client_if, "netns", seg.client_ns)
            ip("-n", seg.server_ns, "addr", "add", SERVER_ADDRESS, "dev", seg.server_if)
            ip("-n", seg.client_ns, "addr", "add", CLIENT_ADDRESS, "dev", seg.client_if)
            ip("-n", seg.server_ns, "link", "set", seg.server_if, "up")
            ip("-n", seg.client_ns, "link", "set", seg.client_if, "up")
        except BaseException:
            seg.remove()
            raise
        return seg

    def remove(self) -> None:
        for ns in (self.server_ns, self.client_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def pinned(cpu: str) -> list[str]:
    return ["taskset", "-c", cpu] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def udp_receive_errors(namespace: str) -> int:
    """Datagrams the namespace's kernel dropped for a full socket buffer (Udp RcvbufErrors)."""
    snmp = subprocess.run(["ip", "netns", "exec", namespace, "cat", "/proc/net/snmp"], capture_output=True,
                          text=True, timeout=30).stdout
    header, values = (line.split()[1:] for line in snmp.splitlines() if line.startswith("Udp:"))
    return int(dict(zip(header, values, strict=True))["RcvbufErrors"])


@dataclass
class Trial:
    rate: int
    discovers: int
    acks: int
    achieved: float
    cpu_us: float  # server CPU per completed DORA
    server_overflow: int = 0  # requests the server's socket buffer dropped
    generator_overflow: int = 0  # replies perfdhcp's socket buffer dropped

    @property
    def failed(self) -> float:
        return (self.discovers - self.acks) / self.discovers if self.discovers else 1.0

    @property
    def passed(self) -> bool:
        return self.discovers > 0 and self.failed < LIMIT

    def __str__(self) -> str:
        verdict = "pass" if self.passed else "FAIL"
        return (f"rate {self.rate:>6}/s: {self.discovers:>6} DISCOVERs, {self.acks:>6} ACKs, "
                f"{100 * self.failed:5.2f}% failed, achieved {self.achieved:8.1f}/s, "
                f"server {self.cpu_us:7.1f} µs CPU/DORA, buffer drops {self.server_overflow} at the "
                f"server, {self.generator_overflow} at perfdhcp  {verdict}")


def _stat(text: str, section: str, name: str) -> int:
    block = text.split(f"***Statistics for: {section}***", 1)
    match = re.search(rf"^{name}: (\d+)", block[1], re.MULTILINE) if len(block) == 2 else None
    return int(match.group(1)) if match else 0


def run_trial(seg: Segment, workdir: Path, rate: int, duration: int,
              profile: Path | None = None) -> Trial:
    state = Path(tempfile.mkdtemp(prefix="state-", dir=workdir))  # an empty lease store every time
    inventory = workdir / "lab.yaml"
    output = state / "up.out"
    python = [sys.executable, *(["-m", "cProfile", "-o", str(profile)] if profile else [])]
    with output.open("wb") as sink:
        # the preflight is skipped: the segment is ours, and its 2 s would only slow the trials
        server = subprocess.Popen(
            ["ip", "netns", "exec", seg.server_ns, *pinned(SERVER_CPU), *python, "-m", "labkit", "up",
             str(inventory), "--state", str(state), "--log", str(state / "events.jsonl"), "--quiet",
             "--allow-other-dhcp"], stdout=sink, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while BANNER_END not in output.read_text(errors="replace"):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"labkit up did not start:\n{output.read_text(errors='replace')}")
            time.sleep(0.05)
        before = cpu_seconds(server.pid)
        overflows = udp_receive_errors(seg.server_ns), udp_receive_errors(seg.client_ns)
        generator = subprocess.run(
            ["ip", "netns", "exec", seg.client_ns, *pinned(GENERATOR_CPU), "perfdhcp", "-4",
             "-l", seg.client_if, "-r", str(rate), "-p", str(duration), "-R", str(CLIENTS),
             "-W", "1000000", SERVER_ADDRESS.split("/")[0]],
            capture_output=True, text=True, timeout=duration + 60)
        used = cpu_seconds(server.pid) - before
        server_overflow = udp_receive_errors(seg.server_ns) - overflows[0]
        generator_overflow = udp_receive_errors(seg.client_ns) - overflows[1]
    finally:
        stop(server)
    text = generator.stdout
    if "***Statistics for: DISCOVER-OFFER***" not in text:
        raise RuntimeError(f"perfdhcp failed ({generator.returncode}):\n{text}\n{generator.stderr}")
    acks = _stat(text, "REQUEST-ACK", "received packets")
    check_leases(state, acks)
    shutil.rmtree(state, ignore_errors=True)
    # perfdhcp's own "Rate:" divides by the run plus its exit wait; completed DORAs per second of load:
    return Trial(rate, _stat(text, "DISCOVER-OFFER", "sent packets"), acks, acks / duration,
                 1e6 * used / acks if acks else float("inf"), server_overflow, generator_overflow)


def check_leases(state: Path, acks: int) -> None:
    """Every ACK perfdhcp saw is a durable lease, and no address has two MACs."""
    with contextlib.closing(sqlite3.connect(f"file:{state / 'leases.sqlite3'}?mode=ro", uri=True)) as db:
        rows, addresses = db.execute("SELECT COUNT(*), COUNT(DISTINCT ip) FROM leases").fetchone()
    if rows != addresses or rows < min(acks, 1):
        raise RuntimeError(f"lease store: {rows} leases over {addresses} addresses after {acks} ACKs")


def search(seg: Segment, workdir: Path, start: int, duration: int, steps: int,
           ceiling: int) -> tuple[Trial | None, list[Trial]]:
    """Double until a failure, then bisect: the best passing trial and every trial run."""
    trials: list[Trial] = []
    best: Trial | None = None
    rate, failed_at = start, None
    while rate <= ceiling:
        trial = run_trial(seg, workdir, rate, duration)
        trials.append(trial)
        print("  " + str(trial), flush=True)
        if not trial.passed:
            failed_at = rate
            break
        best, rate = trial, rate * 2
    low = best.rate if best else 0
    for _ in range(steps if failed_at else 0):
        middle = (low + failed_at) // 2
        if failed_at - low <= max(50, low // 20):
            break
        trial = run_trial(seg, workdir, middle, duration)
        trials.append(trial)
        print("  " + str(trial), flush=True)
        if trial.passed:
            best, low = trial, middle
        else:
            failed_at = middle
    return best, trials


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    version = subprocess.run(["perfdhcp", "-v"], capture_output=True, text=True).stdout.strip()
    return (f"{datetime.date.today()}, {os.cpu_count()} CPU ({model}), Linux {platform.release()}, "
            f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, perfdhcp {version}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=3, help="seconds per trial (3)")
    parser.add_argument("--start-rate", type=int, default=250, help="first rate, DORA/s (250)")
    parser.add_argument("--ceiling", type=int, default=64000, help="stop doubling here (64000)")
    parser.add_argument("--bisect", type=int, default=5, help="bisection steps after a failure (5)")
    parser.add_argument("--repeat", type=int, default=1, help="whole searches to run (1)")
    parser.add_argument("--profile", type=int, metavar="RATE",
                        help="run one trial at RATE under cProfile and print where the server's time goes")
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp"),
                        help="where state folders go (a disk, like a real lab's; default /var/tmp)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("dhcp_bench: needs root (network namespaces)", file=sys.stderr)
        return 2
    if not shutil.which("perfdhcp"):
        print("dhcp_bench: needs perfdhcp (Debian package kea-admin)", file=sys.stderr)
        return 2
    args.workdir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="labkit-dhcp-bench-", dir=args.workdir))
    filesystem = subprocess.run(["df", "-T", str(workdir)], capture_output=True, text=True).stdout
    print(f"machine: {machine()}")
    # the machine may be shared: a busy CPU 1 makes every figure below a lower bound
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print(f"lease store on: {filesystem.splitlines()[-1].split()[1]} ({workdir})")
    seg = Segment.create()
    try:
        (workdir / "lab.yaml").write_text(LAB.format(interface=seg.server_if, address=SERVER_ADDRESS))
        if args.profile:
            profile = workdir / "server.prof"
            print("  " + str(run_trial(seg, workdir, args.profile, args.duration, profile)))
            stats = pstats.Stats(str(profile))
            stats.sort_stats("tottime").print_stats(25)
            # the server's own path, by cumulative time (the first line is the whole event loop)
            server_path = r"labkit/(services|protocols|plan|events)|sqlite|socket"
            stats.sort_stats("cumulative").print_stats(server_path, 40)
            return 0
        best_rates, cpu = [], []
        for number in range(args.repeat):
            print(f"search {number + 1}/{args.repeat}:", flush=True)
            best, _ = search(seg, workdir, args.start_rate, args.duration, args.bisect, args.ceiling)
            if best is not None:
                best_rates.append(best.rate)
                cpu.append(best.cpu_us)
        if not best_rates:
            print("no rate passed")
            return 1
        print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        print(f"max DORA/s at < 1% failed: median {statistics.median(best_rates):.0f} "
              f"[{min(best_rates)}-{max(best_rates)}] over {len(best_rates)} search(es); "
              f"server CPU µs/DORA there: median {statistics.median(cpu):.0f}")
        return 0
    finally:
        seg.remove()
        with contextlib.suppress(OSError):
            shutil.rmtree(workdir)


if __name__ == "__main__":
    sys.exit(main())
