"""Per-DORA cost of labkit's whole DHCP path in one process, without sockets (on demand, not a test).

    .venv/bin/python bench/dhcp_cpu.py 20000                 # CPU µs per DORA (noisy on a shared machine)
    valgrind --tool=callgrind --instr-atstart=no .venv/bin/python bench/dhcp_cpu.py 2000 --callgrind
                                                              # instructions per DORA (repeatable under load)

perfdhcp's own DISCOVER and REQUEST (captured from `bench/dhcp_bench.py`: relayed, options 55 and
61) for N distinct MACs go through `DhcpService._readable` from a stand-in socket, each read holding
the REQUESTs of the previous group and the DISCOVERs of the next (as under perfdhcp); the service is
the one `labkit up` starts (start_dhcp: SQLite lease store with group commits on its thread) and
its events go through the bus to the status/timelines (LabOps) and the JSON-lines journal, as in
`labkit up`. `--sinks none|journal|ops` leaves parts out, to split the cost; `--core` measures
the pure core alone (DhcpServerCore.handle of each DISCOVER and REQUEST: no service, no store).
The codec is the one `labkit up` would choose (labkit.native._dhcp when built; LABKIT_NATIVE=0 for
the pure one); the reads are recvfrom from the stand-in socket either way. With `--callgrind`
(under valgrind, instrumentation off at start) only the measured part is counted: the script turns
callgrind on and off around it (callgrind_control), and prints the instructions per DORA.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import deque
from ipaddress import IPv4Address
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# perfdhcp 2.2's DISCOVER and REQUEST (relay 198.18.0.2, MAC 00:0c:01:02:03:04, xid 0)
HEAD = "010106010000000000000000000000000000000000000000c6120002000c01020304" + "00" * 202 + "63825363"
DISCOVER = bytes.fromhex(HEAD + "3501013707011c02030f060c3d0701000c01020304ff")
REQUEST = bytes.fromhex(HEAD + "3501033204c61201003604c61200013707011c02030f060c3d0701000c01020304ff")
FIRST = int(IPv4Address("198.18.1.0"))  # the pool's first address: the N clients get the next N
LAB = """\
lab: {name: dhcp-cpu, domain: bench.example, address: 198.18.0.1/16,
      pool: {start: 198.18.1.0, end: 198.18.255.254}, answer: any}
services: {dns: {enabled: false}, tftp: {enabled: false}, http: {enabled: false},
           https: {enabled: false}, syslog: {enabled: false}}
dhcp: {lease_time: 3600,
       options: {routers: [198.18.0.1], dns_servers: [198.18.0.1], domain_name: bench.example}}
models: {CP-8851-3PCC: {}}
phones: []
"""


def packets(n: int) -> tuple[list[bytes], list[bytes]]:
    discovers, requests = [], []
    for k in range(n):
        mac, xid = (0x000C00000000 + k).to_bytes(6, "big"), (k * 7919 + 1).to_bytes(4, "big")
        for template, out in ((DISCOVER, discovers), (REQUEST, requests)):
            data = bytearray(template)
            data[4:8], data[28:34], data[-7:-1] = xid, mac, mac
            if template is REQUEST:
                data[245:249] = IPv4Address(FIRST + k).packed  # option 50: the address offered
            out.append(bytes(data))
    return discovers, requests


class StandIn:
    """The server socket's two calls: recvfrom from a queue, sendto counted."""

    def __init__(self, fd: int) -> None:
        self.queue: deque[bytes] = deque()
        self.sent = 0
        self.fd = fd

    def recvfrom(self, size: int) -> tuple[bytes, tuple[str, int]]:
        if not self.queue:
            raise BlockingIOError
        return self.queue.popleft(), ("198.18.0.2", 67)

    def sendto(self, data: bytes, to: tuple[str, int]) -> int:
        self.sent += 1
        return len(data)

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        pass


def callgrind(switch: str) -> None:
    subprocess.run(["callgrind_control", "-i", switch, str(os.getpid())], capture_output=True, check=False)


async def run(n: int, batch: int, sinks: str, work: Path, grind: bool) -> tuple[float, int]:
    from labkit.events import StaticDirectory
    from labkit.inventory.load import load
    from labkit.plan.build import build_plan
    from labkit.services.context import Endpoint, StartContext
    from labkit.services.dhcp import start_dhcp
    from labkit.services.filetree import FileTree
    from labkit.services.journal import EventBus, JsonLinesLog, MalformedLimiter
    from labkit.services.ops import LabOps, phone_rows
    from labkit.services.status import LabStatus

    (work / "lab.yaml").write_text(LAB)
    plan = build_plan(load(work / "lab.yaml"))
    bus, journal = EventBus(), JsonLinesLog(work / "events.jsonl")
    if sinks in ("all", "ops"):
        bus.sinks.append(LabOps(LabStatus.of_phones(phone_rows(plan))))
    if sinks in ("all", "journal"):
        bus.sinks.append(MalformedLimiter(journal))
    ctx = StartContext(FileTree({}), bus, StaticDirectory(), plan.known_macs, work / "state")
    assert plan.dhcp is not None
    service = await start_dhcp(plan.dhcp, Endpoint("dhcp", "127.0.0.1", 0, "udp"), ctx)
    real, stand_in = service.sock, StandIn(service.sock.fileno())
    service.sock, service.drain = stand_in, None  # type: ignore[assignment]  # recvfrom from the queue
    discovers, requests = packets(n)
    if grind:
        callgrind("on")
    started = time.process_time()
    for first in range(0, n + batch, batch):
        stand_in.queue.extend(requests[max(0, first - batch):first])
        stand_in.queue.extend(discovers[first:first + batch])
        service._readable()
        await asyncio.sleep(0)
    while service.committing or service.waiting or service.outbox:
        await asyncio.sleep(0.002)
    journal.flush()
    used = time.process_time() - started
    if grind:
        callgrind("off")
    service.sock = real
    await service.close()
    journal.close()
    if stand_in.sent != 2 * n or bus.count != 2 * n:
        raise RuntimeError(f"{stand_in.sent} replies and {bus.count} events for {n} DORAs")
    with sqlite3.connect(work / "state" / "leases.sqlite3") as db:
        stored = db.execute("SELECT COUNT(*) FROM leases").fetchone()[0]
    return used, stored


def core_only(n: int, work: Path, grind: bool) -> float:
    from labkit import native
    from labkit.inventory.load import load
    from labkit.plan.build import build_plan
    from labkit.protocols.dhcp.leases import LeaseTable
    from labkit.protocols.dhcp.server import DhcpServerCore

    (work / "lab.yaml").write_text(LAB)
    plan = build_plan(load(work / "lab.yaml"))
    assert plan.dhcp is not None
    core = DhcpServerCore(plan.dhcp.server, LeaseTable())
    codec = native.load("_dhcp")
    if codec is not None:
        core.use_native(codec)
    discovers, requests = packets(n)
    source, now = ("198.18.0.2", 67), time.time()
    if grind:
        callgrind("on")
    started = time.process_time()
    for k in range(n):
        core.handle(discovers[k], source, now)
        core.handle(requests[k], source, now)
        if k % 32 == 31:
            core.table.take_pending()
    used = time.process_time() - started
    if grind:
        callgrind("off")
    return used


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dora", type=int, help="DORAs (distinct clients)")
    parser.add_argument("--batch", type=int, default=32, help="DISCOVERs per read (32)")
    parser.add_argument("--sinks", choices=("all", "none", "journal", "ops"), default="all")
    parser.add_argument("--core", action="store_true", help="the pure core alone (no service, store, events)")
    parser.add_argument("--callgrind", action="store_true", help="under callgrind: count the measured part")
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="labkit-dhcp-cpu-", dir=args.workdir))
    try:
        if args.core:
            used, stored, what = core_only(args.dora, work, args.callgrind), 0, "the core alone"
        else:
            used, stored = asyncio.run(run(args.dora, args.batch, args.sinks, work, args.callgrind))
            what = f"sinks {args.sinks}"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.dora} DORAs, {stored} leases stored, {what}: "
          f"{1e6 * used / args.dora:.1f} µs CPU per DORA (process time, all threads)")
    if args.callgrind:
        print("instructions: see callgrind's 'Collected' total; divide by", args.dora)
    return 0


if __name__ == "__main__":
    sys.exit(main())
