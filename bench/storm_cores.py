"""One core against two: the same storm (bench/storm.py) with the kit on one CPU and on two (run on demand).

    .venv/bin/python bench/storm_cores.py [--phones 10000] [--concurrency 256] [--runs 3]
        [--phones-engine c|python]

"One core": `labkit up --workers 1` pinned to CPU 0 (the main process and its threads).
"Two cores": `labkit up --workers 2`, not pinned (the main process and two workers on both CPUs).
The phones' process (by default the C generator bench/storm_phones.c, `--phones-engine python`
for labkit's virtual phones in one asyncio process) is not pinned in either, so it is placed the
same way in both. The runs alternate (one-two, two-one, one-two, ...) so that a machine whose load drifts
favours neither. Prints each run's figures and the ratio of the medians of phones/s, min-max.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

STORM = Path(__file__).resolve().parent / "storm.py"
SETUPS = {"one core": ["--workers", "1", "--kit-cpus", "0"], "two cores": ["--workers", "2"]}


def run(name: str, phones: int, concurrency: int, engine: str) -> dict[str, object]:
    command = [sys.executable, str(STORM), "--phones", str(phones), "--concurrency", str(concurrency),
               "--phones-engine", engine, *SETUPS[name]]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    start = done.stdout.find("{")
    if start < 0:
        raise SystemExit(f"{name}: storm.py printed no report:\n{done.stdout}\n{done.stderr}")
    report: dict[str, object] = json.loads(done.stdout[start:])
    return report


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} [{min(values):.1f}-{max(values):.1f}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--phones", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--phones-engine", choices=("c", "python"), default="c",
                        help="The phones: the lean C generator bench/storm_phones.c (default: the issue's "
                             "figure), or labkit's virtual phones in one Python process (python).")
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("two cores needed")
    rates: dict[str, list[float]] = {name: [] for name in SETUPS}
    print("| run | kit | provisioned | wall | phones/s | p50 / p95 / max to provisioned | CPU ms per phone: "
          "kit main / workers / phones | SYNs dropped | load average at start → end |")
    print("|---|---|---|---|---|---|---|---|---|")
    for index in range(args.runs):
        order = list(SETUPS) if index % 2 == 0 else list(reversed(SETUPS))
        for name in order:
            r = run(name, args.phones, args.concurrency, args.phones_engine)
            t, cpu = r["time_to_provisioned_s"], r["cpu_ms_per_phone"]
            assert isinstance(t, dict) and isinstance(cpu, dict)
            rate = float(r["phones_per_second"])  # type: ignore[arg-type]
            rates[name].append(rate)
            cells = [str(index + 1), name, f"{r['provisioned']}/{r['phones']}", f"{r['wall_seconds']} s",
                     str(rate),
                     f"{t['p50']:.2f} / {t['p95']:.2f} / {t['max']:.1f} s",
                     f"{cpu['kit_main']} / {cpu['workers']} / {cpu['phones']}",
                     str(r.get("tcp_listen_overflows", "?")),
                     f"{r['load_average_at_start']} → {r['load_average_at_end']}"]
            print("| " + " | ".join(cells) + " |", flush=True)
    one, two = rates["one core"], rates["two cores"]
    print(f"\nphones/s, median [min-max] over {args.runs} runs: one core {spread(one)}, "
          f"two cores {spread(two)}")
    print(f"phones: {args.phones_engine}")
    print(f"two cores / one core (ratio of medians): {statistics.median(two) / statistics.median(one):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
