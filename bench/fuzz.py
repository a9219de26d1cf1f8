"""Fuzz: mutated and random input against a running `labkit up` on loopback (run on demand).

    .venv/bin/python bench/fuzz.py [--count 100000] [--tcp-count 10000] [--seed 1]
                                   [--protocols dhcp,dns-udp,dns-tcp,tftp,syslog,http,https]
                                   [--batch 2000] [--time-limit 600] [--json FILE]

For each protocol, a seeded campaign: valid requests mutated (bit flips, interesting bytes,
inserted, deleted, duplicated and spliced runs, truncation) and plain random bytes, sent in
batches from 127.0.0.3. After each batch the service must still answer a valid request
correctly, from another address: a DNS SRV query (dnslib, over UDP or TCP), a TFTP RRQ of a
known profile, an HTTP(S) GET of it, a DHCP DISCOVER relayed from 127.0.0.2 for an inventory
phone, a syslog line that must reach the event log. Reports crashes (the process died), hangs
(no correct answer within the bound), tracebacks on stderr, RSS, kernel drops per UDP socket
(/proc/net/udp) and the event log's size. Bounded in count per protocol and in time.

Safety: everything stays on loopback. DHCP replies go to the relay (giaddr), so every fuzzed
DHCP datagram has its giaddr forced to 127.0.0.3 before it is sent: the kit never answers an
address outside 127/8. TFTP sessions the fuzz opens are ended at once with an ERROR (slot
exhaustion is its own test, not this one's).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import socket
import ssl
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.fuzz_inputs import SEEDS, Mutator, force_giaddr  # noqa: E402
from bench.fuzz_lab import CHECK_PROFILE, FuzzLab, Target, start_fuzz_lab  # noqa: E402

UDP = ("dhcp", "dns-udp", "tftp", "syslog")
TCP = ("dns-tcp", "http", "https")
PROTOCOLS = UDP + TCP
FUZZ_SOURCE = "127.0.0.3"  # the fuzz's address: any per-client limit it trips is its own
CHECK_TRIES = 3
PACE_BYTES = 64 * 1024  # the kit's receive queue we let build up before waiting
PACE_WAITS = 2000  # at most ~2 s of waiting per 32 datagrams


@dataclass
class ProtocolReport:
    protocol: str
    sent: int = 0
    batches: int = 0
    checks_ok: int = 0
    failure: str | None = None  # the first failed check: "hang: ..." or "wrong answer: ..."
    seconds: float = 0.0
    kernel_drops: int | None = None  # the kit's socket for this protocol (UDP only)
    stopped_by_time: bool = False

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


@dataclass
class Report:
    seed: int
    protocols: list[ProtocolReport] = field(default_factory=list)
    crashed: str | None = None  # the kit's exit code and last stderr lines, if it died
    tracebacks: list[str] = field(default_factory=list)  # first line after each "Traceback"
    rss_start_kib: int | None = None
    rss_end_kib: int | None = None
    event_log_bytes: int = 0
    events: int = 0

    @property
    def ok(self) -> bool:
        return self.crashed is None and not self.tracebacks and all(p.failure is None for p in self.protocols)

    def summary(self) -> str:
        lines = [f"fuzz seed {self.seed}: {'OK' if self.ok else 'FAILED'}"]
        for p in self.protocols:
            drops = "" if p.kernel_drops is None else f", kernel drops {p.kernel_drops}"
            timed = " (stopped by the time limit)" if p.stopped_by_time else ""
            lines.append(f"  {p.protocol:<8} {p.sent:>9} inputs in {p.seconds:7.1f} s ({p.rate:8.0f}/s), "
                         f"{p.batches} batches, {p.checks_ok} checks ok{drops}{timed}"
                         + (f"\n           FAILED: {p.failure}" if p.failure else ""))
        if self.crashed:
            lines.append(f"  CRASH: {self.crashed}")
        for first in self.tracebacks:
            lines.append(f"  TRACEBACK: {first}")
        lines.append(f"  kit RSS {self.rss_start_kib} -> {self.rss_end_kib} KiB; event log "
                     f"{self.event_log_bytes / 1e6:.1f} MB, {self.events} events")
        return "\n".join(lines)


# -- senders: one batch of inputs each, from the fuzz address ------------------------------------


def _udp_socket(timeout: float = 0.0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((FUZZ_SOURCE, 0))
    sock.setblocking(timeout > 0)
    if timeout:
        sock.settimeout(timeout)
    return sock


class UdpSender:
    """Fire datagrams at one port; drain (and, for TFTP, end every session opened) as it goes.

    Paced by default: every 32 datagrams, it waits (bounded) while the kit's receive queue holds
    more than PACE_BYTES, so inputs are processed, not dropped by the kernel. Unpaced, it floods.
    """

    def __init__(self, protocol: str, port: int, queued: Callable[[], int] | None) -> None:
        self.protocol, self.port, self.queued = protocol, port, queued
        self.sockets = [_udp_socket() for _ in range(8)]

    def send(self, inputs: list[bytes]) -> None:
        for index, data in enumerate(inputs):
            if self.protocol == "dhcp":
                data = force_giaddr(data)
            sock = self.sockets[index % len(self.sockets)]
            with contextlib.suppress(OSError):  # ECONNREFUSED from an earlier ICMP, ENOBUFS
                sock.sendto(data, ("127.0.0.1", self.port))
            if index % 32 == 31:
                self.drain()
                self._pace()
        self.drain()

    def _pace(self) -> None:
        if self.queued is None:
            return
        for _ in range(PACE_WAITS):
            if self.queued() <= PACE_BYTES:
                return
            time.sleep(0.001)
            self.drain()

    def drain(self) -> None:
        for sock in self.sockets:
            for _ in range(256):
                try:
                    data, peer = sock.recvfrom(65536)
                except (BlockingIOError, OSError):
                    break
                if self.protocol == "tftp" and data[:2] in (b"\x00\x03", b"\x00\x06"):
                    sock.sendto(b"\x00\x05\x00\x00fuzz ends this session\x00", peer)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


class TcpSender:
    """One connection per input: the bytes, sometimes a short wait for the answer, then a reset."""

    def __init__(self, protocol: str, port: int, rng: random.Random) -> None:
        self.protocol, self.port, self.rng = protocol, port, rng
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE

    def send(self, inputs: list[bytes]) -> None:
        for data in inputs:
            self._one(data)

    def _one(self, data: bytes) -> None:
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, no TIME_WAIT
        raw.settimeout(5.0)
        sock: socket.socket = raw
        try:
            raw.bind((FUZZ_SOURCE, 0))
            raw.connect(("127.0.0.1", self.port))
            if self.protocol == "https" and self.rng.random() < 0.5:
                sock = self.context.wrap_socket(raw, server_hostname="prov.lab.example")
            if self.protocol == "dns-tcp" and self.rng.random() < 0.7:
                data = struct.pack("!H", len(data) & 0xFFFF) + data  # mostly well framed
            sock.sendall(data)
            if self.rng.random() < 0.1:  # now and then, read what the kit says
                sock.settimeout(0.05)
                with contextlib.suppress(TimeoutError, OSError):
                    sock.recv(65536)
        except (OSError, ssl.SSLError):
            pass  # refused, reset, handshake failures: the kit's side is what we test
        finally:
            sock.close()

    def close(self) -> None:
        pass


# -- the campaign ---------------------------------------------------------------------------------


def _batches(total: int, batch: int) -> Iterator[int]:
    while total > 0:
        yield min(batch, total)
        total -= batch


def run_protocol(lab: FuzzLab, protocol: str, count: int, batch: int, seed: int,
                 deadline: float, *, pace: bool = True) -> ProtocolReport:
    report = ProtocolReport(protocol)
    rng = random.Random(f"{seed}:{protocol}")
    mutator = Mutator(rng, SEEDS[protocol]())
    target: Target = lab.target(protocol)
    queued = (lambda: lab.rx_queue(protocol)) if pace else None
    sender: UdpSender | TcpSender = (UdpSender(protocol, target.port, queued) if protocol in UDP
                                     else TcpSender(protocol, target.port, rng))
    drops_before = lab.kernel_drops(protocol)
    started = time.monotonic()
    try:
        for size in _batches(count, batch):
            if time.monotonic() > deadline:
                report.stopped_by_time = True
                break
            sender.send([mutator.one() for _ in range(size)])
            report.sent += size
            report.batches += 1
            failure = _check(lab, target)
            if failure is not None:
                report.failure = f"after {report.sent} inputs: {failure}"
                break
            report.checks_ok += 1
    finally:
        sender.close()
        report.seconds = time.monotonic() - started
    drops_after = lab.kernel_drops(protocol)
    if drops_before is not None and drops_after is not None:
        report.kernel_drops = drops_after - drops_before
    return report


def _check(lab: FuzzLab, target: Target) -> str | None:
    """None when the service answers a valid request correctly (a few tries), else why not."""
    if not lab.alive():
        return "the kit is not running"
    why: str | None = "no check ran"
    for _ in range(CHECK_TRIES):
        why = target.check()
        if why is None:
            return None
        if not lab.alive():
            return f"the kit died ({why})"
    return why


def run_campaign(workdir: Path, *, count: int, tcp_count: int, seed: int = 1,
                 protocols: tuple[str, ...] = PROTOCOLS, batch: int = 2000, time_limit: float = 600.0,
                 pace: bool = True, progress: Callable[[str], None] | None = None) -> Report:
    report = Report(seed)
    lab = start_fuzz_lab(workdir)
    deadline = time.monotonic() + time_limit
    try:
        report.rss_start_kib = lab.rss_kib()
        for protocol in protocols:
            n = count if protocol in UDP else tcp_count
            left = len(protocols) - protocols.index(protocol)
            share = max(1.0, (deadline - time.monotonic()) / left)  # the time left, shared fairly
            result = run_protocol(lab, protocol, n, batch if protocol in UDP else max(1, batch // 10), seed,
                                  min(deadline, time.monotonic() + share), pace=pace)
            report.protocols.append(result)
            if progress is not None:
                progress(f"{protocol}: {result.sent} inputs, {result.checks_ok} checks ok"
                         + (f", FAILED {result.failure}" if result.failure else ""))
            if not lab.alive():
                break
        report.rss_end_kib = lab.rss_kib()
    finally:
        died, stderr = lab.stop()
        if died is not None:  # it exited before we stopped it
            report.crashed = f"exit code {died}: {stderr.strip().splitlines()[-3:]}"
        report.tracebacks = _tracebacks(stderr)
        report.event_log_bytes, report.events = lab.event_log_size()
    return report


def _tracebacks(stderr: str) -> list[str]:
    lines = stderr.splitlines()
    out = []
    for index, line in enumerate(lines):
        if line.startswith("Traceback"):
            tail = next((later for later in lines[index + 1:] if later and not later.startswith(" ")), "?")
            out.append(tail)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10_000, help="inputs per UDP protocol")
    parser.add_argument("--tcp-count", type=int, default=None, help="connections per TCP protocol "
                        "(default: --count / 10)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--protocols", default=",".join(PROTOCOLS))
    parser.add_argument("--batch", type=int, default=2000, help="UDP inputs between checks (TCP: a tenth)")
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds for the whole campaign")
    parser.add_argument("--flood", action="store_true", help="UDP unpaced: as fast as the fuzz can send "
                        "(most inputs are then dropped by the kernel, not read by the kit)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the lab's state and log here")
    parser.add_argument("--json", type=Path, default=None, help="write the report as JSON")
    args = parser.parse_args()
    protocols = tuple(p.strip() for p in args.protocols.split(",") if p.strip())
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown:
        parser.error(f"unknown protocols {unknown}; choose among {', '.join(PROTOCOLS)}")
    import tempfile

    with tempfile.TemporaryDirectory(prefix="labkit-fuzz-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        report = run_campaign(workdir, count=args.count, tcp_count=args.tcp_count or max(1, args.count // 10),
                              seed=args.seed, protocols=protocols, batch=args.batch,
                              time_limit=args.time_limit, pace=not args.flood,
                              progress=lambda line: print(line, flush=True))
    print(report.summary())
    if args.json:
        from dataclasses import asdict

        args.json.write_text(json.dumps(asdict(report), indent=2))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["CHECK_PROFILE", "PROTOCOLS", "Report", "run_campaign"]
