"""DNS benchmark (on demand, not a test): labkit's DNS service, a naive dnslib server, dnsmasq.

    .venv/bin/python bench/dns_bench.py [--duration 10] [--runs 3] [--latency] [--no-dnsmasq] [--only labkit]
        [--before DIR] [--workers 2 --clients 8 --server-cpus 0,1] [--only pure] [--load c|dnsperf]

Each server runs in its own process on 127.0.0.1, pinned to one CPU with taskset when there
is one (the load generator on another), and is restarted for every run; the order rotates.
Every server of a run is driven by the same generator (--load):
- c (the default): bench/dns_load.c, compiled on demand (bench/cbuild.py). It sends dnsperf's
  queries (the same mix, the same wire bytes) from --clients sockets with 100 in flight
  (--inflight) and a 2 s timeout, as dnsperf does here, at about two thirds of dnsperf's CPU
  per query; and it
  checks every answer against the answer its server gave that query just before the run (asked
  once per distinct query over a plain socket): the column "answers not as expected" counts
  answers whose bytes after the ID differ and answers to IDs not outstanding.
- dnsperf: as rounds 1-6 measured. --latency always uses dnsperf (-Q 2000 -v).
On 2 vCPUs the generator's CPU per query is part of the bound whenever it shares a CPU with a
server (--server-cpus 0,1), so the table gives it too.

The query mix is peer-benchmarks.md's: 60% SRV (both provisioning services), 20% A, 5% NODATA,
15% NXDOMAIN, without EDNS (dnsperf's default). Printed per server: queries/s (median and
range), the server process's CPU time (user + system, from /proc) per answered query, the
generator's CPU per answered query, lost queries, and with --latency p50/p99 latency at a fixed
2,000 q/s. Loopback softirq work is charged to the CPU, not the process, so CPU/query slightly
understates every server (and the generator).

The naive baseline is what peer-benchmarks.md calls "a naive asyncio server on dnslib": an
asyncio DatagramProtocol that parses each query with dnslib, builds the reply object and packs
it, with correct answers (SRV + additional A, NODATA/NXDOMAIN with SOA) from dict look-ups.
dnsmasq (Debian package dnsmasq-base), when installed, serves the same names as a reference in
the same run, since figures from different days on a shared machine do not compare. "echo" is
the floor for any Python server here: the same add_reader loop, recvfrom and sendto of the query
bytes unchanged, with no DNS work and no events.

"workers" (--workers N) is labkit's DNS in N worker processes as `labkit up --workers N` runs
it (SO_REUSEPORT; events sent back in batches to the parent, whose sink counts them); its CPU is
the parent's and the workers'. SO_REUSEPORT spreads clients by source address and port, so give
the generator several sockets (--clients) and the servers more than one CPU (--server-cpus).
"labkit" uses the compiled UDP drain (labkit.native._udp) where it is built; "pure" is the same
service with LABKIT_NATIVE=0 (the pure-Python drain it falls back to), for a same-run ratio.
"before" (--before DIR) serves labkit's DNS from another labkit package (e.g. `git archive` of
an older commit) in the same run, for a before/after ratio on a shared machine.

Needs gcc (--load c) or dnsperf (Debian package dnsperf; --load dnsperf, --latency). Traffic
stays on loopback; every run is bounded by --duration, and the processes started here are
stopped by their own PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cbuild import build as build_c

HOST = "127.0.0.1"
GENERATOR_CPU = "0"
SERVER_CPU = "1"  # --server-cpus changes it (e.g. 0,1 to let the workers use both)
BEFORE = ""  # --before DIR: a folder holding another labkit package, served as the row "before"
CLIENTS = 1  # the generator's sockets (SO_REUSEPORT spreads by source port: workers need several)
LOAD = "c"  # --load: bench/dns_load.c or dnsperf
INFLIGHT = 100  # --inflight: queries outstanding in all (dnsperf -q, whose default is 100)
LOAD_SOURCE = Path(__file__).resolve().parent / "dns_load.c"
ANSWERS: dict[str, dict[str, bytes]] = {}  # per server, the answers --load c held every run to


# ---------------------------------------------------------------------------------------------
# the servers (run in a child process: `dns_bench.py --serve labkit|naive`)


class CountingSink:
    """Stands in for the supervisor's sink: takes every event, keeps only a count."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, event: object) -> None:
        self.count += 1


def _zones() -> dict:
    from labkit.inventory.load import load
    from labkit.plan.build import build_plan

    return build_plan(load(None)).zones


async def _serve_workers(ready: asyncio.Future[int]) -> object:
    """labkit's DNS in WORKERS processes (`labkit up --workers N`): SO_REUSEPORT, each worker's
    events sent back in batches to this process, whose sink counts them."""
    from labkit.events import StaticDirectory
    from labkit.inventory.load import load
    from labkit.plan.build import build_plan
    from labkit.services.context import Endpoint, StartContext
    from labkit.services.filetree import FileTree
    from labkit.services.workers import WorkerPool

    state = Path(tempfile.gettempdir())
    ctx = StartContext(FileTree({}), CountingSink(), StaticDirectory(), frozenset(), state)
    pool = WorkerPool(int(os.environ.get("DNS_BENCH_WORKERS", "2")), ctx, started=time.time())
    service = await pool.start("dns", build_plan(load(None)).dns, Endpoint("dns", HOST, 0, "udp+tcp"))
    ready.set_result(service.port)
    return service


async def _serve_labkit(ready: asyncio.Future[int]) -> object:
    from labkit.events import StaticDirectory
    from labkit.inventory.load import load
    from labkit.plan.build import build_plan
    from labkit.services.context import Endpoint, StartContext
    from labkit.services.dns import start_dns
    from labkit.services.filetree import FileTree

    state = Path(tempfile.gettempdir())
    ctx = StartContext(FileTree({}), CountingSink(), StaticDirectory(), frozenset(), state)
    service = await start_dns(build_plan(load(None)).dns, Endpoint("dns", HOST, 0, "udp+tcp"), ctx)
    ready.set_result(service.port)
    return service


class NaiveProtocol(asyncio.DatagramProtocol):
    """Parse, build, pack per query with dnslib: the baseline peer-benchmarks.md measured."""

    def __init__(self, zones: dict) -> None:
        from dnslib import QTYPE

        self.qtype = QTYPE
        self.records: dict[tuple[str, int], list] = {}
        self.names: set[str] = set()
        self.soa: dict[str, object] = {}
        for zone in zones.values():
            self.soa[zone.name] = zone.records[0]
            for rr in zone.records:
                name = str(rr.rname).lower().rstrip(".")
                self.records.setdefault((name, rr.rtype), []).append(rr)
                while name != zone.name and "." in name:  # empty non-terminals exist too
                    self.names.add(name)
                    name = name.split(".", 1)[1]
                self.names.add(name)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        from dnslib import DNSRecord

        try:
            request = DNSRecord.parse(data)
        except Exception:
            return
        reply = request.reply(ra=0, aa=1)
        name = str(request.q.qname).lower().rstrip(".")
        zone = next((z for z in self.soa if name == z or name.endswith("." + z)), None)
        if zone is None:
            reply.header.rcode = 5
            reply.header.aa = 0
        else:
            answers = self.records.get((name, request.q.qtype), [])
            for rr in answers:
                reply.add_answer(rr)
                if rr.rtype == 33:
                    for extra in self.records.get((str(rr.rdata.target).lower().rstrip("."), 1), []):
                        reply.add_ar(extra)
            if not answers:
                if name not in self.names:
                    reply.header.rcode = 3
                reply.add_auth(self.soa[zone])
        self.transport.sendto(reply.pack(), addr)  # type: ignore[attr-defined]


async def _serve_naive(ready: asyncio.Future[int]) -> object:
    loop = asyncio.get_running_loop()
    zones = _zones()
    transport, _ = await loop.create_datagram_endpoint(lambda: NaiveProtocol(zones), local_addr=(HOST, 0))
    ready.set_result(transport.get_extra_info("sockname")[1])
    return transport


async def _serve_echo(ready: asyncio.Future[int]) -> object:
    """The floor for any Python server: labkit's UDP loop minus the DNS work and the events."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind((HOST, 0))

    def echo() -> None:
        for _ in range(128):
            try:
                data, address = sock.recvfrom(65535)
            except BlockingIOError:
                return
            sock.sendto(data, address)  # dnsperf matches replies by ID only

    loop.add_reader(sock.fileno(), echo)
    ready.set_result(sock.getsockname()[1])
    return sock


async def serve(kind: str) -> None:
    """Serve until stdin closes."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[int] = loop.create_future()
    starter = {"labkit": _serve_labkit, "naive": _serve_naive, "echo": _serve_echo,
               "workers": _serve_workers}[kind]
    handle = await starter(ready)
    print(f"READY {ready.result()}", flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.readline():
        continue  # runs until the bench closes our stdin
    counters = getattr(handle, "counters", None)
    if isinstance(counters, dict):  # why a run lost queries, if it did (the service counts its failures)
        said = {key: counters[key] for key in ("udp_send_errors", "udp_receive_errors", "sink_errors")}
        said["native"] = getattr(handle, "native_udp", None)
        drops = getattr(getattr(handle, "drops", None), "count", None)
        print(f"{kind} counters: {said}" + (f", kernel drops {drops}" if drops is not None else ""),
              file=sys.stderr)
    close = handle.close()  # type: ignore[attr-defined]
    if asyncio.iscoroutine(close):
        await close


# ---------------------------------------------------------------------------------------------
# the harness


def query_lines() -> list[str]:
    lines = (["_ciscoprov-https._tls.lab.example SRV"] * 30 + ["_ciscoprov-http._tcp.lab.example SRV"] * 30
             + [f"{h}.lab.example A" for h in ("prov", "ns", "pbx", "acs")] * 5
             + ["prov.lab.example AAAA"] * 5
             + [f"missing{i}.lab.example A" for i in range(15)])
    random.Random(1).shuffle(lines)  # the same interleaving every time
    return lines


def query_file(path: Path) -> None:
    """dnsperf's input: one `name TYPE` a line."""
    path.write_text("\n".join(query_lines()) + "\n")


def wire_query(line: str, ident: int = 0) -> bytes:
    """The query dnsperf sends for `name TYPE`: RD set, one question, class IN, no EDNS (dnslib's
    question() packs exactly that)."""
    from dnslib import DNSRecord

    name, qtype = line.split()
    query = DNSRecord.question(name, qtype)
    query.header.id = ident
    return bytes(query.pack())


def expected_answers(port: int, lines: list[str]) -> dict[str, bytes]:
    """Each distinct query's answer as the server gives it now (one plain socket, before the run):
    bench/dns_load.c then requires every answer of the run to be these bytes after the ID."""
    answers: dict[str, bytes] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        for ident, line in enumerate(sorted(set(lines)), start=1):
            for _ in range(10):  # a loaded machine may be slow to answer the first ones
                sock.sendto(wire_query(line, ident), (HOST, port))
                try:
                    while (answer := sock.recv(4096))[:2] != ident.to_bytes(2, "big"):
                        continue  # a late answer to an earlier try
                except TimeoutError:
                    continue
                answers[line] = answer
                break
            else:
                raise SystemExit(f"no answer to {line!r} from port {port}")
    return answers


def load_file(path: Path, lines: list[str], answers: dict[str, bytes]) -> None:
    """bench/dns_load.c's input: one `<query hex> <expected answer hex>` a line, in the mix's order."""
    path.write_text("".join(f"{wire_query(line).hex()} {answers[line].hex()}\n" for line in lines))


def pinned(cpu: str, argv: list[str]) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", cpu, *argv]
    return argv


def _free_port() -> int:
    # a port free for both UDP and TCP right now (dnsmasq needs one given; tiny race, fine here)
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((HOST, 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((HOST, port))
                except OSError:
                    continue
                return port
    raise SystemExit("no free port on loopback")


def _dnsmasq_argv(port: int) -> list[str]:
    # the same data as the default lab zone; dnsmasq is authoritative for it with --auth-zone
    hosts = [f"--host-record={h}.lab.example,10.42.0.1" for h in ("prov", "ns", "pbx", "acs")]
    return ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", f"--port={port}", f"--listen-address={HOST}",
            "--bind-interfaces", "--no-resolv", "--no-hosts", "--cache-size=0", "--log-facility=/dev/null",
            "--local=/lab.example/", "--auth-server=ns.lab.example", "--auth-zone=lab.example", *hosts,
            "--srv-host=_ciscoprov-https._tls.lab.example,prov.lab.example,443,10,10",
            "--srv-host=_ciscoprov-http._tcp.lab.example,prov.lab.example,80,20,10"]


def _answers(port: int) -> bool:
    query = bytes.fromhex("abcd01000001000000000000") + b"\x04prov\x03lab\x07example\x00\x00\x01\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        try:
            sock.sendto(query, (HOST, port))
            return sock.recv(512)[:2] == b"\xab\xcd"
        except OSError:
            return False


class Server:
    """One server process pinned to SERVER_CPU; its CPU time is read from /proc."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        if kind == "dnsmasq":
            self.port = _free_port()
            with tempfile.TemporaryFile("w+") as log:
                self.process = subprocess.Popen(pinned(SERVER_CPU, _dnsmasq_argv(self.port)),
                                                stdout=subprocess.DEVNULL, stderr=log)
                deadline = time.monotonic() + 60
                while not _answers(self.port):
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        self.stop()
                        log.seek(0)
                        raise SystemExit(f"dnsmasq did not start on port {self.port}: {log.read()[-2000:]}")
            return
        # our servers: `--serve` prints READY <port> and runs until its stdin closes
        env = dict(os.environ)
        if kind == "before":  # labkit's DNS as another checkout has it (--before DIR)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (BEFORE, env.get("PYTHONPATH")) if p)
        if kind == "pure":  # labkit's DNS without its compiled fast path
            env["LABKIT_NATIVE"] = "0"
        serve = "labkit" if kind in ("before", "pure") else kind
        self.process = subprocess.Popen(
            pinned(SERVER_CPU, [sys.executable, __file__, "--serve", serve]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.startswith("READY "):
            self.stop()
            raise SystemExit(f"{kind} server did not start: {line!r}")
        self.port = int(line.split()[1])

    def cpu(self) -> float:
        """User + system CPU seconds so far of the server and its live children (the workers;
        taskset execs the server, so the PID is the server's)."""
        return sum(self.cpu_split())

    def cpu_split(self) -> tuple[float, float]:
        """User + system CPU seconds so far of the server's own process, and of its children."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        ticks = [0, 0]
        for each in (pid, *map(int, children)):
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            ticks[each != pid] += int(fields[11]) + int(fields[12])
        return ticks[0] / os.sysconf("SC_CLK_TCK"), ticks[1] / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        else:
            self.process.terminate()  # dnsmasq: SIGTERM to the process we started
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()  # only the process this harness started
            self.process.wait(timeout=10)


def _generator(argv: list[str], timeout: int) -> tuple[str, float]:
    """Run the load generator pinned to GENERATOR_CPU: its output and its CPU seconds (user +
    system; taskset execs it, so it is our child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(pinned(GENERATOR_CPU, argv), capture_output=True, text=True, timeout=timeout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return result.stdout + result.stderr, cpu


def dnsperf(port: int, data: Path, duration: int, extra: list[str]) -> tuple[str, float]:
    argv = ["dnsperf", "-s", HOST, "-p", str(port), "-d", str(data), "-l", str(duration), "-t", "2",
            "-c", str(CLIENTS), "-q", str(INFLIGHT), *extra]
    return _generator(argv, duration + 60)


def c_load(port: int, data: Path, duration: int) -> tuple[dict[str, float], float]:
    """bench/dns_load.c with dnsperf's settings: CLIENTS sockets, INFLIGHT queries in flight, 2 s timeout."""
    argv = [str(build_c(LOAD_SOURCE)), "--server", HOST, "--port", str(port), "--queries", str(data),
            "--sockets", str(CLIENTS), "--inflight", str(INFLIGHT), "--duration", str(duration),
            "--timeout", "2"]
    out, cpu = _generator(argv, duration + 60)
    try:
        return json.loads(out), cpu
    except ValueError:
        raise SystemExit(f"dns_load output not understood:\n{out}") from None


def _number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    if match is None:
        raise SystemExit(f"dnsperf output not understood ({pattern}):\n{text}")
    return float(match.group(1))


def _machine_ticks() -> tuple[int, int]:
    """All CPUs' busy and idle ticks so far (/proc/stat: busy includes softirq, which no process
    is charged with, and whatever else the machine runs)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, idle


def throughput_run(kind: str, data: Path, duration: int) -> dict[str, float]:
    server = Server(kind)
    try:
        if LOAD == "c":  # the answers the run must repeat byte for byte, asked before the clock starts
            lines = query_lines()
            ANSWERS[kind] = expected_answers(server.port, lines)
            load_file(data.with_suffix(".wire"), lines, ANSWERS[kind])
        before, machine_before = server.cpu_split(), _machine_ticks()
        if LOAD == "c":
            report, generator_cpu = c_load(server.port, data.with_suffix(".wire"), duration)
        else:
            out, generator_cpu = dnsperf(server.port, data, duration, [])
        after, machine_after = server.cpu_split(), _machine_ticks()
    finally:
        server.stop()
    busy, idle = (a - b for a, b in zip(machine_after, machine_before, strict=True))
    if LOAD == "c":
        completed = max(report["answered"], 1)
        qps, lost = report["qps"], report["lost"]
        checked = {"mismatched": report["mismatched"], "unmatched": report["unmatched"],  # and, for the log,
                   # the generator's answers per epoll wake-up and per recvmmsg (its batches)
                   "per_wakeup": round(report["answered"] / max(report["wakeups"], 1), 1),
                   "per_receive": round(report["answered"] / max(report["receive_calls"], 1), 1)}
    else:
        completed = max(_number(r"Queries completed:\s+(\d+)", out), 1)
        qps, lost = _number(r"Queries per second:\s+([\d.]+)", out), _number(r"Queries lost:\s+(\d+)", out)
        checked = {}
    main_us, children_us = ((a - b) / completed * 1e6 for a, b in zip(after, before, strict=True))
    return {"qps": qps, "lost": lost, "cpu_us": main_us + children_us, "main_us": main_us,
            "children_us": children_us, "generator_us": generator_cpu / completed * 1e6,
            # for the log: were the CPUs the bound? (the machine's busy CPU per query, its idle share)
            "machine_us": round(busy / os.sysconf("SC_CLK_TCK") / completed * 1e6, 2),
            "idle": round(idle / max(busy + idle, 1), 3), **checked}


def latency_run(kind: str, data: Path) -> dict[str, float]:
    server = Server(kind)
    try:
        out, _ = dnsperf(server.port, data, 5, ["-Q", "2000", "-v"])
    finally:
        server.stop()
    # -v prints one line per answered query; the last field is its latency in seconds
    latencies = sorted(float(line.split()[-1]) for line in out.splitlines()
                       if line.startswith("> ") and re.match(r"[\d.]+$", line.split()[-1]))
    if not latencies:
        raise SystemExit(f"dnsperf -v printed no latencies:\n{out[:2000]}")
    return {"p50_ms": latencies[len(latencies) // 2] * 1e3,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3}


def main() -> None:
    global SERVER_CPU, CLIENTS, BEFORE, LOAD, INFLIGHT
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", choices=("labkit", "naive", "echo", "workers"), help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=int, default=10, help="seconds per run (max 60)")
    parser.add_argument("--load", choices=("c", "dnsperf"), default=LOAD,
                        help="the load generator: bench/dns_load.c (default: checks every answer, and "
                        "costs less CPU per query than dnsperf) or dnsperf (as rounds 1-6)")
    parser.add_argument("--runs", type=int, default=3, help="runs per server (max 9)")
    parser.add_argument("--latency", action="store_true", help="also measure p50/p99 at 2,000 q/s")
    parser.add_argument("--workers", type=int, default=0,
                        help="also run labkit's DNS in this many worker processes (row 'workers')")
    parser.add_argument("--server-cpus", default=SERVER_CPU,
                        help="CPUs the servers are pinned to (taskset list; default 1, the generator on 0)")
    parser.add_argument("--clients", type=int, default=CLIENTS,
                        help="the generator's client sockets (dnsperf -c)")
    parser.add_argument("--inflight", type=int, default=INFLIGHT,
                        help="queries outstanding at most, over all sockets (dnsperf -q; default 100)")
    parser.add_argument("--before", metavar="DIR", default="",
                        help="also serve labkit's DNS from the labkit package in DIR (e.g. `git archive` "
                        "of an older commit), as the row 'before', for a same-run comparison")
    parser.add_argument("--only", choices=("labkit", "pure", "naive", "echo", "dnsmasq", "workers", "before"),
                        action="append",
                        help="run only these servers (repeatable; e.g. --only labkit for a before/after)")
    parser.add_argument("--no-dnsmasq", action="store_true",
                        help="leave out dnsmasq (run as a reference when it is installed)")
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
        return
    LOAD, INFLIGHT = args.load, min(max(args.inflight, 1), 10000)
    if shutil.which("dnsperf") is None and (LOAD == "dnsperf" or args.latency):
        raise SystemExit("dnsperf is not installed (Debian package dnsperf)")
    if LOAD == "c":
        build_c(LOAD_SOURCE)  # compiled before any clock starts (cached)
    duration, runs = min(max(args.duration, 1), 60), min(max(args.runs, 1), 9)
    SERVER_CPU, CLIENTS = args.server_cpus, min(max(args.clients, 1), 256)
    kinds = ["labkit", "pure", "naive", "echo"]
    if args.before:
        BEFORE = str(Path(args.before).resolve())
        kinds.insert(1, "before")
    if args.workers > 1:
        os.environ["DNS_BENCH_WORKERS"] = str(min(args.workers, 16))  # the --serve child reads it
        kinds.insert(1, "workers")
    if shutil.which("dnsmasq") and not args.no_dnsmasq:
        kinds.append("dnsmasq")
    if args.only:
        kinds = [kind for kind in kinds if kind in args.only]
    results: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    answers: dict[str, list[dict[str, bytes]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "queries.txt"
        query_file(data)
        for run in range(runs):
            for kind in kinds[run % len(kinds):] + kinds[:run % len(kinds)]:  # rotate the order
                results[kind].append(throughput_run(kind, data, duration))
                if LOAD == "c":
                    answers.setdefault(kind, []).append(ANSWERS[kind])
                print(f"run {run + 1} {kind}: {results[kind][-1]}", file=sys.stderr)
        measured = [kind for kind in kinds if kind != "echo"] if args.latency else []
        latency = {kind: latency_run(kind, data) for kind in measured}
    print(f"# {time.strftime('%Y-%m-%d')} · {platform.node()} · {os.cpu_count()} CPUs · "
          f"{platform.processor() or platform.machine()} · Python {platform.python_version()} · "
          + (f"dnsperf -l {duration} -c {CLIENTS} -q {INFLIGHT}" if LOAD == "dnsperf" else
             f"dns_load.c {duration} s, {CLIENTS} sockets, {INFLIGHT} in flight")
          + f", {runs} runs, servers on CPU {SERVER_CPU}, generator on CPU {GENERATOR_CPU}"
          + (f", workers: {args.workers}" if args.workers > 1 else ""))
    checked = LOAD == "c"
    print("| server | queries/s median [min–max] | server CPU µs/query | generator CPU µs/query | lost | "
          + ("answers not as expected | " if checked else "") + "p50 / p99 at 2k q/s |")
    print("|---|---|---|---|---|" + ("---|" if checked else "") + "---|")
    for kind in kinds:
        rows = results[kind]
        qps = [r["qps"] for r in rows]
        lat = latency.get(kind)
        lat_text = f"{lat['p50_ms']:.3f} / {lat['p99_ms']:.3f} ms" if lat else "—"
        print(f"| {kind} | {statistics.median(qps):,.0f} [{min(qps):,.0f}–{max(qps):,.0f}] | "
              f"{statistics.median(r['cpu_us'] for r in rows):.1f} | "
              f"{statistics.median(r['generator_us'] for r in rows):.1f} | "
              f"{int(sum(r['lost'] for r in rows))} | "
              + (f"{int(sum(r['mismatched'] + r['unmatched'] for r in rows))} | " if checked else "")
              + f"{lat_text} |")
    if "workers" in results:  # where the workers' CPU goes: the main process (their events) and the workers
        rows = results["workers"]
        main_us = statistics.median(r["main_us"] for r in rows)
        print(f"workers: CPU µs/query in the main process {main_us:.1f}, "
              f"in the worker processes {statistics.median(r['children_us'] for r in rows):.1f} (medians)")
    if checked:  # every answer of every run was its server's own first answer, byte for byte (the
        # generator counts the others); labkit's forms must also agree with each other on those bytes
        forms = [answers[kind][0] for kind in ("labkit", "pure", "workers", "before") if kind in answers]
        stable = all(each == kept[0] for kept in answers.values() for each in kept)
        same = all(form == forms[0] for form in forms)
        print(f"answers: each server's the same in every run: {'yes' if stable else 'NO'}"
              + (f"; labkit's forms byte-identical to each other: {'yes' if same else 'NO'}"
                 if len(forms) > 1 else ""))
    medians = {kind: statistics.median(r["qps"] for r in results[kind]) for kind in kinds}
    for ours in ("labkit", "workers"):
        for kind in kinds if ours in medians else ():
            if kind not in ("labkit", "workers") or (ours, kind) == ("workers", "labkit"):
                print(f"{ours} / {kind}: {medians[ours] / medians[kind]:.2f}× the queries per second")

if __name__ == "__main__":
    main()
