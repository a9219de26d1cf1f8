"""HTTP(S) with curl and syslog with logger, against a real `labkit up` process on loopback."""

from __future__ import annotations

import hashlib
import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.interop.lab_process import LabProcess, start_lab_process, wait_for_event

FIRMWARE_SIZE = 3 * 1024 * 1024 + 17

LAB = """\
lab: {domain: lab.example, address: 10.42.0.1/24}
services:
  dns: {enabled: false}
  tftp: {enabled: false}
  https:
    auth: {user: phone, password: "s3cret", scheme: AUTH}
models: {CP-8851-3PCC: {firmware: sip88xx.12-0-1MPP-0001.loads}}
phones:
  - {mac: "00:56:2b:00:00:01", model: CP-8851-3PCC, ip: 10.42.0.9}
"""


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([require_tool("curl"), "-s", "-S", *args], capture_output=True, timeout=60)


@pytest.fixture(scope="module", params=["digest", "basic"])
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("httplab")
    (tmp / "firmware").mkdir()
    firmware = bytes(range(256)) * (FIRMWARE_SIZE // 256) + b"x" * (FIRMWARE_SIZE % 256)
    (tmp / "firmware" / "sip88xx.12-0-1MPP-0001.loads").write_bytes(firmware)
    inventory = tmp / "lab.yaml"
    inventory.write_text(LAB.replace("AUTH", request.param))
    process = start_lab_process(tmp, inventory)
    process.auth = request.param  # type: ignore[attr-defined]
    process.firmware = firmware  # type: ignore[attr-defined]
    yield process
    code, output = process.stop()
    assert code == 0, output
    assert "Traceback" not in output
    assert "labkit: stopped" in output


def test_get_identifies_the_phone_from_its_user_agent(lab: LabProcess) -> None:
    url = f"http://127.0.0.1:{lab.port('http')}/Cisco/CP-8851-3PCC/00562b000001.cfg"
    result = curl("-A", "Cisco-CP-8851-3PCC/12.0.1 (00562b000001)", url)
    assert result.returncode == 0 and result.stdout.startswith(b"<?xml"), result.stderr
    event = wait_for_event(lab, lambda e: e["service"] == "http" and str(e["request"]).endswith(".cfg"))
    assert event["phone"] == "00:56:2b:00:00:01"
    assert event["detail"]["identified_by"] == "user-agent"  # type: ignore[index]
    assert event["result"] == "ok"
    curl("-A", "Cisco-CP-8851-3PCC/12.0.1 (00562b0000ff)", url.replace(".cfg", ".xml"))
    unknown = wait_for_event(lab, lambda e: e["detail"].get("ua_mac") == "00:56:2b:00:00:ff")  # type: ignore[union-attr]
    assert unknown["phone"] is None
    assert unknown["detail"]["identified_by"] == "user-agent (not in the inventory)"  # type: ignore[index]


def test_firmware_whole_and_by_ranges(lab: LabProcess, tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{lab.port('http')}/sip88xx.12-0-1MPP-0001.loads"
    out = tmp_path / "fw"
    assert curl("-o", str(out), base).returncode == 0
    expected = lab.firmware  # type: ignore[attr-defined]
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(expected).digest()
    part = curl("-r", "1000-1999", "-w", "%{http_code}", base)
    assert part.stdout[-3:] == b"206" and part.stdout[:-3] == expected[1000:2000]
    tail = curl("-r", "-10", base)
    assert tail.stdout == expected[-10:]
    head = curl("-I", base)
    assert b"200" in head.stdout.split(b"\r\n")[0]
    assert f"Content-Length: {FIRMWARE_SIZE}".encode() in head.stdout


def test_profile_ranges_head_post_and_errors(lab: LabProcess) -> None:
    base = f"http://127.0.0.1:{lab.port('http')}"
    whole = curl(f"{base}/8851-3PCC.xml").stdout
    assert curl("-r", "5-9", f"{base}/8851-3PCC.xml").stdout == whole[5:10]
    beyond = curl("-r", "999999-", "-o", "/dev/null", "-w", "%{http_code}", f"{base}/8851-3PCC.xml")
    assert beyond.stdout == b"416"
    posted = curl("-X", "POST", "--data", "resync=1", f"{base}/8851-3PCC.xml")
    assert posted.stdout == whole
    for path, code in (("/nope.xml", b"404"), ("/../etc/passwd", b"403"), ("/Cisco//x.cfg", b"403"),
                       ("/a%5Cb", b"403")):
        got = curl("--path-as-is", "-o", "/dev/null", "-w", "%{http_code}", f"{base}{path}")
        assert got.stdout == code, path
    put = curl("-X", "PUT", "-o", "/dev/null", "-w", "%{http_code}", f"{base}/8851-3PCC.xml")
    assert put.stdout == b"405"


def test_https_verifies_against_the_lab_ca_with_auth(lab: LabProcess, tmp_path: Path) -> None:
    ca = lab.state / "ca" / "ca.pem"
    port = lab.port("https")
    url = f"https://prov.lab.example:{port}/8851-3PCC.xml"
    resolve = f"prov.lab.example:{port}:127.0.0.1"
    auth_flag = f"--{lab.auth}"  # type: ignore[attr-defined]
    denied = curl("--cacert", str(ca), "--resolve", resolve, "-o", "/dev/null", "-w", "%{http_code}", url)
    assert denied.returncode == 0, denied.stderr  # the TLS handshake verified
    assert denied.stdout == b"401"
    ok = curl("--cacert", str(ca), "--resolve", resolve, auth_flag, "-u", "phone:s3cret", url)
    assert ok.returncode == 0 and ok.stdout.startswith(b"<?xml"), ok.stderr
    wrong = curl("--cacert", str(ca), "--resolve", resolve, auth_flag, "-u", "phone:nope", "-o", "/dev/null",
                 "-w", "%{http_code}", url)
    assert wrong.stdout == b"401"
    # the certificate carries the lab domain too, and a name it lacks fails verification
    other = curl("--cacert", str(ca), "--resolve", f"elsewhere.example:{port}:127.0.0.1",
                 f"https://elsewhere.example:{port}/8851-3PCC.xml")
    assert other.returncode == 60  # curl: peer certificate cannot be authenticated
    openssl = require_tool("openssl")
    text = subprocess.run([openssl, "x509", "-in", str(ca.parent / "server.pem"), "-noout", "-ext",
                           "subjectAltName"], capture_output=True, text=True, timeout=30).stdout
    assert "DNS:prov.lab.example" in text and "DNS:lab.example" in text


@pytest.mark.parametrize("credentials", ["phöne:s3cret", "phone:sécret", "phone:パスワード"])
def test_non_ascii_credentials_get_401_not_500(lab: LabProcess, credentials: str) -> None:
    ca = lab.state / "ca" / "ca.pem"
    port = lab.port("https")
    got = curl("--cacert", str(ca), "--resolve", f"prov.lab.example:{port}:127.0.0.1",
               f"--{lab.auth}", "-u", credentials, "-o", "/dev/null", "-w", "%{http_code}",  # type: ignore[attr-defined]
               f"https://prov.lab.example:{port}/8851-3PCC.xml")
    assert got.returncode == 0, got.stderr
    assert got.stdout == b"401"


def test_syslog_from_logger_becomes_an_event(lab: LabProcess) -> None:
    logger = require_tool("logger")
    message = "CP-8851-3PCC 00:56:2b:00:00:01 -- Requesting resync tftp://10.42.0.1:69/8851-3PCC.xml"
    subprocess.run([logger, "--udp", "--server", "127.0.0.1", "--port", str(lab.port("syslog")),
                    "--rfc3164", message], check=True, timeout=30)
    event = wait_for_event(lab, lambda e: e["service"] == "syslog" and e["request"] == message)
    assert event["detail"]["format"] == "rfc3164"  # type: ignore[index]
    subprocess.run([logger, "--udp", "--server", "127.0.0.1", "--port", str(lab.port("syslog")),
                    "--rfc5424", "five four two four"], check=True, timeout=30)
    event = wait_for_event(lab, lambda e: e["request"] == "five four two four")
    assert event["detail"]["format"] == "rfc5424"  # type: ignore[index]


def test_syslog_socket_has_a_large_buffer_and_counts_kernel_drops(tmp_path: Path) -> None:
    """Issue 10 item 8: a fuzz run lost 80,658 syslog datagrams in the default buffer, unseen."""
    import asyncio
    import socket

    from labkit.events import EventRecorder, StaticDirectory
    from labkit.services.context import Endpoint, StartContext
    from labkit.services.filetree import FileTree
    from labkit.services.sockets import SO_RXQ_OVFL
    from labkit.services.syslog import start_syslog

    async def scenario() -> None:
        recorder = EventRecorder()
        ctx = StartContext(FileTree({}), recorder, StaticDirectory(), frozenset(), tmp_path)
        service = await start_syslog(None, Endpoint("syslog", "127.0.0.1", 0, "udp"), ctx)
        sock = service.transport.get_extra_info("socket")
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            assert sock.getsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL) == 1
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) > 208 * 1024 * 2 or \
                int(Path("/proc/sys/net/core/rmem_max").read_text()) <= 208 * 1024
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            service.drops.every = 0.0
            for _ in range(2000):  # the loop is not reading: most of these are dropped
                sender.sendto(b"<13>burst " + b"x" * 200, ("127.0.0.1", service.port))
            for _ in range(500):
                await asyncio.sleep(0.01)
                sender.sendto(b"<13>after the burst", ("127.0.0.1", service.port))
                if service.drops.count and any(e.action == "kernel-drops" for e in recorder.events):
                    break
            assert 0 < service.drops.count < 2000
            assert service.counters.received + service.drops.count >= 2000
            (event,) = [e for e in recorder.events if e.action == "kernel-drops"]
            assert event.service == "syslog" and event.detail["total"] > 0
        finally:
            sender.close()
            await service.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))


MALFORMED = [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)) + b"\r\n\r\n",  # TLS to HTTP
    b"\x00\xff\xfe garbage \x01\x02\r\n\r\n",
    b"GET /8851-3PCC.xml HTTP/1.1\r\nHost: lab\r\nBad Header Line\r\n\r\n",
    b"GET /8851-3PCC.xml HTTP/1.1\r\nHost: lab\r\nContent-Length: abc\r\n\r\n",
    b"GET /" + b"A" * 20000 + b" HTTP/1.1\r\nHost: lab\r\n\r\n",
    b"GET /8851-3PCC.xml HTTP/9.9\r\nHost: lab\r\n\r\n",
    b"POST /8851-3PCC.xml HTTP/1.1\r\nHost: lab\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    # a good request, then garbage on the same connection
    b"GET /8851-3PCC.xml HTTP/1.1\r\nHost: lab\r\n\r\n\x00\x01\x02 not http\r\n\r\n",
]


def _send_raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)  # no half-close: aiohttp drops a connection at EOF, answer unsent
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_malformed_requests_are_counted_events_not_tracebacks(tmp_path: Path) -> None:
    lab = start_lab_process(tmp_path)
    try:
        for data in MALFORMED:
            answer = _send_raw(lab.port("http"), data)
            assert b" 400 Bad Request\r\n" in answer, (data[:40], answer[:200])
        good = curl("-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{lab.port('http')}/8851-3PCC.xml")
        assert good.stdout == b"200"  # still serving
    finally:
        code, output = lab.stop()
    assert code == 0, output
    assert "Traceback" not in output, output
    malformed = [e for e in lab.events() if e["action"] == "malformed"]
    assert len(malformed) == len(MALFORMED), malformed
    assert {e["service"] for e in malformed} == {"http"}
    assert all(e["result"] == "malformed" and e["answer"] == "400" for e in malformed)
