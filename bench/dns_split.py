"""Where a DNS server's CPU goes, per process (on demand, not a test): one dnsperf run against one
server kind of bench/dns_bench.py, and per process (the main one and each worker) the user and
system CPU µs per answered query and the voluntary/involuntary context switches per query, from
/proc; with --syscalls (needs perf and tracepoint access) also recvmmsg/sendmmsg/epoll_wait per
query, i.e. how many datagrams each wake-up drained.

    PYTHONPATH=$PWD .venv/bin/python bench/dns_split.py workers [--duration 6] [--syscalls]
    PYTHONPATH=$PWD .venv/bin/python bench/dns_split.py labkit

Same setup as `dns_bench.py --workers 2 --clients 8 --server-cpus 0,1` (servers on CPUs 0,1,
dnsperf on CPU 0, -c 8). Loopback only; the processes started here are stopped by their PID.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dns_bench as bench

CALLS = ("recvmmsg", "sendmmsg", "epoll_wait")


def _stat(pid: int) -> list[int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return [int(fields[11]), int(fields[12]), int(status["voluntary_ctxt_switches"]),
            int(status["nonvoluntary_ctxt_switches"])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["labkit", "workers", "pure", "dnsmasq"])
    parser.add_argument("--duration", type=int, default=6)
    parser.add_argument("--syscalls", action="store_true", help="count system calls with perf stat")
    args = parser.parse_args()
    bench.SERVER_CPU, bench.CLIENTS = "0,1", 8
    data = Path(os.environ.get("TMPDIR", "/tmp")) / f"dns-split-{os.getpid()}.txt"
    bench.query_file(data)
    server = bench.Server(args.kind)
    perf = None
    try:
        pid = server.process.pid
        pids = [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
        if args.syscalls:
            events = ",".join(f"syscalls:sys_enter_{name}" for name in CALLS)
            perf = subprocess.Popen(["perf", "stat", "-x,", "--per-thread", "-e", events, "-p",
                                     ",".join(map(str, pids))], stderr=subprocess.PIPE, text=True)
        before = {p: _stat(p) for p in pids}
        out = bench.dnsperf(server.port, data, min(args.duration, 60), [])
        after = {p: _stat(p) for p in pids}
    finally:
        counted = ""
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            counted = perf.communicate(timeout=30)[1]
        server.stop()
        data.unlink(missing_ok=True)
    n = max(bench._number(r"Queries completed:\s+(\d+)", out), 1)
    tick = os.sysconf("SC_CLK_TCK")
    rate = bench._number(r"Queries per second:\s+([\d.]+)", out)
    print(f"{args.kind}: {rate:,.0f} q/s, {n:,.0f} queries, load average {os.getloadavg()[0]:.1f}; "
          "per answered query (of all processes' queries):")
    for p in pids:
        d = [a - b for a, b in zip(after[p], before[p], strict=True)]
        print(f"  pid {p} {'main' if p == pid else 'worker'}: user {d[0] / tick / n * 1e6:.2f} µs, "
              f"system {d[1] / tick / n * 1e6:.2f} µs, context switches {d[2] / n:.3f} voluntary, "
              f"{d[3] / n:.4f} involuntary")
    for line in counted.splitlines():
        parts = line.split(",")
        if len(parts) > 3 and parts[1].strip().isdigit() and int(parts[1]):
            print(f"  {parts[0]} {parts[3].split(':')[-1]}: {int(parts[1]) / n:.4f} per query")


if __name__ == "__main__":
    main()
