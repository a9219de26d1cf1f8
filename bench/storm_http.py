"""The kit's CPU per HTTP GET of a storm's files, with and without the quick path (run on demand).

    .venv/bin/python bench/storm_http.py [--requests 6000] [--concurrency 64] [--rounds 3]

The HTTP service (`start_http`, as `labkit up` runs it) serves a 316 kB firmware on disk and a
small profile in memory in this process; a client process fetches them the way the virtual
phone does (`GET`, Host, User-Agent, Accept, `Connection: close`, one connection per request,
`--concurrency` at a time). The server's CPU (user + system of this process, the client's
process not counted) per request is measured for `quick=True` (labkit.services.http_quick) and
`quick=False` (every request through aiohttp), alternating, `--rounds` times each; CPU per request
holds on a loaded machine where rates do not.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labkit.events import EventRecorder, StaticDirectory  # noqa: E402
from labkit.plan.http import HttpLimits, HttpPlan  # noqa: E402
from labkit.plan.profiles import PlannedFile  # noqa: E402
from labkit.services.context import Endpoint, StartContext  # noqa: E402
from labkit.services.filetree import FileTree  # noqa: E402
from labkit.services.http import start_http  # noqa: E402

CLIENT = """
import asyncio, sys
port, count, width = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
paths = ["/sip88xx.loads", "/CP-8851-3PCC.xml"]
async def one(i):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = ("GET %s HTTP/1.1\\r\\nHost: prov.lab.example\\r\\nUser-Agent: Cisco-CP-8851-3PCC/12.0.1 "
            "(024C4B%06X)\\r\\nAccept: */*\\r\\nConnection: close\\r\\n\\r\\n" % (paths[i % 2], i))
    writer.write(head.encode())
    data = await reader.read()
    writer.close()
    assert data.startswith(b"HTTP/1.1 200 OK"), data[:40]
async def main():
    gate = asyncio.Semaphore(width)
    async def gated(i):
        async with gate:
            await one(i)
    await asyncio.gather(*(gated(i) for i in range(count)))
asyncio.run(main())
"""


async def measure(folder: Path, quick: bool, requests: int, concurrency: int) -> float:
    """Server CPU µs per request for one batch."""
    firmware = folder / "sip88xx.12-0-1MPP-0001.loads"
    profile = b"<flat-profile/>" * 60
    files = {"CP-8851-3PCC.xml": PlannedFile("CP-8851-3PCC.xml", "model profile", data=profile),
             "sip88xx.loads": PlannedFile("sip88xx.loads", "firmware", disk_path=firmware)}
    recorder = EventRecorder()
    ctx = StartContext(FileTree(files, None, sources=[folder]), recorder, StaticDirectory(), frozenset(),
                       folder / "state")
    limits = HttpLimits(header_timeout=30, body_timeout=30, per_client=4096, total=4096)
    server = await start_http(HttpPlan("http", limits=limits), Endpoint("http", "127.0.0.1", 0, "tcp"), ctx,
                              quick=quick)
    try:
        client = await asyncio.create_subprocess_exec(sys.executable, "-c", CLIENT, str(server.port),
                                                      str(requests), str(concurrency))
        started = time.process_time()
        code = await asyncio.wait_for(client.wait(), 600)
        spent = time.process_time() - started
    finally:
        await server.close()
    if code != 0 or len(recorder.events) != requests:
        raise SystemExit(f"client exit {code}, {len(recorder.events)} events for {requests} requests")
    return spent / requests * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"load average at start: {load}")
    results: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="labkit-storm-http-") as tmp:
        folder = Path(tmp)
        (folder / "sip88xx.12-0-1MPP-0001.loads").write_bytes(bytes(range(256)) * 1236)  # 316,416 bytes
        for index in range(args.rounds):
            for quick in ((True, False) if index % 2 == 0 else (False, True)):
                results[quick].append(asyncio.run(measure(folder, quick, args.requests, args.concurrency)))
                print(f"round {index + 1} quick={quick}: {results[quick][-1]:.1f} µs server CPU per GET",
                      flush=True)
    for quick in (True, False):
        values = results[quick]
        print(f"quick={quick}: median {statistics.median(values):.1f} [{min(values):.1f}-{max(values):.1f}] "
              "µs server CPU per GET")
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    ratio = statistics.median(results[False]) / statistics.median(results[True])
    print(f"aiohttp / quick (ratio of medians): {ratio:.2f}x; load average at end: {load}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
