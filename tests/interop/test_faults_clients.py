"""Fault rules seen by real clients (dig, curl, tftp), capture read back by tshark, timeline told."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import require_root, require_tool
from tests.interop.lab_process import start_lab_process, wait_for_event

RULES = [
    '{name: srv down, match: {name: "_ciscoprov-https._tls.*"}, dns: {rcode: SERVFAIL}}',
    '{name: moved srv, match: {name: "_ciscoprov-http._tcp.*"}, dns: {srv_port: 8080, ttl0: true}}',
    '{name: cut short, match: {path: "/8851-3PCC.xml"}, http: {truncate: 100}}',
    '{name: server error, match: {path: "/6841-3PCC.xml"}, http: {status: 500}, when: {first: 1}}',
    '{name: tftp stall, match: {path: "/7841-3PCC.xml"}, tftp: {stall_after: 0}}',
    '{name: no such file, match: {path: "/6841-3PCC.xml"}, tftp: {error: 1}}',
]


def test_faults_reach_real_clients_and_the_capture(tmp_path: Path) -> None:
    dig, curl, tshark = (require_tool(t) for t in ("dig", "curl", "tshark"))
    require_root("packet capture")
    args = [a for rule in RULES for a in ("--fault", rule)]
    pcap = tmp_path / "lab.pcap"
    lab = start_lab_process(tmp_path, None, *args, "--pcap", str(pcap))
    try:
        assert "fault: srv down: dns" in "\n".join(lab.banner)
        dns = ["@127.0.0.1", "-p", str(lab.port("dns")), "+norec"]
        https = subprocess.run([dig, *dns, "_ciscoprov-https._tls.lab.example", "SRV"], capture_output=True,
                               text=True, timeout=30).stdout
        assert "status: SERVFAIL" in https
        http = subprocess.run([dig, *dns, "_ciscoprov-http._tcp.lab.example", "SRV"], capture_output=True,
                              text=True, timeout=30).stdout
        moved = r"_ciscoprov-http\._tcp\.lab\.example\.\s+0\s+IN\s+SRV\s+20 10 8080 prov\.lab\.example\."
        assert re.search(moved, http), http  # TTL 0, another port
        base = f"http://127.0.0.1:{lab.port('http')}"
        cut = subprocess.run([curl, "-s", "-o", "/dev/null", f"{base}/8851-3PCC.xml"], timeout=30)
        assert cut.returncode == 18  # curl: transfer closed with outstanding read data remaining
        status = [curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", f"{base}/6841-3PCC.xml"]
        first = subprocess.run(status, capture_output=True, text=True, timeout=30).stdout
        again = subprocess.run(status, capture_output=True, text=True, timeout=30).stdout
        assert (first, again) == ("500", "200")  # `first: 1`
        tftp = f"tftp://127.0.0.1:{lab.port('tftp')}"
        missing = subprocess.run([curl, "-s", "-o", "/dev/null", f"{tftp}/6841-3PCC.xml"], timeout=60)
        assert missing.returncode == 68  # TFTP file not found, by the fault's error 1
        stalled = subprocess.run([curl, "-s", "-o", "/dev/null", "--max-time", "8",
                                  f"{tftp}/7841-3PCC.xml"], timeout=60)
        assert stalled.returncode != 0
        event = wait_for_event(lab, lambda e: e["detail"].get("rule") == "tftp stall")
        assert event["service"] == "tftp"
    finally:
        code, output = lab.stop()
    assert code == 0, output
    assert "captured" in output
    listing = subprocess.run([tshark, "-r", str(pcap), "-d", f"udp.port=={lab.port('tftp')},tftp"],
                             capture_output=True, text=True, timeout=60).stdout
    assert "SRV" in listing and "Read Request" in listing and "HTTP" in listing
    rules = {e["detail"].get("rule") for e in lab.events() if e["action"] == "fault"}
    assert {"srv down", "moved srv", "cut short", "server error", "tftp stall", "no such file"} <= rules


def test_timeline_command_on_a_log(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_text(
        '{"time":1,"service":"dhcp","client":"10.42.0.60:68","phone":"00:56:2b:00:00:01","action":"request",'
        '"request":"REQUEST","answer":"ACK 10.42.0.60 until 9","result":"ok","detail":{"ip":"10.42.0.60"}}\n'
        '{"time":2,"service":"http","client":"10.42.0.60:5000","phone":null,"action":"fault",'
        '"request":"GET /8851-3PCC.xml","answer":"status=500","result":"fault","detail":{"rule":"boom"}}\n')
    command = [sys.executable, "-m", "labkit", "timeline", "00-56-2B-00-00-01", "--log", str(log)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "fault rule 'boom' fired on GET /8851-3PCC.xml: status=500" in result.stdout
    assert "stalled after a DHCP lease (ACK)" in result.stdout


def _rrq(port: int, name: str, options: dict[str, str]) -> bytes:
    import socket

    request = b"\x00\x01" + name.encode() + b"\x00octet\x00" + b"".join(
        k.encode() + b"\x00" + v.encode() + b"\x00" for k, v in options.items())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(10)
        sock.sendto(request, ("127.0.0.1", port))
        first, _ = sock.recvfrom(70000)
    return first


def test_tftp_option_faults_and_http_shaping(tmp_path: Path) -> None:
    curl = require_tool("curl")
    rules = [
        '{match: {path: "/8851-3PCC.xml"}, tftp: {wrong_tsize: 7}}',
        '{match: {path: "/7841-3PCC.xml"}, tftp: {refuse_options: true}}',
        '{match: {path: "/6841-3PCC.xml"}, tftp: {duplicate_block: 1, drop_oack: true}}',
        '{match: {path: "/8851-3PCC.xml"}, http: {wrong_length: 100000}}',
        '{match: {path: "/7841-3PCC.xml"}, http: {slow: 4000, delay: 0.2}}',
        '{match: {path: "/6841-3PCC.xml"}, http: {corrupt: true}}',
    ]
    lab = start_lab_process(tmp_path, None, *[a for r in rules for a in ("--fault", r)])
    try:
        from labkit.inventory.load import load
        from labkit.plan.build import build_plan

        files = build_plan(load(None)).files
        oack = _rrq(lab.port("tftp"), "/8851-3PCC.xml", {"tsize": "0", "blksize": "1468"})
        assert oack[:2] == b"\x00\x06" and b"tsize\x007\x00" in oack  # a lie about the size
        plain = _rrq(lab.port("tftp"), "/7841-3PCC.xml", {"tsize": "0", "blksize": "1468"})
        assert plain[:4] == b"\x00\x03\x00\x01"  # no OACK: straight to DATA block 1, 512 bytes max
        tftp = f"tftp://127.0.0.1:{lab.port('tftp')}"
        out = tmp_path / "got.xml"
        # the OACK is lost once and block 1 comes twice: curl still gets the right file
        done = subprocess.run([curl, "-s", "--tftp-blksize", "512", "-o", str(out), f"{tftp}/6841-3PCC.xml"],
                              timeout=60)
        assert done.returncode == 0 and out.read_bytes() == files["6841-3PCC.xml"].data
        base = f"http://127.0.0.1:{lab.port('http')}"
        short = subprocess.run([curl, "-s", "-o", "/dev/null", f"{base}/8851-3PCC.xml"], timeout=60)
        assert short.returncode == 18  # the announced length never arrives
        slow = subprocess.run([curl, "-s", f"{base}/7841-3PCC.xml"], capture_output=True, timeout=60)
        assert slow.returncode == 0 and slow.stdout == files["7841-3PCC.xml"].data
        corrupt = subprocess.run([curl, "-s", f"{base}/6841-3PCC.xml"], capture_output=True, timeout=60)
        original = files["6841-3PCC.xml"].data or b""
        assert len(corrupt.stdout) == len(original) and corrupt.stdout != original
    finally:
        code, output = lab.stop()
    assert code == 0, output


def test_per_phone_capture_holds_that_phone_s_dhcp(tmp_path: Path) -> None:
    tshark = require_tool("tshark")
    require_root("packet capture")
    per_phone = tmp_path / "phones"
    lab = start_lab_process(tmp_path, None, "--pcap-per-phone", str(per_phone))
    try:
        phone = subprocess.run([sys.executable, "-m", "labkit", "simulate", "--against", "127.0.0.1",
                                "--port-offset", str(lab.offset), "--state", str(lab.state), "--phone",
                                "00:56:2b:00:03:3c", "--json"], capture_output=True, text=True, timeout=120)
        assert phone.returncode == 0, phone.stderr
    finally:
        code, output = lab.stop()
    assert code == 0, output
    assert [p.name for p in per_phone.glob("*.pcap")] == ["00562b00033c.pcap"]  # beside decode-as notes
    dhcp_port = lab.port("dhcp")
    command = [tshark, "-r", str(per_phone / "00562b00033c.pcap"), "-d", f"udp.port=={dhcp_port},dhcp"]
    listing = subprocess.run(command, capture_output=True, text=True, timeout=60).stdout
    for kind in ("Discover", "Offer", "Request", "ACK"):
        assert f"DHCP {kind}" in listing, listing
