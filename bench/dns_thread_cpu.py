"""A worker's DNS cost per query in user space, over real loopback sockets (on demand, not a test):
the Drain's own thread (labkit/native/udp_pump.h) against the event loop's drain (issue 15, round 6).

    PYTHONPATH=$PWD valgrind --tool=callgrind --instr-atstart=no \
        .venv/bin/python bench/dns_thread_cpu.py 20000 --callgrind   # [--window 5]
    LABKIT_DNS_THREAD=0 PYTHONPATH=$PWD valgrind ... (the same)    # the loop's compiled drain
    PYTHONPATH=$PWD .venv/bin/python bench/dns_thread_cpu.py 200000  # no valgrind: CPU µs per query

This process is a worker: the DNS service (the plan of `labkit up` without an inventory) logs into a
Batcher whose frames are counted, not sent. A client process (not under valgrind) asks from PEERS
sockets in windows of WINDOW queries (dnsperf's mix of bench/workers_cpu.py): it sends a window,
waits for its answers, and goes on, so each wake-up finds about a window of datagrams whatever
the speed. Printed: instructions per query of this whole process (every thread; under callgrind,
counted only while the client runs), CPU µs per query (user, system: from /proc, noisy on a
shared machine), and the events the main process would make an Event object for, per query (one
per run and template of each frame: what the main process's cost per query follows).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

PEERS = 8
WINDOW = 20

CLIENT = r"""
import socket, sys, time
sys.path.insert(0, sys.argv[4])
from workers_cpu import _queries
port, total, window = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
queries = _queries()
peers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(8)]
for s in peers:
    s.settimeout(5.0)
print("ready", flush=True)
sys.stdin.readline()
sent = lost = 0
while sent < total:
    n = min(window, total - sent)
    for k in range(n):
        peers[k % len(peers)].sendto(queries[(sent + k) % len(queries)], ("127.0.0.1", port))
    for k in range(n):
        try:
            peers[k % len(peers)].recv(65535)
        except OSError:
            lost += 1
    sent += n
print("done", sent, lost, flush=True)
"""


def _callgrind(switch: str) -> int:
    from workers_cpu import callgrind

    return callgrind(switch)


def _cpu() -> tuple[float, float]:
    fields = Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


async def run(total: int, window: int, use_callgrind: bool) -> None:
    import pickle

    from labkit.events import StaticDirectory
    from labkit.faults.hooks import Faults
    from labkit.inventory.load import load
    from labkit.plan.build import build_plan
    from labkit.services.context import Endpoint, StartContext
    from labkit.services.dns import start_dns
    from labkit.services.filetree import FileTree
    from labkit.services.worker_main import Batcher

    frames: list[bytes] = []  # read after the measured part: the main process's, not counted here
    batcher = Batcher(frames.append)
    ctx = StartContext(FileTree({}), batcher, StaticDirectory(), frozenset(), Path("/nonexistent"), Faults())
    service = await start_dns(build_plan(load(None)).dns, Endpoint("dns", "127.0.0.1", 0, "udp+tcp"), ctx)
    form = "thread" if service.pump is not None else "loop" if service.native_udp else "pure"
    client = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT, str(service.port), str(total), str(window), str(REPO / "bench"),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert client.stdin is not None and client.stdout is not None
    await client.stdout.readline()  # ready
    batcher.flush()
    frames.clear()
    if use_callgrind:
        _callgrind("on")
    before, clock = _cpu(), time.monotonic()
    client.stdin.write(b"go\n")
    await client.stdin.drain()
    done = (await client.stdout.readline()).split()
    batcher.flush()
    if service.pump is not None:
        service.pump.collect()
        batcher.flush()
    instructions = _callgrind("off") if use_callgrind else 0
    after, seconds = _cpu(), time.monotonic() - clock
    await client.wait()
    await service.close()
    answered = int(done[1]) - int(done[2])
    made = [0, len(frames)]  # the main process's Event objects (one per run and template), frames
    for data in frames:
        _, _, _, counts, which = pickle.loads(data[4:])
        start = 0
        for count in counts:
            made[0] += len(set(which[start:start + count]))
            start += count
    user, system = ((after[k] - before[k]) / answered * 1e6 for k in (0, 1))
    print(f"{form}: {answered:,} answered ({done[2].decode()} lost), window {window}, {seconds:.1f} s; "
          "per query: " + (f"{instructions / answered:,.0f} instructions, " if use_callgrind else "")
          + f"user {user:.2f} µs, system {system:.2f} µs; main-process Events {made[0] / answered:.3f}, "
          f"frames {made[1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("queries", type=int, nargs="?", default=200_000)
    parser.add_argument("--window", type=int, default=WINDOW,
                        help="queries in flight (about a wake-up's batch)")
    parser.add_argument("--callgrind", action="store_true", help="under callgrind: count the measured part")
    args = parser.parse_args()
    asyncio.run(run(args.queries, args.window, args.callgrind))


if __name__ == "__main__":
    main()


