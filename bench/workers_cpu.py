"""Per-query cost of DNS's Python work in one process and in the worker form, without sockets
(on demand, not a test): where the workers' extra CPU per query goes (issue 15).

    .venv/bin/python bench/workers_cpu.py 200000              # ns per query (noisy on a shared machine)
    valgrind --tool=callgrind --instr-atstart=no .venv/bin/python bench/workers_cpu.py 20000 --callgrind
                                                              # instructions per query (repeatable)
    ... bench/workers_cpu.py 40000 --callgrind --wake 5        # and at 5 datagrams a wake-up: the two
                                                              # give the fixed cost per wake-up

The DNS service's compiled drain (`drain_native`, labkit/services/dns_udp.py) runs against a
stand-in for `labkit.native._udp.Drain` that hands out what the module would: per wake-up
WAKE datagrams from PEERS peers (dnsperf's query mix of bench/dns_bench.py, the kept replies'
table values for hits), so only the Python part is measured, the same in every row:
- single: the service's events go to a counting sink (bench/dns_bench.py's "labkit" row);
- worker: they go to a worker's Batcher (labkit.services.worker_main), which encodes the frames
  a worker sends to the main process;
- main: those frames are read as the main process reads them (a StreamReader, `read_frame`) and
  delivered into a counting bus (labkit.services.workers.WorkerPool).
With `--callgrind` (under valgrind, instrumentation off at start) only each row's part is
counted: the script turns callgrind on and off around it and prints the instructions per query.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PEERS = 8  # dnsperf -c 8
WAKE = 20  # datagrams per wake-up (what a worker drained per epoll wake-up under dnsperf -c 8)


class CountingSink:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, event: object) -> None:
        self.count += 1


def _queries() -> list[bytes]:
    from dnslib import DNSRecord

    names = ([("_ciscoprov-https._tls.lab.example", "SRV")] * 30
             + [("_ciscoprov-http._tcp.lab.example", "SRV")] * 30
             + [(f"{h}.lab.example", "A") for h in ("prov", "ns", "pbx", "acs")] * 5
             + [("prov.lab.example", "AAAA")] * 5 + [(f"missing{i}.lab.example", "A") for i in range(15)])
    random.Random(1).shuffle(names)
    out = []
    for k, (name, qtype) in enumerate(names):
        record = DNSRecord.question(name, qtype)
        record.header.id = k
        record.header.rd = 0
        out.append(bytes(record.pack()))
    return out


class StandInDrain:
    """What labkit.native._udp.Drain hands to Python per receive(): addresses (one tuple object
    per peer) and per datagram the table's value (a hit) or the query's bytes (a miss)."""

    def __init__(self, wakes: list[list[tuple[Any, bytes]]]) -> None:
        self.wakes, self.next = wakes, 0

    def receive(self, table: dict[bytes, Any]) -> tuple[list[Any], list[Any]]:
        batch = self.wakes[self.next % len(self.wakes)]  # fewer than a batch: the drain returns
        self.next += 1
        values = [table.get(query[2:], query) for _, query in batch]
        return [address for address, _ in batch], values

    def reply(self, wire: bytes | None) -> None:
        """Nothing to queue: this bench counts the Python around the socket calls, not them."""

    def send(self) -> int:
        return 0


def _wakes(queries: list[bytes]) -> list[list[tuple[Any, bytes]]]:
    rng = random.Random(2)
    peers = [("127.0.0.1", 40000 + k) for k in range(PEERS)]
    stream = [(peers[rng.randrange(PEERS)], queries[k % len(queries)]) for k in range(WAKE * 500)]
    return [stream[k:k + WAKE] for k in range(0, len(stream), WAKE)]


def callgrind(switch: str) -> int:
    """Instrumentation on, or off and dumped: then the instructions counted since the last dump."""
    pid = str(os.getpid())
    subprocess.run(["callgrind_control", "-i", switch, pid], capture_output=True, check=False)
    if switch == "on":
        return 0
    subprocess.run(["callgrind_control", "-d", pid], capture_output=True, check=False)
    dumps = sorted(Path.cwd().glob(f"callgrind.out.{pid}.*"), key=lambda p: p.stat().st_mtime)
    for line in dumps[-1].read_text().splitlines() if dumps else ():
        if line.startswith("totals:"):
            return int(line.split()[1])
    return 0


async def _service(sink: Any) -> Any:
    from labkit.events import StaticDirectory
    from labkit.inventory.load import load
    from labkit.plan.build import build_plan
    from labkit.protocols.dns import AuthoritativeResolver
    from labkit.services.dns import DnsService

    plan = build_plan(load(None)).dns
    resolver = AuthoritativeResolver(plan.zones, max_udp=plan.max_udp)
    return DnsService(resolver, "127.0.0.1", sink, StaticDirectory())


def _drive(service: Any, drain: StandInDrain, wakes: int) -> None:
    from labkit.services.dns_udp import drain_native

    for _ in range(wakes):
        drain_native(service, drain)


async def run(queries: int, use_callgrind: bool) -> None:
    from labkit.services.worker_main import Batcher
    from labkit.services.workers import WorkerPool, read_frame

    wakes = _wakes(_queries())
    rounds = max(queries // WAKE, 1)
    n = rounds * WAKE
    results: dict[str, float] = {}

    def measure(name: str, step: Any) -> None:
        if use_callgrind:
            callgrind("on")
        started = time.perf_counter()
        step()
        spent = time.perf_counter() - started
        results[name] = (callgrind("off") if use_callgrind else spent * 1e9) / n

    counting = CountingSink()
    service = await _service(counting)
    _drive(service, StandInDrain(wakes), len(wakes))  # every question learnt: hits from here on
    measure("single", lambda: _drive(service, StandInDrain(wakes), rounds))

    frames: list[bytes] = []
    batcher = Batcher(frames.append)
    service = await _service(batcher)
    _drive(service, StandInDrain(wakes), len(wakes))
    batcher.flush()
    frames.clear()
    measure("worker", lambda: (_drive(service, StandInDrain(wakes), rounds), batcher.flush()))

    from labkit.events import StaticDirectory
    from labkit.services.context import StartContext
    from labkit.services.filetree import FileTree

    bus = CountingSink()
    pool = WorkerPool(2, StartContext(FileTree({}), bus, StaticDirectory(), frozenset(),
                                      Path(tempfile.gettempdir())), started=0.0)
    reader = asyncio.StreamReader(limit=1 << 26)

    async def main_side() -> None:
        for data in frames:
            reader.feed_data(data)
            message = await read_frame(reader)
            kind = message[0]
            if kind == "columns":
                pool.deliver_columns(*message[1:])
            else:
                getattr(pool, f"deliver_{kind}")(*message[1:])

    async def timed() -> None:
        if use_callgrind:
            callgrind("on")
        started = time.perf_counter()
        await main_side()
        spent = time.perf_counter() - started
        results["main"] = (callgrind("off") if use_callgrind else spent * 1e9) / n

    await timed()
    assert bus.count == n, (bus.count, n)
    wire = sum(len(f) for f in frames) / n
    unit = "instructions" if use_callgrind else "ns"
    print(f"{n} queries, {WAKE} per wake-up from {PEERS} peers, {len(frames)} frames, "
          f"{wire:.1f} bytes per event on the wire")
    for name, value in results.items():
        print(f"{name:7s} {value:8.0f} {unit} per query")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("queries", type=int, nargs="?", default=200_000)
    parser.add_argument("--callgrind", action="store_true", help="under callgrind: count each row's part")
    parser.add_argument("--wake", type=int, default=WAKE,
                        help="datagrams per wake-up (two values give the fixed cost per wake-up)")
    args = parser.parse_args()
    globals()["WAKE"] = args.wake
    asyncio.run(run(args.queries, args.callgrind))


if __name__ == "__main__":
    main()
