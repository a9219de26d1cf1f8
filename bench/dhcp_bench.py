"""DHCP benchmark (on demand, not a test): `labkit up` (DHCP only) and Kea against perfdhcp, as root.

    .venv/bin/python bench/dhcp_bench.py [--duration 3] [--start-rate 250] [--repeat 1] [--no-kea]
    .venv/bin/python bench/dhcp_bench.py --profile 1000   # one labkit trial under cProfile: where time goes

peer-benchmarks.md's method: the server and perfdhcp (Debian package kea-admin) each sit in a
network namespace of their own, joined by a veth pair with addresses from 198.18.0.0/15, the server
pinned to CPU 1 and perfdhcp to CPU 0 (taskset, when there is one). Every trial restarts the server
on an empty lease store with a /16 pool, runs perfdhcp for 3 s at a fixed rate, and passes when
fewer than 1% of the exchanges it started failed (no ACK within its 1 s drop time). The rate
doubles until a trial fails, then bisects. With `--repeat N` each server gets N searches, the two
alternating (which goes first alternates too), and the summary gives median [min-max] per server
and the ratio of the medians.

The servers and what "durable" means for each:
- labkit (`answer: any`): SQLite in WAL mode with synchronous=FULL, one group commit (fsync) for
  every batch of bindings, before any reply that depends on it leaves; the JSON event log is
  written as `labkit up` always does. A lease survives a crash of the kit, of the kernel, and a
  power cut.
- Kea 2.2 (kea-dhcp4, when installed): memfile with `persist: true`, the same pool, lease time and
  options, UDP sockets (perfdhcp is a relay), logging at WARN. Kea appends one CSV line per lease
  change and flushes it to the kernel (write(2)) before replying, without fsync: a lease survives a
  crash of Kea, not a kernel crash or a power cut before the page cache is written back.

Printed: the highest passing rate (DORA/s), completed DORAs per second, and the server process's CPU
time (user + system, /proc, all threads) per completed DORA, its system part in brackets. `--fixed
RATE` runs one trial per server (and repeat) at RATE instead of a search: CPU per DORA side by side.
perfdhcp acts as a relay (giaddr = its address), so replies are ordinary unicast UDP to port 67.
Nothing leaves the two namespaces, which are removed at the end (also on failure or Ctrl-C); the
processes started here are stopped by their own PID.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
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


def kea_config(interface: str, workdir: Path) -> dict:
    """Kea 2.2 as peer-benchmarks.md runs it: memfile with persist, the same /16 pool and lease time,
    no lease file cleanup during a trial. Its memfile appends one CSV line per lease change and
    flushes it to the kernel (write(2)) before the reply, without fsync (see bench/README.md)."""
    return {"Dhcp4": {
        # relayed traffic (perfdhcp is a relay): UDP sockets, as Kea advises for relayed-only servers
        "interfaces-config": {"interfaces": [interface], "dhcp-socket-type": "udp"},
        "lease-database": {"type": "memfile", "persist": True, "lfc-interval": 0,
                           "name": str(workdir / "kea-leases4.csv")},
        "valid-lifetime": 3600, "renew-timer": 1800, "rebind-timer": 3150,
        "subnet4": [{"id": 1, "subnet": "198.18.0.0/16",
                     "pools": [{"pool": "198.18.1.0 - 198.18.255.254"}],
                     "option-data": [{"name": "routers", "data": "198.18.0.1"},
                                     {"name": "domain-name-servers", "data": "198.18.0.1"},
                                     {"name": "domain-name", "data": "bench.example"}]}],
        # WARN, except the start-up line (kea-dhcp4.dhcp4 at INFO): lease logs (INFO) cost Kea time
        "loggers": [{"name": "kea-dhcp4", "severity": "WARN", "output_options": [{"output": "stdout"}]},
                    {"name": "kea-dhcp4.dhcp4", "severity": "INFO",
                     "output_options": [{"output": "stdout"}]}],
    }}


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


def cpu_seconds(pid: int) -> tuple[float, float]:
    """The process's (user, system) CPU seconds so far, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


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
    system_us: float = 0.0  # of which in the kernel (system time)
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
                f"server {self.cpu_us:7.1f} µs CPU/DORA ({self.system_us:.0f} system), buffer drops "
                f"{self.server_overflow} at the server, {self.generator_overflow} at perfdhcp  {verdict}")


def _stat(text: str, section: str, name: str) -> int:
    block = text.split(f"***Statistics for: {section}***", 1)
    match = re.search(rf"^{name}: (\d+)", block[1], re.MULTILINE) if len(block) == 2 else None
    return int(match.group(1)) if match else 0


def start_server(kind: str, seg: Segment, workdir: Path, state: Path,
                 profile: Path | None) -> tuple[subprocess.Popen[bytes], Path]:
    """Start labkit or Kea in the server namespace on an empty lease store; wait until it serves."""
    output = state / "server.out"
    if kind == "kea":
        config = state / "kea-dhcp4.json"
        config.write_text(json.dumps(kea_config(seg.server_if, state)))
        argv, banner = ["kea-dhcp4", "-c", str(config)], "DHCP4_STARTED"
        env = {**os.environ, "KEA_LOCKFILE_DIR": str(state), "KEA_PIDFILE_DIR": str(state)}
    else:
        python = [sys.executable, *(["-m", "cProfile", "-o", str(profile)] if profile else [])]
        # the preflight is skipped: the segment is ours, and its 2 s would only slow the trials
        argv = [*python, "-m", "labkit", "up", str(workdir / "lab.yaml"), "--state", str(state),
                "--log", str(state / "events.jsonl"), "--quiet", "--allow-other-dhcp"]
        banner, env = BANNER_END, dict(os.environ)
    with output.open("wb") as sink:
        server = subprocess.Popen(["ip", "netns", "exec", seg.server_ns, *pinned(SERVER_CPU), *argv],
                                  stdout=sink, stderr=subprocess.STDOUT, cwd=REPO, env=env)
    deadline = time.monotonic() + 60
    while banner not in output.read_text(errors="replace"):
        if server.poll() is not None or time.monotonic() > deadline:
            stop(server)
            raise RuntimeError(f"{kind} did not start:\n{output.read_text(errors='replace')}")
        time.sleep(0.05)
    return server, output


def run_trial(kind: str, seg: Segment, workdir: Path, rate: int, duration: int,
              profile: Path | None = None) -> Trial:
    state = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=workdir))  # an empty lease store every time
    server, _ = start_server(kind, seg, workdir, state, profile)
    try:
        before = cpu_seconds(server.pid)
        overflows = udp_receive_errors(seg.server_ns), udp_receive_errors(seg.client_ns)
        generator = subprocess.run(
            ["ip", "netns", "exec", seg.client_ns, *pinned(GENERATOR_CPU), "perfdhcp", "-4",
             "-l", seg.client_if, "-r", str(rate), "-p", str(duration), "-R", str(CLIENTS),
             "-W", "1000000", SERVER_ADDRESS.split("/")[0]],
            capture_output=True, text=True, timeout=duration + 60)
        after = cpu_seconds(server.pid)
        user, system = after[0] - before[0], after[1] - before[1]
        server_overflow = udp_receive_errors(seg.server_ns) - overflows[0]
        generator_overflow = udp_receive_errors(seg.client_ns) - overflows[1]
    finally:
        stop(server)
    text = generator.stdout
    if "***Statistics for: DISCOVER-OFFER***" not in text:
        raise RuntimeError(f"perfdhcp failed ({generator.returncode}):\n{text}\n{generator.stderr}")
    acks = _stat(text, "REQUEST-ACK", "received packets")
    (check_kea_leases if kind == "kea" else check_leases)(state, acks)
    shutil.rmtree(state, ignore_errors=True)
    # perfdhcp's own "Rate:" divides by the run plus its exit wait; completed DORAs per second of load:
    per_ack = 1e6 / acks if acks else float("inf")
    return Trial(rate, _stat(text, "DISCOVER-OFFER", "sent packets"), acks, acks / duration,
                 (user + system) * per_ack, system * per_ack, server_overflow, generator_overflow)


def check_kea_leases(state: Path, acks: int) -> None:
    """Kea's lease file holds every ACKed lease (one CSV line per change), no address for two MACs."""
    owners: dict[str, str] = {}
    with (state / "kea-leases4.csv").open() as rows:
        next(rows)  # the header
        for row in rows:
            address, mac = row.split(",", 2)[:2]
            owners[mac] = address
    if len(set(owners.values())) != len(owners) or len(owners) < min(acks, 1):
        raise RuntimeError(f"Kea lease file: {len(owners)} MACs over {len(set(owners.values()))} addresses")


def check_leases(state: Path, acks: int) -> None:
    """Every ACK perfdhcp saw is a durable lease, and no address has two MACs."""
    with contextlib.closing(sqlite3.connect(f"file:{state / 'leases.sqlite3'}?mode=ro", uri=True)) as db:
        rows, addresses = db.execute("SELECT COUNT(*), COUNT(DISTINCT ip) FROM leases").fetchone()
    if rows != addresses or rows < min(acks, 1):
        raise RuntimeError(f"lease store: {rows} leases over {addresses} addresses after {acks} ACKs")


def search(kind: str, seg: Segment, workdir: Path, start: int, duration: int, steps: int,
           ceiling: int) -> tuple[Trial | None, list[Trial]]:
    """Double until a failure, then bisect: the best passing trial and every trial run."""
    trials: list[Trial] = []
    best: Trial | None = None
    rate, failed_at = start, None
    while rate <= ceiling:
        trial = run_trial(kind, seg, workdir, rate, duration)
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
        trial = run_trial(kind, seg, workdir, middle, duration)
        trials.append(trial)
        print("  " + str(trial), flush=True)
        if trial.passed:
            best, low = trial, middle
        else:
            failed_at = middle
    return best, trials


def report(best: dict[str, list[Trial]]) -> None:
    """Median [min-max] of the best passing rate per server, and the same-run ratio to Kea."""
    medians = {}
    for kind, trials in best.items():
        if not trials:
            print(f"{kind}: no rate passed")
            continue
        rates = [t.rate for t in trials]
        medians[kind] = statistics.median(rates)
        print(f"{kind}: max DORA/s at < 1% failed: median {medians[kind]:.0f} [{min(rates)}-{max(rates)}] "
              f"over {len(rates)} search(es); server CPU µs/DORA there: median "
              f"{statistics.median(t.cpu_us for t in trials):.0f} "
              f"[{min(t.cpu_us for t in trials):.0f}-{max(t.cpu_us for t in trials):.0f}]")
    if "labkit" in medians and "kea" in medians:
        print(f"labkit / Kea (ratio of medians): {medians['labkit'] / medians['kea']:.2f}x")


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
    parser.add_argument("--no-kea", action="store_true",
                        help="leave out Kea (run as the reference when kea-dhcp4 is installed)")
    parser.add_argument("--profile", type=int, metavar="RATE",
                        help="run one trial at RATE under cProfile and print where the server's time goes")
    parser.add_argument("--fixed", type=int, metavar="RATE",
                        help="no search: one trial per server and repeat at RATE (CPU per DORA side by side)")
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
            print("  " + str(run_trial("labkit", seg, workdir, args.profile, args.duration, profile)))
            stats = pstats.Stats(str(profile))
            stats.sort_stats("tottime").print_stats(25)
            # the server's own path, by cumulative time (the first line is the whole event loop)
            server_path = r"labkit/(services|protocols|plan|events)|sqlite|socket"
            stats.sort_stats("cumulative").print_stats(server_path, 40)
            return 0
        kinds = ["labkit", *(["kea"] if shutil.which("kea-dhcp4") and not args.no_kea else [])]
        if args.fixed:
            for number in range(args.repeat):
                for kind in kinds if number % 2 == 0 else kinds[::-1]:
                    trial = run_trial(kind, seg, workdir, args.fixed, args.duration)
                    print(f"  {kind:6} {trial}", flush=True)
            print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
            return 0
        best: dict[str, list[Trial]] = {kind: [] for kind in kinds}
        for number in range(args.repeat):
            # alternate which server goes first: load drift on a shared machine hits both
            for kind in kinds if number % 2 == 0 else kinds[::-1]:
                print(f"{kind}, search {number + 1}/{args.repeat}:", flush=True)
                found, _ = search(kind, seg, workdir, args.start_rate, args.duration, args.bisect,
                                  args.ceiling)
                if found is not None:
                    best[kind].append(found)
        print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        report(best)
        if not all(best.values()):
            return 1
        return 0
    finally:
        seg.remove()
        with contextlib.suppress(OSError):
            shutil.rmtree(workdir)


if __name__ == "__main__":
    sys.exit(main())
