"""The storm's C load generator (bench/storm_phones.c) holds to the virtual phone.

bench/storm_cores.py measures one core against two with the C generator as the phones; the figure
means something only if the kit does the same work for it as for labkit's virtual phones. Both
run here as bench/storm.py runs them, against `labkit up` on loopback, and the kit's journal must
say the same per phone: services, actions, requests (paths, names, syslog lines), answers (leased
addresses, sizes), results and details, in the same order; times, client ports, xids, DNS ids
and lease expiry times aside. Needs gcc (the bench compiles the generator on demand).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
STORM = ROOT / "bench" / "storm.py"

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="the C generator needs gcc")


def storm(tmp_path: Path, engine: str, phones: int, concurrency: int) -> tuple[dict[str, Any], Path]:
    journal = tmp_path / f"{engine}-{concurrency}.jsonl"
    command = [sys.executable, str(STORM), "--phones", str(phones), "--concurrency", str(concurrency),
               "--phones-engine", engine, "--keep-events", str(journal), "--timeout", "120"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout[done.stdout.index("{"):]), journal


def per_phone(journal: Path, addresses: bool) -> dict[str | None, list[tuple[str, ...]]]:
    """Each phone's events in order (DNS queries carry no phone: under None), less what varies."""
    out: dict[str | None, list[tuple[str, ...]]] = {}
    for line in journal.read_text().splitlines():
        event = json.loads(line)
        answer = re.sub(r"until \d+", "until T", re.sub(r":\d+\b", ":PORT", event["answer"]))
        request, detail = event["request"], json.dumps(event.get("detail"), sort_keys=True)
        if not addresses:  # concurrent phones lease in the order they ask
            ip = re.compile(r"10\.42\.\d+\.\d+")
            answer, request, detail = (ip.sub("IP", text) for text in (answer, request, detail))
        out.setdefault(event["phone"], []).append(
            (event["service"], event["action"], request, answer, event["result"], detail))
    return out


def test_one_at_a_time_the_kit_journals_the_same_for_each_phone(tmp_path: Path) -> None:
    python, python_journal = storm(tmp_path, "python", 6, 1)
    c, c_journal = storm(tmp_path, "c", 6, 1)
    expected = per_phone(python_journal, addresses=True)
    assert per_phone(c_journal, addresses=True) == expected
    assert len(expected) == 7 and all(len(events) == 11 for mac, events in expected.items() if mac)
    for report in (python, c):
        assert report["provisioned"] == 6
        assert report["phone_requests"] == {"dhcp": 12, "dns": 18, "http": 18}
        assert report["lease_check"] == {"bound": 6, "macs_with_two_leases": 0, "addresses_held_twice": 0,
                                         "phones_whose_lease_differs": 0}
        assert report["time_to_provisioned_s"]["max"] is not None


def test_many_at_once_the_same_work_and_one_lease_each(tmp_path: Path) -> None:
    python, python_journal = storm(tmp_path, "python", 30, 16)
    c, c_journal = storm(tmp_path, "c", 30, 16)
    assert per_phone(c_journal, addresses=False) == per_phone(python_journal, addresses=False)
    assert c["provisioned"] == python["provisioned"] == 30
    assert c["kit_events_by_service"] == python["kit_events_by_service"]
    assert c["lease_check"]["phones_whose_lease_differs"] == 0
    assert c["lease_check"]["bound"] == 30 and c["lease_check"]["macs_with_two_leases"] == 0


def test_the_dhcp_messages_are_the_virtual_phones_bytes(tmp_path: Path) -> None:
    """DISCOVER and REQUEST from the generator, byte for byte what labkit.phone.network builds for
    the same phone and xid; then silence: the generator gives up at its run timeout, bounded."""
    sys.path.insert(0, str(ROOT / "bench"))
    from storm_c import build, phone_lines

    from labkit.phone.core import PhoneConfig
    from labkit.phone.effects import DhcpOffer, DhcpTransmit
    from labkit.phone.network import DhcpClient, DhcpSettings, Identity
    from labkit.protocols.dhcp.message import build as build_message
    from labkit.services.supervisor import free_port_offset

    config = PhoneConfig("02:4c:4b:00:07:2a", "CP-7841-3PCC", "SIM0001")
    offset = free_port_offset()
    (tmp_path / "phones.txt").write_text(phone_lines([config]))
    client = DhcpClient(DhcpSettings(("127.0.0.1", 67 + offset), relay_ip="127.0.0.2"))
    who = Identity(bytes.fromhex("024c4b00072a"), "SEP024C4B00072A", "CP-7841-3PCC")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 67 + offset))
        server.settimeout(30)
        generator = subprocess.Popen([str(build()), "--phones", str(tmp_path / "phones.txt"), "--offset",
                                      str(offset), "--lab", "10.42.0.1", "--timeout", "3"],
                                     stdout=subprocess.PIPE, text=True)
        try:
            discover, relay = server.recvfrom(2048)
            xid = int.from_bytes(discover[4:8], "big")
            expected, _ = client.message(DhcpTransmit("DISCOVER", xid, 4.0), who)
            assert discover == build_message(expected)
            assert relay[0] == "127.0.0.2"
            offer = bytearray(discover[:240])
            offer[0] = 2
            offer[16:20] = bytes([10, 42, 1, 7])
            offer += bytes([53, 1, 2, 54, 4, 10, 42, 0, 1, 255])
            server.sendto(bytes(offer), relay)
            request, _ = server.recvfrom(2048)
            offered = DhcpOffer("10.42.1.7", "10.42.0.1")
            expected, _ = client.message(DhcpTransmit("REQUEST", xid, 4.0, offer=offered), who)
            assert request == build_message(expected)
            out, _ = generator.communicate(timeout=60)
        finally:
            if generator.poll() is None:
                generator.kill()
                generator.wait()
    assert out.splitlines() == [f"024c4b00072a fail - 0.000000 {out.split()[4]} run timeout",
                                "requests dhcp 2 dns 0 http 0"]
