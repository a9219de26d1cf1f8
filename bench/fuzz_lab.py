"""The lab the fuzz runs against (`labkit up --port-offset N` on the embedded default lab, in
its own process) and one correctness check per protocol, each bounded in time."""

from __future__ import annotations

import http.client
import os
import random
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dnslib import QTYPE, DNSRecord

from labkit.inventory.load import load
from labkit.plan.build import build_plan
from labkit.services.supervisor import STANDARD_PORTS, free_port_offset

CHECK_PROFILE = "8851-3PCC.xml"
CHECK_SRV = "_ciscoprov-https._tls.lab.example"
CHECK_TIMEOUT = 5.0  # seconds for one answer; a hang is a check that never gets one
CHECK_RELAY = "127.0.0.2"
SERVICE_OF = {"dhcp": "dhcp", "dns-udp": "dns", "dns-tcp": "dns", "tftp": "tftp", "syslog": "syslog",
              "http": "http", "https": "https"}


@dataclass
class Target:
    protocol: str
    port: int
    check: Callable[[], str | None]  # None: answered correctly; else what went wrong


class FuzzLab:
    def __init__(self, workdir: Path, process: subprocess.Popen[bytes], offset: int) -> None:
        self.workdir, self.process, self.offset = workdir, process, offset
        self.log = workdir / "events.jsonl"
        plan = build_plan(load(None))
        self.profile = plan.files[CHECK_PROFILE].data or b""
        phone = plan.inventory.phones[0]
        self.phone_mac, self.phone_ip = bytes.fromhex(phone.mac.replace(":", "")), phone.ip
        self.vendor_class = plan.phones[phone.mac].vendor_class.encode()
        self.log_offset = 0
        self.died: int | None = None

    def port(self, protocol: str) -> int:
        return STANDARD_PORTS[SERVICE_OF[protocol]] + self.offset

    def alive(self) -> bool:
        code = self.process.poll()
        if code is not None and self.died is None:
            self.died = code
        return code is None

    def rss_kib(self) -> int | None:
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    def kernel_drops(self, protocol: str) -> int | None:
        """Datagrams the kernel dropped on the kit's socket for this protocol (/proc/net/udp)."""
        if protocol in ("dns-tcp", "http", "https"):
            return None
        local = f"0100007F:{self.port(protocol):04X}"
        try:
            for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
                fields = line.split()
                if fields[1] == local:
                    return int(fields[-1])
        except OSError:
            return None
        return None

    def rx_queue(self, protocol: str) -> int:
        """Bytes waiting in the kit's receive buffer for this protocol (0 when unknown)."""
        local = f"0100007F:{self.port(protocol):04X}"
        try:
            for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
                fields = line.split()
                if fields[1] == local:
                    return int(fields[4].split(":")[1], 16)
        except (OSError, ValueError, IndexError):
            return 0
        return 0

    def event_log_size(self) -> tuple[int, int]:
        if not self.log.exists():
            return 0, 0
        with self.log.open("rb") as f:
            return self.log.stat().st_size, sum(1 for _ in f)

    def stop(self) -> tuple[int | None, str]:
        """SIGTERM, wait; (exit code if it had died before, else None; its stderr)."""
        self.alive()
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        stderr = (self.workdir / "stderr.txt").read_text(errors="replace")
        return self.died, stderr

    def target(self, protocol: str) -> Target:
        checks: dict[str, Callable[[], str | None]] = {
            "dhcp": self.check_dhcp, "dns-udp": self.check_dns_udp, "dns-tcp": self.check_dns_tcp,
            "tftp": self.check_tftp, "syslog": self.check_syslog, "http": lambda: self.check_http(False),
            "https": lambda: self.check_http(True)}
        return Target(protocol, self.port(protocol), checks[protocol])

    # -- checks ------------------------------------------------------------------------------------

    def _srv_answer(self, wire: bytes, query: DNSRecord) -> str | None:
        reply = DNSRecord.parse(wire)
        if reply.header.id != query.header.id or reply.header.rcode != 0:
            return f"wrong answer: DNS id {reply.header.id} rcode {reply.header.rcode}"
        if not any(rr.rtype == QTYPE.SRV and str(rr.rdata.target) == "prov.lab.example." for rr in reply.rr):
            return f"wrong answer: no SRV for prov.lab.example in {reply.rr}"
        return None

    def check_dns_udp(self) -> str | None:
        query = DNSRecord.question(CHECK_SRV, "SRV")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(CHECK_TIMEOUT)
            sock.bind(("127.0.0.1", 0))
            sock.sendto(query.pack(), ("127.0.0.1", self.port("dns-udp")))
            try:
                return self._srv_answer(sock.recv(65536), query)
            except TimeoutError:
                return "hang: no DNS answer over UDP"

    def check_dns_tcp(self) -> str | None:
        query = DNSRecord.question(CHECK_SRV, "SRV")
        wire = query.pack()
        try:
            with socket.create_connection(("127.0.0.1", self.port("dns-tcp")), timeout=CHECK_TIMEOUT) as sock:
                sock.sendall(struct.pack("!H", len(wire)) + wire)
                data = b""
                while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return "wrong answer: connection closed before a full DNS answer"
                    data += chunk
        except TimeoutError:
            return "hang: no DNS answer over TCP"
        except OSError as exc:
            return f"no answer: {exc}"
        return self._srv_answer(data[2:], query)

    def check_tftp(self) -> str | None:
        request = b"\x00\x01" + CHECK_PROFILE.encode() + b"\x00octet\x00"
        received, expected = b"", 1
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(CHECK_TIMEOUT)
            sock.bind(("127.0.0.1", 0))
            sock.sendto(request, ("127.0.0.1", self.port("tftp")))
            for _ in range(100_000):
                try:
                    data, peer = sock.recvfrom(65536)
                except TimeoutError:
                    return f"hang: no TFTP block {expected}"
                opcode, block = struct.unpack("!HH", data[:4]) if len(data) >= 4 else (0, 0)
                if opcode != 3:
                    return f"wrong answer: TFTP {data[:60]!r} instead of block {expected}"
                if block != expected & 0xFFFF:
                    continue  # a retransmission
                received += data[4:]
                sock.sendto(struct.pack("!HH", 4, block), peer)
                if len(data) - 4 < 512:
                    break
                expected += 1
        if received != self.profile:
            return f"wrong answer: TFTP {len(received)} bytes, not the profile's {len(self.profile)}"
        return None

    def check_http(self, secure: bool) -> str | None:
        port = self.port("https" if secure else "http")
        connection: http.client.HTTPConnection
        if secure:
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=CHECK_TIMEOUT,
                                                     context=context)
        else:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=CHECK_TIMEOUT)
        try:
            connection.request("GET", "/" + CHECK_PROFILE)
            response = connection.getresponse()
            body = response.read()
        except TimeoutError:
            return "hang: no HTTP answer"
        except (OSError, http.client.HTTPException) as exc:
            return f"no answer: {exc!r}"
        finally:
            connection.close()
        if response.status != 200 or body != self.profile:
            return f"wrong answer: HTTP {response.status}, {len(body)} bytes"
        return None

    def check_syslog(self) -> str | None:
        marker = f"fuzz-check-{random.randrange(10**12)}"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            line = f"<134>Nov 21 10:00:01 bench fuzz: {marker}".encode()
            sock.sendto(line, ("127.0.0.1", self.port("syslog")))
        deadline = time.monotonic() + 3 * CHECK_TIMEOUT  # the log is flushed every half second
        while time.monotonic() < deadline:
            if self._log_has(marker.encode()):
                return None
            time.sleep(0.2)
        return "hang: the syslog line never reached the event log"

    def _log_has(self, needle: bytes) -> bool:
        if not self.log.exists():
            return False
        with self.log.open("rb") as f:
            f.seek(max(0, self.log_offset - len(needle)))
            data = f.read()
        found = needle in data
        if found:
            self.log_offset += len(data)
        return found

    def check_dhcp(self) -> str | None:
        xid = random.randrange(1 << 32)
        header = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 1, xid, 0, 0, bytes(4), bytes(4),
                             bytes(4), socket.inet_aton(CHECK_RELAY), self.phone_mac + bytes(10), b"", b"")
        options = (b"\x35\x01\x01" + bytes([60, len(self.vendor_class)]) + self.vendor_class
                   + b"\x37\x04\x01\x03\x06\x96\xff")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((CHECK_RELAY, self.port("dhcp")))  # the kit answers a relay on the server port
            sock.settimeout(CHECK_TIMEOUT)
            sock.sendto(header + b"\x63\x82\x53\x63" + options, ("127.0.0.1", self.port("dhcp")))
            deadline = time.monotonic() + CHECK_TIMEOUT
            while time.monotonic() < deadline:
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    break
                if len(data) >= 240 and struct.unpack("!I", data[4:8])[0] == xid:
                    offered = socket.inet_ntoa(data[16:20])
                    if b"\x35\x01\x02" not in data[240:]:
                        return f"wrong answer: DHCP reply without OFFER for {offered}"
                    if self.phone_ip is not None and offered != str(self.phone_ip):
                        return f"wrong answer: offered {offered}, not the phone's {self.phone_ip}"
                    return None
        return "hang: no DHCP OFFER to the relayed DISCOVER"


def start_fuzz_lab(workdir: Path) -> FuzzLab:
    """`labkit up` on the default lab at a free port offset; waits for its banner (bounded)."""
    offset = free_port_offset()
    out, err = (workdir / "stdout.txt").open("wb"), (workdir / "stderr.txt").open("wb")
    args = [sys.executable, "-m", "labkit", "up", "--port-offset", str(offset),
            "--state", str(workdir / "state"), "--log", str(workdir / "events.jsonl"), "--quiet"]
    process = subprocess.Popen(args, stdout=out, stderr=err, cwd=workdir)
    out.close()
    err.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if b"Ctrl-C stops the lab." in (workdir / "stdout.txt").read_bytes():
            return FuzzLab(workdir, process, offset)
        if process.poll() is not None:
            break
        time.sleep(0.1)
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)
    raise RuntimeError("labkit up did not start:\n" + (workdir / "stdout.txt").read_text(errors="replace")
                       + (workdir / "stderr.txt").read_text(errors="replace"))
