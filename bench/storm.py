"""Storm: N virtual phones against `labkit up` in a separate process, on loopback (run on demand).

    .venv/bin/python bench/storm.py [--phones 500] [--concurrency 128] [--loss 0.05 --seed 1] [--workers 2]
        [--phones-engine python|c]

Prints phones provisioned per second, p50/p95/max time to provisioned (wall clock), requests
served per protocol, the kit's peak RSS and CPU seconds (and each worker's, with --workers N:
`labkit up --workers N`), the kernel's receive-buffer drops per socket (sampled from
/proc/net/udp while the storm runs) and a check of the lease database (one lease per phone, no
address twice, each phone's lease the one it was given).

`--phones-engine c` runs the phones as bench/storm_phones.c (compiled on demand with gcc, one
epoll process, the virtual phone's wire exchange at a tenth of its CPU; bench/storm_c.py) instead
of labkit's virtual phones in this process (python, the default here; storm_cores.py defaults to c).

`--loss P` loses packets in every direction: the kit's fault rules drop that fraction of DHCP
replies and DNS answers, the first transmission of a TFTP block and answer HTTP requests with
a 503 or 2 s late; the phones' own links lose that fraction of every datagram they send or
receive (seeded by --seed). The profile then comes over TFTP (option 66), so TFTP is exercised.
Bounded: the phones give up after their retry rounds, and the whole run after --timeout seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labkit.inventory.load import default_lab_dir, load  # noqa: E402
from labkit.phone.core import Outcome  # noqa: E402
from labkit.phone.driver import loopback_access, run_swarm  # noqa: E402
from labkit.phone.swarm import Summary, inventory_configs  # noqa: E402
from labkit.services.leases import read_leases  # noqa: E402
from labkit.services.supervisor import STANDARD_PORTS, free_port_offset  # noqa: E402
from labkit.timeline import log_files  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from storm_c import build, run_c_swarm  # noqa: E402

INVENTORY = """\
{%- set models = ["CP-6841-3PCC", "CP-7841-3PCC", "CP-8851-3PCC"] %}
lab:
  domain: lab.example
  address: 10.42.0.1/16
  pool: {start: 10.42.1.1, end: 10.42.250.254}
dhcp:
  options: {tftp_servers: [10.42.0.1]}
  classes:
    - match: "CP-*-3PCC"
      options: {provisioning_url: "http://prov.lab.example"}
dns:
  srv:
    - {service: _ciscoprov-http._tcp, target: prov.lab.example, port: 80}
models:
  CP-6841-3PCC: {firmware: sip68xx.12-0-1MPP-0001.loads}
  CP-7841-3PCC: {firmware: sip78xx.12-0-1MPP-0001.loads}
  CP-8851-3PCC: {firmware: sip88xx.12-0-1MPP-0001.loads}
FAULTS
phones:
{%- for n in range(PHONES) %}
  - {mac: "02:4c:4b:00:{{ '%02x' % (n // 256) }}:{{ '%02x' % (n % 256) }}", model: "{{ models[n % 3] }}"}
{%- endfor %}
"""


def proc_usage(pid: int) -> tuple[int, float]:
    """(peak RSS in KiB, CPU seconds) of a live process, from /proc."""
    peak = 0
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1])
    user, system = cpu_seconds(pid)
    return peak, user + system


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a live process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


LOSSY = """\
faults:
  - {name: lost DHCP reply, dhcp: {drop: any}, when: {probability: P}}
  - {name: lost DNS answer, dns: {drop: true}, when: {probability: P}}
  - {name: lost TFTP block 1, tftp: {drop_block: 1}, when: {probability: P}}
  - {name: lost TFTP block 2, tftp: {drop_block: 2}, when: {probability: P}}
  - {name: HTTP 503, http: {status: 503}, when: {probability: P}}
  - {name: HTTP late, http: {delay: 2}, when: {probability: P}}
"""


def inventory(phones: int, loss: float) -> str:
    text = INVENTORY.replace("PHONES", str(phones))
    if loss <= 0:
        return text.replace("FAULTS\n", "")
    text = text.replace("options: {tftp_servers: [10.42.0.1]}",
                        'options: {tftp_servers: [10.42.0.1], tftp_server_name: "10.42.0.1"}')
    return text.replace("FAULTS\n", LOSSY.replace("P}", f"{loss}}}"))


def children(pid: int) -> list[int]:
    """The kit's worker processes (`--workers N`)."""
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


class DropSampler(threading.Thread):
    """The largest kernel drop count seen per UDP socket (/proc/net/udp), every 0.2 s."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak: dict[tuple[str, int], int] = {}
        self.stopping = threading.Event()

    def sample(self) -> None:
        with open("/proc/net/udp", encoding="ascii") as f:
            next(f)
            for line in f:
                fields = line.split()
                address, port = fields[1].split(":")
                drops = int(fields[-1])
                if drops:
                    ip = ".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0))
                    key = (ip, int(port, 16))
                    self.peak[key] = max(self.peak.get(key, 0), drops)

    def run(self) -> None:
        while not self.stopping.wait(0.2):
            self.sample()

    def named(self, offset: int, relay: str) -> dict[str, int]:
        names = {("127.0.0.1", port + offset): f"kit {service}" for service, port in STANDARD_PORTS.items()}
        names[(relay, STANDARD_PORTS["dhcp"] + offset)] = "phones dhcp"
        out: dict[str, int] = {}
        for key, drops in self.peak.items():
            name = names.get(key, "other sockets")
            out[name] = out.get(name, 0) + drops
        return out


def proc_split(pid: int) -> tuple[float, float, int]:
    """(user CPU s, system CPU s, voluntary context switches: its threads' sleeps) of a live process."""
    sleeps = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        try:
            sleeps += int(next(line for line in status.read_text().splitlines()
                               if line.startswith("voluntary_ctxt_switches")).split()[1])
        except (OSError, StopIteration):
            continue
    return (*cpu_seconds(pid), sleeps)


def split_delta(before: list[tuple[float, float, int]], after: list[tuple[float, float, int]],
                phones: int) -> dict[str, float]:
    """CPU ms per phone (user, system) and sleeps per phone, summed over processes."""
    user = sum(a[0] for a in after) - sum(b[0] for b in before)
    system = sum(a[1] for a in after) - sum(b[1] for b in before)
    sleeps = sum(a[2] for a in after) - sum(b[2] for b in before)
    n = max(1, phones)
    return {"user_ms": round(1000 * user / n, 2), "system_ms": round(1000 * system / n, 2),
            "sleeps": round(sleeps / n, 1)}


def listen_overflows() -> int:
    """TcpExt ListenOverflows (this host, all sockets): SYNs dropped because an accept queue was full."""
    with open("/proc/net/netstat", encoding="ascii") as f:
        lines = [line.split() for line in f if line.startswith("TcpExt:")]
    counters = dict(zip(lines[0][1:], lines[1][1:], strict=True)) if len(lines) >= 2 else {}
    return int(counters.get("ListenOverflows", 0))


def check_leases(state: Path, outcomes: list[Outcome]) -> dict[str, Any]:
    """One bound lease per phone, no address held twice, each phone's lease the one it got."""
    rows = [lease for lease in read_leases(state) if lease.state == "bound"]
    by_mac = Counter(lease.mac for lease in rows)
    by_ip = Counter(lease.ip for lease in rows)
    stored = {lease.mac: str(lease.ip) for lease in rows}
    mismatched = [o.mac for o in outcomes if o.lease is not None and stored.get(o.mac) != o.lease.ip]
    return {"bound": len(rows), "macs_with_two_leases": sum(1 for n in by_mac.values() if n > 1),
            "addresses_held_twice": sum(1 for n in by_ip.values() if n > 1),
            "phones_whose_lease_differs": len(mismatched)}


def cpu_set(text: str | None) -> set[int]:
    """`0`, `0,1` or `0-1` as a set of CPU numbers (empty: not pinned)."""
    out: set[int] = set()
    for part in (text or "").split(","):
        if "-" in part:
            first, last = part.split("-")
            out.update(range(int(first), int(last) + 1))
        elif part.strip():
            out.add(int(part))
    return out


class GcClock:
    """CPU seconds the phones' process spends in Python's cyclic garbage collector, per generation."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.runs = [0, 0, 0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.process_time()
            return
        self.seconds[info["generation"]] += time.process_time() - self._started
        self.runs[info["generation"]] += 1


def profiled(path: str | None, swarm: Any) -> Any:
    """asyncio.run(swarm), under cProfile when `path` is given (stats written there)."""
    if not path:
        return asyncio.run(swarm)
    import cProfile

    profile = cProfile.Profile(time.process_time)  # CPU, not wall: the machine is shared
    try:
        return profile.runcall(asyncio.run, swarm)
    finally:
        profile.dump_stats(path)


def main() -> int:
    load_at_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--phones", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--loss", type=float, default=0.0,
                        help="Fraction of packets lost in every direction, kit side and phone side.")
    parser.add_argument("--seed", type=int, default=1, help="The phones' random choices and losses.")
    parser.add_argument("--workers", default="1",
                        help="`labkit up --workers`: DNS and TFTP in this many processes (or auto).")
    parser.add_argument("--rounds", type=int, default=None,
                        help="Failed rounds before a phone gives up (default 2, with --loss 6).")
    parser.add_argument("--kit-cpus", metavar="LIST",
                        help="Pin the kit (main process and workers) to these CPUs, e.g. 0 (one core).")
    parser.add_argument("--phones-cpus", metavar="LIST", help="Pin the phones' process to these CPUs.")
    parser.add_argument("--profile-phones", metavar="FILE", help="cProfile the phones' process into FILE.")
    parser.add_argument("--keep-events", metavar="FILE", help="Copy the kit's journal (JSON lines) to FILE.")
    parser.add_argument("--phones-engine", choices=("python", "c"), default="python",
                        help="The phones: labkit's virtual phones in this process (python), or the lean "
                             "generator bench/storm_phones.c in its own process (c: the same wire "
                             "exchange; no --loss, no --profile-phones).")
    args = parser.parse_args()
    rounds = args.rounds or (6 if args.loss > 0 else 2)
    if args.phones_engine == "c" and (args.loss > 0 or args.profile_phones):
        parser.error("--phones-engine c does not do --loss or --profile-phones")
    if args.phones_engine == "c":
        build()  # compiled before the clock starts (cached)
    with tempfile.TemporaryDirectory(prefix="labkit-storm-") as tmp:
        work = Path(tmp)
        (work / "lab.yaml").write_text(inventory(args.phones, args.loss))
        (work / "firmware").mkdir()
        for load_file in (default_lab_dir() / "firmware").iterdir():
            (work / "firmware" / load_file.name).write_bytes(load_file.read_bytes() * 2000)  # ~300 kB
        offset = free_port_offset()
        command = [sys.executable, "-m", "labkit", "up", str(work / "lab.yaml"), "--port-offset", str(offset),
                   "--state", str(work / "state"), "--log", str(work / "events.jsonl"), "--quiet",
                   *(["--workers", args.workers] if args.workers != "1" else [])]
        kit_cpus = cpu_set(args.kit_cpus)
        lab = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               preexec_fn=(lambda: os.sched_setaffinity(0, kit_cpus)) if kit_cpus else None)
        if args.phones_cpus:
            os.sched_setaffinity(0, cpu_set(args.phones_cpus))
        assert lab.stdout is not None
        for line in lab.stdout:
            if "Ctrl-C stops the lab." in line:
                break
        else:
            print("the lab did not start", file=sys.stderr)
            return 1
        try:
            inv = load(work / "lab.yaml").inventory
            access = loopback_access(inv, "127.0.0.1", offset, work / "state" / "ca" / "ca.pem")
            configs = inventory_configs(inv, rounds=rounds, retry_delays=(5,), seed=args.seed)
            # what exists now (the inventory, 10,000 configs, the lab's plan) lives as long as the
            # swarm: kept out of the collector's full passes (they walked all of it each time)
            gc.collect()
            gc.freeze()
            sampler = DropSampler()
            sampler.start()
            _, kit_cpu_before = proc_usage(lab.pid)
            workers_before = sum(proc_usage(pid)[1] for pid in children(lab.pid))
            overflows = listen_overflows()
            main_split, worker_split = [proc_split(lab.pid)], [proc_split(pid) for pid in children(lab.pid)]
            started, phones_cpu, phones_times = time.monotonic(), time.process_time(), os.times()
            gc_clock = GcClock()
            if args.phones_engine == "c":
                c_run = run_c_swarm(configs, access, concurrency=args.concurrency, timeout=args.timeout,
                                    rounds=rounds, seed=args.seed)
                result, phones_cpu, phones_user = c_run.result, c_run.cpu_seconds, c_run.user_seconds
                wall = time.monotonic() - started
            else:
                phones = run_swarm(configs, access, concurrency=args.concurrency, time_scale=1.0,
                                   loss=args.loss, seed=args.seed)
                swarm = asyncio.wait_for(phones, args.timeout)
                gc.callbacks.append(gc_clock)
                result = profiled(args.profile_phones, swarm)
                gc.callbacks.remove(gc_clock)
                wall, phones_cpu = time.monotonic() - started, time.process_time() - phones_cpu
                phones_user = os.times().user - phones_times.user
            overflows = listen_overflows() - overflows
            main_after, worker_after = [proc_split(lab.pid)], [proc_split(pid) for pid in children(lab.pid)]
            sampler.stopping.set()
            sampler.join()
            sampler.sample()
            peak_kib, cpu = proc_usage(lab.pid)
            workers = [proc_usage(pid) for pid in children(lab.pid)]
        finally:
            lab.send_signal(signal.SIGTERM)
            lab.communicate(timeout=60)
        # the journal rotates at 32 MiB (a 10,000-phone storm writes ~45 MB): every file, oldest first
        journals = log_files(work / "events.jsonl")
        if args.keep_events:
            Path(args.keep_events).write_bytes(b"".join(path.read_bytes() for path in journals))
        events = [json.loads(line) for path in journals for line in path.open()]
        served = Counter(e["service"] for e in events if e["action"] != "fault")
        faults = Counter((e.get("detail") or {}).get("rule", "?") for e in events if e["action"] == "fault")
        leases = check_leases(work / "state", result.outcomes)
        relay = access.dhcp.relay_ip or ""
    summary = Summary.of(result.outcomes)
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.node()} {os.cpu_count()} CPU, Python {platform.python_version()}",
        "phones": summary.total,
        "provisioned": summary.provisioned,
        "phones_per_second": round(summary.provisioned / wall, 1),
        "time_to_provisioned_s": {"p50": summary.p50, "p95": summary.p95, "max": summary.maximum},
        "wall_seconds": round(wall, 2),
        "loss": args.loss,
        "phone_requests": result.requests,
        "phone_side_datagrams_lost": result.dropped,
        "kit_events_by_service": dict(served),
        "kit_faults_fired": dict(faults),
        "kernel_receive_drops": sampler.named(offset, relay),
        "tcp_listen_overflows": overflows,  # host-wide: SYNs dropped at a full accept queue (1 s retry)
        "lease_check": leases,
        "kit_peak_rss_mib": round(peak_kib / 1024, 1),
        "kit_cpu_seconds": round(cpu, 2),
        "kit_cpu_seconds_during_swarm": round(cpu - kit_cpu_before, 2),
        "phones_process_cpu_seconds": round(phones_cpu, 2),
        "cpu_ms_per_phone": {"kit_main": round(1000 * (cpu - kit_cpu_before) / max(1, summary.total), 2),
                             "workers": round(1000 * (sum(s for _, s in workers) - workers_before)
                                              / max(1, summary.total), 2),
                             "phones": round(1000 * phones_cpu / max(1, summary.total), 2),
                             "phones_user": round(1000 * phones_user / max(1, summary.total), 2),
                             "phones_gc": round(1000 * sum(gc_clock.seconds) / max(1, summary.total), 2)},
        "phones_gc_runs_by_generation": gc_clock.runs,
        # where the kit's CPU goes (user, kernel) and how often its threads went to sleep, per phone
        "kit_main_split": split_delta(main_split, main_after, summary.total),
        "kit_workers_split": split_delta(worker_split, worker_after, summary.total),
        "load_average_at_start": load_at_start,
        "workers": args.workers,
        "phones_engine": args.phones_engine,
        "kit_cpus": args.kit_cpus or "any",
        "phones_cpus": args.phones_cpus or "any",
        "load_average_at_end": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "worker_peak_rss_mib": [round(kib / 1024, 1) for kib, _ in workers],
        "worker_cpu_seconds": [round(seconds, 2) for _, seconds in workers],
        "failures": summary.failures,
    }
    print(json.dumps(report, indent=2))
    sound = leases["macs_with_two_leases"] == leases["addresses_held_twice"] == 0
    return 0 if summary.failed == 0 and sound and leases["phones_whose_lease_differs"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
