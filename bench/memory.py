"""Memory of `labkit up` for generated inventories of N phones (run on demand, not a test).

    .venv/bin/python bench/memory.py                                  # 1k, 10k, 100k: RSS after start
    .venv/bin/python bench/memory.py --phones 10000 --storm 10000     # + RSS at the end of a storm
    .venv/bin/python bench/memory.py --breakdown 10000                # where the plan's memory goes

The inventory is bench/storm.py's (three models, a vendor class, an SRV record, a firmware file
per model), with N phones whose MACs run 02:4c:xx:xx:xx:00. `labkit up` runs in its own process on
loopback (free port offset); RSS is read from /proc (VmRSS, and VmHWM for the peak) once the banner
is printed and, with --storm, after N virtual phones (in this process, as storm.py runs them) have
booted against it. `--breakdown N` builds the plan in this process and prints the size of each of
its structures (objects reachable from it, each counted once, in the order listed).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from labkit.inventory.load import default_lab_dir, load  # noqa: E402
from labkit.services.supervisor import free_port_offset  # noqa: E402

POOL_16 = 60000  # phones storm.py's pool (10.42.1.1-10.42.250.254) can lease at once
MODELS = ("CP-6841-3PCC", "CP-7841-3PCC", "CP-8851-3PCC")
BANNER = "Ctrl-C stops the lab."
# `labkit up` under tracemalloc (--trace): SIGUSR1 writes a snapshot to $LABKIT_TRACE_OUT.<n>
TRACED_UP = """
import os, runpy, signal, sys, tracemalloc
tracemalloc.start(int(os.environ.get("LABKIT_TRACE_FRAMES", "1")))
taken = [0]
def dump(signum, frame):
    taken[0] += 1
    tracemalloc.take_snapshot().dump(os.environ["LABKIT_TRACE_OUT"] + "." + str(taken[0]))
signal.signal(signal.SIGUSR1, dump)
sys.argv = ["labkit", *sys.argv[1:]]
runpy.run_module("labkit", run_name="__main__", alter_sys=True)
"""
SKIPPED = frozenset({"module", "function", "method", "builtin_function_or_method", "cell", "code"})


def inventory(phones: int) -> str:
    """storm.py's lab with `phones` phones (up to 2^24: three bytes of MAC)."""
    from storm import INVENTORY

    head = INVENTORY.split("\n", 1)[1].split("phones:")[0].replace("FAULTS\n", "")  # no Jinja loop
    if phones > POOL_16:  # storm.py's /16 pool holds ~64,000 leases: a /15 lab so every phone boots
        head = head.replace("10.42.0.1/16", "10.42.0.1/15")
        head = head.replace("end: 10.42.250.254", "end: 10.43.250.254")
    lines = [f'  - {{mac: "02:4c:{n >> 16:02x}:{(n >> 8) & 255:02x}:{n & 255:02x}:00", '
             f'model: "{MODELS[n % 3]}"}}\n' for n in range(phones)]
    return head + "phones:\n" + "".join(lines)


def status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM in MiB."""
    out = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return out


def prepare(work: Path, phones: int) -> Path:
    lab = work / "lab.yaml"
    lab.write_text(inventory(phones))
    (work / "firmware").mkdir()
    for load_file in (default_lab_dir() / "firmware").iterdir():
        (work / "firmware" / load_file.name).write_bytes(load_file.read_bytes() * 2000)  # ~300 kB
    return lab


def measure(phones: int, storm: int, concurrency: int, timeout: float,
            trace: str | None = None) -> dict[str, Any]:
    """RSS of `labkit up` with `phones` phones, after start and after `storm` of them booted."""
    with tempfile.TemporaryDirectory(prefix="labkit-memory-") as tmp:
        work = Path(tmp)
        lab_file = prepare(work, phones)
        offset = free_port_offset()
        head = [sys.executable, "-c", TRACED_UP] if trace else [sys.executable, "-m", "labkit"]
        command = [*head, "up", str(lab_file), "--port-offset", str(offset),
                   "--state", str(work / "state"), "--log", str(work / "events.jsonl"), "--quiet"]
        env = {**os.environ, "LABKIT_TRACE_OUT": trace} if trace else None
        started = time.monotonic()
        lab = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                               env=env)
        assert lab.stdout is not None
        row: dict[str, Any] = {"phones": phones}
        try:
            said: list[str] = []
            for line in lab.stdout:
                if BANNER in line:
                    break
                said = [*said[-20:], line]
            else:
                raise RuntimeError("the lab did not start:\n" + "".join(said))
            row["start_s"] = round(time.monotonic() - started, 1)
            time.sleep(1.0)  # let start-up garbage settle
            after = status(lab.pid)
            row["rss_after_start_mib"] = round(after["VmRSS"], 1)
            if trace:
                lab.send_signal(signal.SIGUSR1)
            print(json.dumps({**row, "note": "after start; the storm follows"}), file=sys.stderr, flush=True)
            if storm:
                try:
                    row.update(run_storm(lab_file, work, offset, concurrency, timeout, storm))
                except TimeoutError:  # a few phones still retrying: RSS is still the storm's end
                    row["storm_timed_out_s"] = timeout
                time.sleep(1.0)
                end = status(lab.pid)
                row["rss_after_storm_mib"] = round(end["VmRSS"], 1)
                row["peak_rss_mib"] = round(end["VmHWM"], 1)
                if "storm_timed_out_s" in row:  # asked after RSS was read: a status snapshot costs memory
                    row["stages"] = stages(work)
                if trace:
                    lab.send_signal(signal.SIGUSR1)
                    time.sleep(5.0)
            row.setdefault("peak_rss_mib", round(status(lab.pid)["VmHWM"], 1))
        finally:
            lab.send_signal(signal.SIGTERM)
            lab.communicate(timeout=120)
    return row


def stages(work: Path) -> dict[str, int]:
    """Phones per stage, from the running lab (`labkit status`)."""
    out = subprocess.run([sys.executable, "-m", "labkit", "status", "--state", str(work / "state"), "--json"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT, check=True).stdout
    return dict(json.loads(out)["stages"])


def run_storm(lab_file: Path, work: Path, offset: int, concurrency: int, timeout: float,
              count: int) -> dict[str, Any]:
    from labkit.phone.driver import loopback_access, run_swarm
    from labkit.phone.swarm import Summary, inventory_configs

    inv = load(lab_file).inventory
    access = loopback_access(inv, "127.0.0.1", offset, work / "state" / "ca" / "ca.pem")
    configs = inventory_configs(inv, rounds=2, retry_delays=(5,), seed=1)[:count]
    started = time.monotonic()
    result = asyncio.run(asyncio.wait_for(run_swarm(configs, access, concurrency=concurrency, time_scale=1.0),
                                          timeout))
    summary = Summary.of(result.outcomes)
    return {"provisioned": summary.provisioned, "storm_s": round(time.monotonic() - started, 1)}


def deep_size(obj: object, seen: set[int]) -> int:
    """Bytes of every object reachable from `obj` not already in `seen` (classes, modules and
    functions left out)."""
    total, stack = 0, [obj]
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, type) or type(item).__name__ in SKIPPED:
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        stack.extend(gc.get_referents(item))
    return total


def breakdown(phones: int) -> None:
    from labkit.plan.build import build_plan

    with tempfile.TemporaryDirectory(prefix="labkit-memory-") as tmp:
        lab_file = prepare(Path(tmp), phones)
        base = status_self()
        loaded = load(lab_file)
        gc.collect()
        after_load = status_self()
        plan = build_plan(loaded)
        gc.collect()
        after_plan = status_self()
    print(f"{phones} phones: RSS {base:.1f} MiB after imports, {after_load:.1f} after load, "
          f"{after_plan:.1f} after the plan")
    seen: set[int] = set()
    # the inventory first: the plan's phone entries point into it
    print(f"  inventory (pydantic models): {deep_size(loaded.inventory, seen) / 2**20:.1f} MiB")
    source = deep_size(loaded.source, seen)
    print(f"  inventory source map (file:line of every field): {source / 2**20:.1f} MiB")
    for field in dataclasses.fields(plan):
        if field.name == "loaded":
            continue
        size = deep_size(getattr(plan, field.name), seen)
        if size >= 2**16:
            print(f"  plan.{field.name}: {size / 2**20:.1f} MiB")


def status_self() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phones", default="1000,10000,100000", help="comma-separated sizes")
    parser.add_argument("--storm", default="",
                        help="phones that boot against each lab (a storm of the first of these <= its size)")
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds a storm may take")
    parser.add_argument("--trace", metavar="PREFIX",
                        help="run the lab under tracemalloc; print what the start and the storm allocated")
    parser.add_argument("--breakdown", type=int, metavar="N", help="where the plan's memory goes, N phones")
    args = parser.parse_args()
    if args.breakdown:
        breakdown(args.breakdown)
        return 0
    storms = [int(n) for n in args.storm.split(",") if n]
    for phones in (int(n) for n in args.phones.split(",")):
        storm = next((n for n in storms if n <= phones), 0) if storms else 0
        row = measure(phones, storm, args.concurrency, args.timeout, args.trace)
        print(json.dumps(row), flush=True)
        if args.trace:
            growth(args.trace)
    return 0


def growth(prefix: str, top: int = 25) -> None:
    """What the lab allocated between the two tracemalloc snapshots (start, end of the storm)."""
    import tracemalloc

    first = tracemalloc.Snapshot.load(prefix + ".1")
    print(f"after start: {sum(s.size for s in first.statistics('filename')) / 2**20:.1f} MiB traced")
    for stat in first.statistics("lineno")[:top]:
        print(f"  {stat.size / 2**20:7.2f} MiB {stat.count:8d}  {stat.traceback}")
    if not Path(prefix + ".2").exists():
        return
    second = tracemalloc.Snapshot.load(prefix + ".2")
    total = sum(s.size for s in second.statistics("filename"))
    print(f"end of storm: {total / 2**20:.1f} MiB traced; growth:")
    for diff in second.compare_to(first, "lineno")[:top]:
        print(f"  {diff.size_diff / 2**20:+7.2f} MiB {diff.count_diff:+8d}  {diff.traceback}")


if __name__ == "__main__":
    sys.exit(main())
