"""What one atftp fetch costs whatever the server: the client's start, the request, the options'
round trip and one block (a one-byte file), beside a 1 MiB fetch, against labkit and tftpd-hpa.

Run on demand (issue 15, eighth round): it says how much of bench/tftp_bench.py's single-client
1 MiB rows is the client's own fixed cost, which no server can remove. Each fetch is one atftp
process, timed from its start to its exit as tftp_bench.py times its clients; servers alternate.

    .venv/bin/python bench/tftp_floor.py [--fetches 30] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tftp_bench  # (the bench's own Server: the same start, ports and tftpd-hpa flags)

FETCHES = [("1 byte", "tiny.bin", 8), ("1 MiB", "file1.bin", 8), ("1 MiB", "file1.bin", 1)]


def timed(argv: list[str], count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fetches", type=int, default=30, help="fetches per row and round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, the servers alternating")
    parser.add_argument("--tftpd", default="in.tftpd")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tftp-floor-"))
    (root / "tiny.bin").write_bytes(b"x")
    (root / "file1.bin").write_bytes(bytes(range(256)) * 4096)
    out = root / "out.bin"
    print("| server | round | " + " | ".join(f"{what} windowsize {ws} ms, median [min-max]"
                                             for what, _, ws in FETCHES) + " |")
    print("|---" * (2 + len(FETCHES)) + "|")
    for round_ in range(1, args.rounds + 1):
        for kind in ("labkit", "tftpd-hpa"):
            server = tftp_bench.Server(kind, root, args.tftpd)
            server.start()
            try:
                cells = []
                for _, name, ws in FETCHES:
                    case = tftp_bench.Case(1, 1, "atftp", 1468, ws)  # the bench's own atftp command
                    times = timed(tftp_bench.client_argv(case, server.port, name, out), args.fetches)
                    cells.append(f"{statistics.median(times) * 1e3:.2f} [{min(times) * 1e3:.2f}-"
                                 f"{max(times) * 1e3:.2f}]")
            finally:
                server.stop()
            print(f"| {kind} | {round_} | " + " | ".join(cells) + " |", flush=True)
    spawn = timed(["atftp", "--help"], args.fetches)
    print(f"atftp --help (the process alone): {statistics.median(spawn) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
