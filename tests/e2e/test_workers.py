"""`labkit up --workers N`: DNS served by several processes, their events in the one journal,
reload reaching every worker, and no worker left behind when the lab stops, on SIGTERM, or when
the main process is killed outright."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from dnslib import DNSRecord

from labkit.inventory.load import load
from labkit.plan.build import build_plan
from labkit.protocols.dns import AuthoritativeResolver
from labkit.services.admin import AdminSettings
from labkit.services.reload import apply_plan
from labkit.services.running import LogSettings, run_lab
from labkit.services.supervisor import STANDARD_PORTS, free_port_offset
from labkit.services.workers import PooledService
from tests.helpers import FIRMWARE, journal_in_time_order, write_lab

HOST = "127.0.0.1"
MAC = "00:56:2b:00:00:01"
LAB = f"""\
lab: {{domain: t.example, address: 192.0.2.1/24}}
models: {{CP-8851-3PCC: {{firmware: {FIRMWARE}}}}}
dns: {{records: {{pbx: 192.0.2.5}}}}
phones: [{{mac: "{MAC}", model: CP-8851-3PCC, ip: 192.0.2.9}}]
"""
CLIENTS = 40  # source ports: SO_REUSEPORT hashes them over the workers (all on one: 2**-39)
WAIT = 10.0  # seconds any one answer or process may take (bounds, not assertions on time)


def gone(pid: int) -> bool:
    """No such process, or a zombie (it ran its course; its new parent has yet to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


async def ask(port: int, name: str, ident: int, client: socket.socket | None = None) -> bytes:
    """One query from `client`, or from a new socket (a new source port each time)."""
    loop = asyncio.get_running_loop()
    query = DNSRecord.question(name, "A")
    query.header.id = ident
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) if client is None else client as sock:
        sock.setblocking(False)
        await loop.sock_sendto(sock, bytes(query.pack()), (HOST, port))
        async with asyncio.timeout(WAIT):
            return await loop.sock_recv(sock, 65535)


def test_workers_serve_dns_log_events_reload_and_stop(tmp_path: Path) -> None:
    inventory = write_lab(tmp_path / "lab", LAB)
    before = build_plan(load(inventory))
    inventory.write_text(LAB.replace("192.0.2.5", "192.0.2.6"))
    after = build_plan(load(inventory))
    offset = free_port_offset()
    port = STANDARD_PORTS["dns"] + offset
    reference = AuthoritativeResolver(before.dns.zones, max_udp=before.dns.max_udp)
    seen: dict[str, object] = {}

    async def main() -> None:
        async with run_lab(before, log=LogSettings(tmp_path / "events.jsonl"), port_offset=offset,
                           state_dir=tmp_path / "state", admin=AdminSettings(enabled=False), workers=2
                           ) as lab:
            dns = lab.services["dns"]
            assert isinstance(dns, PooledService) and len(dns.workers) == 2
            assert sorted(dns.workers) == sorted(children(os.getpid()))
            seen["pids"] = dns.workers
            assert lab.directory is not None
            lab.directory.by_address[HOST] = MAC  # as a DHCP lease would: the main process knows it
            # All bound before the first query: CLIENTS distinct source ports (a socket closed
            # after its query could hand its port to the next one).
            clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(CLIENTS)]
            for client in clients:
                client.bind((HOST, 0))
            for ident, client in enumerate(clients, start=1):
                query = DNSRecord.question("pbx.t.example", "A")
                query.header.id = ident
                expected = reference.answer(bytes(query.pack())).send[0].data
                assert await ask(port, "pbx.t.example", ident, client) == expected
            served = [c["queries"] for c in await dns.counters()]
            assert sum(served) == CLIENTS and all(n > 0 for n in served), served  # both workers answered
            assert lab.ops is not None
            for _ in range(int(WAIT / 0.01)):  # the workers' last batch is on its way (bounded wait)
                if lab.ops.counters()["services"].get("dns", {}).get("requests", 0) >= CLIENTS:
                    break
                await asyncio.sleep(0.01)
            counted = lab.ops.counters()["services"]["dns"]  # what the dashboard and /metrics show
            assert counted["requests"] == CLIENTS, counted
            outcome = apply_plan(lab, after)
            assert outcome.ok
            changed = 0
            for ident in range(500):  # until every worker answers from the new zones (bounded)
                reply = DNSRecord.parse(await ask(port, "pbx.t.example", ident))
                changed = changed + 1 if str(reply.rr[0].rdata) == "192.0.2.6" else 0
                if changed == CLIENTS:
                    break
                await asyncio.sleep(0.01)
            assert changed == CLIENTS

    asyncio.run(main())
    pids = seen["pids"]
    assert isinstance(pids, list) and all(gone(pid) for pid in pids)
    queries = journal_in_time_order(tmp_path / "events.jsonl", "dns", "query")
    assert len(queries) >= 2 * CLIENTS  # every answered query, from both workers, in the one log
    first = queries[:CLIENTS]
    assert all(e["request"] == "A pbx.t.example" and e["answer"] == "NOERROR 1 A" for e in first)
    assert all(e["phone"] == MAC and e["client"].startswith(f"{HOST}:") for e in first)
    assert len({e["client"] for e in first}) == CLIENTS


def _start_up(tmp_path: Path, offset: int) -> subprocess.Popen[str]:
    inventory = write_lab(tmp_path / "lab", LAB)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    argv = [sys.executable, "-m", "labkit", "up", str(inventory), "--port-offset", str(offset),
            "--state", str(tmp_path / "state"), "--quiet", "--admin", "off", "--workers", "2"]
    lab = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert lab.stdout is not None
    for line in lab.stdout:
        if "Ctrl-C stops the lab." in line:
            return lab
    lab.kill()
    raise AssertionError(f"labkit up did not start: {lab.communicate(timeout=WAIT)[0]}")


def _wait_gone(pids: list[int]) -> bool:
    for _ in range(int(WAIT / 0.05)):
        if all(gone(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


def test_sigterm_leaves_no_worker(tmp_path: Path) -> None:
    lab = _start_up(tmp_path, free_port_offset())
    try:
        pids = children(lab.pid)
        assert len(pids) == 2
        lab.send_signal(signal.SIGTERM)
        lab.communicate(timeout=60)
        assert lab.returncode == 0
        assert _wait_gone(pids)
    finally:
        if lab.poll() is None:
            lab.kill()  # only the process this test started
            lab.wait(timeout=WAIT)


def test_workers_die_with_a_killed_parent(tmp_path: Path) -> None:
    lab = _start_up(tmp_path, free_port_offset())
    pids = children(lab.pid)
    assert len(pids) == 2
    lab.kill()  # SIGKILL: the main process cannot stop its workers; the kernel tells them
    lab.communicate(timeout=WAIT)
    assert _wait_gone(pids)
