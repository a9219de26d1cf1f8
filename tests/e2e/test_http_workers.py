"""`labkit up --workers N` with HTTP in the workers: curl gets the lab's files from every worker,
byte for byte; a Report_Rule upload (which only the main process stores) is forwarded there with
the client's own address; every exchange is one event in the one journal; a reload reaches every
worker; no worker is left when the lab stops."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from labkit.inventory.load import load
from labkit.plan.build import build_plan
from labkit.services.admin import AdminSettings
from labkit.services.reload import apply_plan
from labkit.services.running import LogSettings, run_lab
from labkit.services.supervisor import STANDARD_PORTS, free_port_offset
from labkit.services.workers import PooledService
from tests.e2e.test_workers import children, gone
from tests.helpers import FIRMWARE, journal_in_time_order, write_lab

MAC = "00:56:2b:00:00:01"
LAB = f"""\
lab: {{domain: t.example, address: 192.0.2.1/24}}
models: {{CP-8851-3PCC: {{firmware: {FIRMWARE}}}}}
phones: [{{mac: "{MAC}", model: CP-8851-3PCC, ip: 192.0.2.9}}]
"""
CLIENTS = 40  # connections: SO_REUSEPORT hashes their source ports over the workers
WAIT = 20.0  # seconds one curl may take (a bound, not an assertion on time)
PROFILE = "Cisco/00562b000001.cfg"


async def curl(*args: str) -> tuple[int, bytes]:
    """curl's exit status and its standard output (a new connection, a new source port)."""
    process = await asyncio.create_subprocess_exec("curl", "-sS", "--max-time", str(WAIT), *args,
                                                   stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    return process.returncode or 0, out


def test_http_in_workers_files_reports_events_reload_and_stop(tmp_path: Path) -> None:
    inventory = write_lab(tmp_path / "lab", LAB)
    before = build_plan(load(inventory))
    firmware = (tmp_path / "lab" / "firmware" / FIRMWARE).read_bytes()
    offset = free_port_offset()
    base = f"http://127.0.0.1:{STANDARD_PORTS['http'] + offset}"
    seen: dict[str, object] = {}

    async def main() -> None:
        async with run_lab(before, log=LogSettings(tmp_path / "events.jsonl"), port_offset=offset,
                           state_dir=tmp_path / "state", admin=AdminSettings(enabled=False), workers=2
                           ) as lab:
            http = lab.services["http"]
            assert isinstance(http, PooledService) and sorted(http.workers) == sorted(children(os.getpid()))
            seen["pids"] = http.workers
            for _ in range(CLIENTS):
                assert await curl(f"{base}/{FIRMWARE}") == (0, firmware)
            served = [c["requests"] for c in await http.counters()]
            assert sum(served) == CLIENTS and all(n > 0 for n in served), served  # both workers answered
            profile = await curl(f"{base}/{PROFILE}")
            assert profile[0] == 0 and b"<flat-profile>" in profile[1]
            # an upload: only the main process stores reports; curl's own port names the client
            status, port = await curl("-T", "-", "-w", "%{http_code} %{local_port}", "-o", "/dev/null",
                                      "-A", f"Cisco-CP-8851-3PCC/12.0.1 ({MAC.replace(':', '')})",
                                      f"{base}/report/status.xml")
            seen["upload"] = port.decode().split()
            assert status == 0 and seen["upload"][0] == "200", port  # type: ignore[index]
            (tmp_path / "lab" / "firmware" / FIRMWARE).write_bytes(b"new firmware")
            assert apply_plan(lab, build_plan(load(inventory))).ok
            for _ in range(CLIENTS):  # every connection, whichever worker takes it, sees the new file
                assert await curl(f"{base}/{FIRMWARE}") == (0, b"new firmware")

    asyncio.run(main())
    pids = seen["pids"]
    assert isinstance(pids, list) and all(gone(pid) for pid in pids)
    gets = journal_in_time_order(tmp_path / "events.jsonl", "http", "get")  # the curls ran one by one
    assert len(gets) == 2 * CLIENTS + 1  # each exchange once, from either worker, in the one journal
    assert all(e["answer"] == f"200 {len(firmware)} bytes" for e in gets[:CLIENTS])
    assert len({e["client"] for e in gets}) == len(gets)  # each curl's own address and port
    uploads = journal_in_time_order(tmp_path / "events.jsonl", "http", "report")
    assert len(uploads) == 1, uploads
    _, local_port = seen["upload"]  # type: ignore[misc]
    assert uploads[0]["client"] == f"127.0.0.1:{local_port}" and uploads[0]["phone"] == MAC
    stored = list((tmp_path / "state" / "reports" / MAC.replace(":", "")).glob("*"))
    assert stored, "the main process stored the upload"
