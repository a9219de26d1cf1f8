"""TFTP throughput on loopback: labkit's service (and tftpd-hpa when installed) against curl/atftp.

Run on demand, not in the test suite:

    .venv/bin/python bench/tftp_bench.py --quick      # a subset, one repetition
    .venv/bin/python bench/tftp_bench.py              # every case of peer-benchmarks.md, 3 reps

The server runs in a separate process (restarted for every repetition) serving generated
random files from a temporary folder; N clients start at once and the aggregate rate is
N x size / wall time from the first start to the last exit, in MB/s (10^6 bytes). With --burst
the clients are spawned first, each held at a gate, and released together, the clock running
from the release. Every file a
client wrote is checked by sha256 after the clock stops. Outputs go to a tmpfs (/dev/shm) when
there is one, so the disk does not bound the figure. Figures: median [min-max].
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import platform
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024
CLIENT_TIMEOUT = 600  # seconds: a bound for one client, never expected


@dataclass(frozen=True)
class Case:
    size_mib: int
    clients: int
    client: str  # "curl", "tftp" (tftp-hpa: RFC 1350 only, always 512-byte blocks) or "atftp"
    blksize: int
    windowsize: int = 1

    @property
    def label(self) -> str:
        window = f" windowsize {self.windowsize}" if self.windowsize > 1 else ""
        return f"{self.size_mib} MiB x {self.clients:>2} {self.client:5} blksize {self.blksize:>4}{window}"


def all_cases(quick: bool) -> list[Case]:
    cases: list[Case] = []
    shapes = [(1, 1), (1, 50), (32, 1)] + ([] if quick else [(32, 50)])
    for size, clients in shapes:
        for blksize in (512, 1468):
            cases.append(Case(size, clients, "curl", blksize))
        cases.append(Case(size, clients, "tftp", 512))  # tftp-hpa's client negotiates no option
    for size, clients in shapes:
        cases.append(Case(size, clients, "atftp", 1468, 8))
        if not quick:
            cases.append(Case(size, clients, "atftp", 1468, 64))
    return cases


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve_labkit(root: Path, port: int, reuse_port: bool = False) -> None:
    """The child process: labkit's asyncio TFTP service until SIGTERM (with reuse_port, one of
    several workers sharing the port, as `labkit up --workers N` runs it)."""
    from labkit.events import StaticDirectory
    from labkit.plan.tftp import TftpPlan
    from labkit.services.context import Endpoint, StartContext
    from labkit.services.filetree import FileTree
    from labkit.services.tftp import start_tftp

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        ctx = StartContext(FileTree({}, root), lambda event: None, StaticDirectory(), frozenset(), root)
        endpoint = Endpoint("tftp", "127.0.0.1", port, "udp", reuse_port=reuse_port)
        service = await start_tftp(TftpPlan(), endpoint, ctx)
        print("ready", flush=True)
        await stop.wait()
        await service.close()

    asyncio.run(main())


class Server:
    def __init__(self, kind: str, root: Path, tftpd: str = "in.tftpd") -> None:
        self.kind = kind
        self.tftpd = tftpd
        self.root = root
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.perf_out: Path | None = None

    def start(self) -> None:
        if self.kind.startswith("labkit"):
            # "labkit": one process; "labkit:N": N processes on one port with SO_REUSEPORT;
            # "labkit-pure[:N]": the same with LABKIT_NATIVE=0 (no compiled fast path).
            # "labkit@DIR[:N]": the same from another checkout (PYTHONPATH=DIR), for A/B runs.
            kind, _, other = self.kind.partition("@")
            other, _, workers = other.partition(":") if other else ("", "", kind.partition(":")[2])
            count = int(workers or 1)
            env = {**os.environ, "LABKIT_NATIVE": "0"} if self.kind.startswith("labkit-pure") else None
            if other:
                env = {**(env or os.environ), "PYTHONPATH": other}
            argv = [sys.executable, __file__, "--serve", str(self.root), "--port", str(self.port)]
            if count > 1:
                argv.append("--reuse-port")
            for _ in range(count):
                worker = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env)
                self.workers.append(worker)
                assert worker.stdout is not None
                if worker.stdout.readline().strip() != b"ready":
                    self.stop()
                    raise RuntimeError("labkit TFTP server did not start")
        else:  # tftpd-hpa in the foreground, confined to root
            argv = [self.tftpd, "--foreground", "--address", f"127.0.0.1:{self.port}", "--secure",
                    "--user", "root", str(self.root)]
            if PERF is not None and USE_PERF:
                # tftpd-hpa's children are reaped with SIGCHLD ignored: their CPU never reaches
                # the parent's cutime. perf stat counts the whole process tree (C: no startup cost).
                self.perf_out = Path(tempfile.mkstemp(prefix="tftpbench-perf-")[1])
                argv = [PERF, "stat", "-x,", "-e", "task-clock", "-o", str(self.perf_out), "--", *argv]
            self.process = subprocess.Popen(argv)
            time.sleep(0.5)
            if self.process.poll() is not None:
                raise RuntimeError("in.tftpd did not start")

    def stop(self) -> None:
        processes = self.workers + ([self.process] if self.process is not None else [])
        if self.perf_out is not None and self.process is not None:
            # Stop in.tftpd under perf (perf then writes its count and exits), not perf itself.
            pid = self.process.pid
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:  # perf already gone
                children = []
            for child in children:
                os.kill(int(child), signal.SIGTERM)
            processes = [] if children else [self.process]
        for process in processes:
            process.terminate()
        for process in self.workers + ([self.process] if self.process is not None else []):
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.process = None
        self.workers = []


    def cpu(self) -> float:
        """CPU seconds used so far by labkit's processes (after start-up: imports excluded)."""
        return sum(process_cpu(p.pid) for p in self.workers)

    def tree_cpu(self) -> float | None:
        """After stop: tftpd-hpa's CPU seconds in all, from perf stat (None without perf)."""
        if self.perf_out is None:
            return None
        try:
            for line in self.perf_out.read_text().splitlines():
                fields = line.split(",")
                if len(fields) > 2 and fields[2].startswith("task-clock"):
                    return float(fields[0]) / 1e3  # msec
            return None
        finally:
            self.perf_out.unlink()
            self.perf_out = None


TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PERF = shutil.which("perf")
USE_PERF = True  # --no-perf: tftpd-hpa runs bare (perf's counting adds a little per context switch)


def process_cpu(pid: int) -> float:
    """user + system time of `pid`, of its waited-for children and of its live children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    own = sum(int(x) for x in fields[11:15]) / TICK  # utime stime cutime cstime
    return own + sum(process_cpu(int(child)) for child in children)


# --------------------------------------------------------------------------- clients


def client_argv(case: Case, port: int, name: str, out: Path) -> list[str]:
    if case.client == "curl":
        return ["curl", "-sS", "--max-time", str(CLIENT_TIMEOUT), "--tftp-blksize", str(case.blksize),
                "-o", str(out), f"tftp://127.0.0.1:{port}/{name}"]
    if case.client == "tftp":  # exits 0 even on a server error: the sha256 check catches it
        return ["tftp", "127.0.0.1", str(port), "-m", "binary", "-c", "get", name, str(out)]
    argv = ["atftp", "--option", f"blksize {case.blksize}"]
    if case.windowsize > 1:
        argv += ["--option", f"windowsize {case.windowsize}"]
    return [*argv, "-g", "-r", name, "-l", str(out), "127.0.0.1", str(port)]


# --burst: each client waits at a gate (a shell blocked reading one byte of a FIFO) and execs
# the client when released. Without it the clients are spawned one after another with the clock
# running (the transfers of the first clients overlapping the later spawns); with it, all 50
# requests arrive within a few ms: a harsher shape, a bench of phones powered on together.
GATE = 'read _ < "$0" && exec "$@"'
GATE_WAIT = 5.0  # seconds: the bound on the clients reaching the gate, never expected


def at_gate(pid: int) -> bool:
    """The gate's shell sleeps in its read of the FIFO (what /proc says it waits in)."""
    try:
        return "pipe" in Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return False


def run_clients(case: Case, port: int, name: str, outdir: Path, burst: bool = False,
                spawn: str = "plain") -> tuple[float, list[Path]]:
    """Run the case's clients; (seconds on the clock, the files they wrote). The clock covers the
    bench's own work while they run, on the same CPUs: it spawns them with subprocess.Popen and
    then sleeps in poll(2) on their pidfds, 12-15 ms of its CPU for 50 atftp on two vCPUs.
    `spawn="asyncio"` is the harness of issue 15's rounds 1-9 (asyncio's subprocesses: pipes,
    transports and a waiting thread per child), 40-50 ms of CPU for the same 50, inside the
    clock for both servers (bench/README.md, tenth round)."""
    if spawn == "asyncio":
        return asyncio.run(run_clients_asyncio(case, port, name, outdir))
    outs = [outdir / f"out{i}.bin" for i in range(case.clients)]
    argvs = [client_argv(case, port, name, out) for out in outs]
    gate = outdir / "gate"
    with contextlib.ExitStack() as stack:
        error_paths = [outdir / f"err{i}.txt" for i in range(case.clients)]
        for path in error_paths:
            stack.callback(path.unlink, missing_ok=True)
        errors = [stack.enter_context(open(path, "w+b")) for path in error_paths]
        if burst:
            os.mkfifo(gate)
            stack.callback(gate.unlink)
            # Read-write, so that neither this open nor the shells' opens wait for the other side.
            writer = os.open(gate, os.O_RDWR | os.O_NONBLOCK)
            stack.callback(os.close, writer)
            argvs = [["sh", "-c", GATE, str(gate), *argv] for argv in argvs]
        started = time.perf_counter()
        processes = [subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
                     for argv, err in zip(argvs, errors, strict=True)]
        for process in processes:
            stack.callback(_reap, process)  # on any failure below: none is left behind
        if burst:
            bound = time.monotonic() + GATE_WAIT
            while not all(at_gate(p.pid) for p in processes) and time.monotonic() < bound:
                time.sleep(0.005)
            started = time.perf_counter()
            os.write(writer, b"\n" * len(processes))  # one line, one byte, for each shell
        wait_all(processes, CLIENT_TIMEOUT + 30)
        elapsed = time.perf_counter() - started
        for process, err in zip(processes, errors, strict=True):
            if process.returncode != 0:
                err.seek(0)
                raise RuntimeError(f"{case.client} exited {process.returncode}: "
                                   f"{err.read().decode(errors='replace')}")
    return elapsed, outs


def wait_all(processes: list[subprocess.Popen[bytes]], timeout: float) -> None:
    """Until every process has exited (TimeoutError after `timeout` s), asleep in poll(2) on
    their pidfds: reaped as they end, no polling interval added to the clock."""
    fds = {os.pidfd_open(p.pid): p for p in processes}
    try:
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + timeout
        while fds:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(fds)} clients still running after {timeout:.0f} s")
            for fd, _ in poller.poll(left * 1000):
                poller.unregister(fd)
                fds.pop(fd).wait()
                os.close(fd)
    finally:
        for fd in fds:
            os.close(fd)


def _reap(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


async def run_clients_asyncio(case: Case, port: int, name: str, outdir: Path) -> tuple[float, list[Path]]:
    outs = [outdir / f"out{i}.bin" for i in range(case.clients)]
    started = time.perf_counter()
    processes = [await asyncio.create_subprocess_exec(*client_argv(case, port, name, out),
                                                      stdout=asyncio.subprocess.DEVNULL,
                                                      stderr=asyncio.subprocess.PIPE)
                 for out in outs]
    results = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in processes)),
                                     CLIENT_TIMEOUT + 30)
    elapsed = time.perf_counter() - started
    for process, (_, err) in zip(processes, results, strict=True):
        if process.returncode != 0:
            raise RuntimeError(f"{case.client} exited {process.returncode}: {err.decode(errors='replace')}")
    return elapsed, outs


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(MIB), b""):
            digest.update(chunk)
    return digest.hexdigest()


def measure(server_kind: str, case: Case, root: Path, outdir: Path, digests: dict[str, str],
            tftpd: str, burst: bool = False, spawn: str = "plain") -> tuple[float, float]:
    """(aggregate MB/s, server CPU µs per DATA block or NaN when not measurable)."""
    name = f"file{case.size_mib}.bin"
    server = Server(server_kind, root, tftpd)
    server.start()
    try:
        before = server.cpu()
        elapsed, outs = run_clients(case, server.port, name, outdir, burst, spawn)
        time.sleep(0.3)  # tftpd-hpa's children exit (and are reaped) after the last ACK
        used: float | None = server.cpu() - before
    finally:
        server.stop()
    if server.kind == "tftpd-hpa":
        used = server.tree_cpu()
    bad = [out.name for out in outs if sha256(out) != digests[name]]
    for out in outs:
        out.unlink()
    if bad:
        raise RuntimeError(f"{len(bad)} corrupted downloads: {bad[:5]}")
    blocks = case.clients * (case.size_mib * MIB // case.blksize + 1)
    cpu = used / blocks * 1e6 if used is not None else float("nan")
    return case.clients * case.size_mib * MIB / elapsed / 1e6, cpu


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="no 32 MiB x 50, one repetition")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per case (default 3; 1 quick)")
    parser.add_argument("--servers", default="labkit,tftpd-hpa",
                        help="comma list among labkit, labkit:N (N worker processes sharing the port "
                             "with SO_REUSEPORT), labkit-pure[:N] (the same with LABKIT_NATIVE=0), "
                             "labkit@DIR[:N] (labkit from the checkout DIR, for A/B runs), "
                             "tftpd-hpa (skipped when in.tftpd is absent)")
    parser.add_argument("--no-perf", action="store_true",
                        help="do not run tftpd-hpa under perf stat (no CPU figure for it)")
    parser.add_argument("--tftpd", default="in.tftpd",
                        help="the in.tftpd to compare with (e.g. one extracted from the .deb)")
    parser.add_argument("--only", default="", help="run only cases whose label matches this regular "
                                                    "expression (e.g. 'curl|tftp ' for the lock-step cases)")
    parser.add_argument("--burst", action="store_true",
                        help="spawn the clients first, held at a gate, and release them together "
                             "(the clock from the release), instead of one after another")
    parser.add_argument("--spawn", choices=("plain", "asyncio"), default="plain",
                        help="how the clients are started: plain (Popen, then asleep on their pidfds) "
                             "or asyncio (rounds 1-9 of issue 15: more of the bench's own CPU on the clock)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global USE_PERF
    USE_PERF = not args.no_perf
    if args.serve:
        serve_labkit(Path(args.serve), args.port, args.reuse_port)
        return 0

    servers = [s for s in args.servers.split(",") if s]
    if "tftpd-hpa" in servers and shutil.which(args.tftpd) is None:
        print(f"{args.tftpd} not found: tftpd-hpa column skipped")
        servers.remove("tftpd-hpa")
    reps = args.reps or (1 if args.quick else 3)
    cases = [c for c in all_cases(args.quick) if re.search(args.only, c.label)]
    for tool in {c.client for c in cases}:
        if shutil.which(tool) is None:
            print(f"{tool} not installed: its cases are skipped")
            cases = [c for c in cases if c.client != tool]

    print(f"# {platform.node()} {platform.platform()} python {platform.python_version()} "
          f"cpus {os.cpu_count()} {time.strftime('%Y-%m-%d %H:%M')} "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    from labkit import native
    print(f"# labkit compiled fast paths: {native.available() or 'none'}")
    if args.burst and args.spawn == "asyncio":
        parser.error("--burst needs --spawn plain")
    print("# clients " + ("held at a gate and released together (--burst)" if args.burst
                          else "spawned one after another, the clock from the first")
          + f", spawned {args.spawn}")
    shm = Path("/dev/shm")
    out_parent = shm if shm.is_dir() else None
    with tempfile.TemporaryDirectory(prefix="tftpbench-root-") as root_dir, \
            tempfile.TemporaryDirectory(prefix="tftpbench-out-", dir=out_parent) as out_dir:
        root, outdir = Path(root_dir), Path(out_dir)
        os.chmod(root, 0o755)
        digests: dict[str, str] = {}
        for size in sorted({c.size_mib for c in cases}):
            path = root / f"file{size}.bin"
            path.write_bytes(os.urandom(size * MIB))
            path.chmod(0o644)
            digests[path.name] = sha256(path)
        ratios = [s for s in servers if s.startswith("labkit")] if "tftpd-hpa" in servers else []
        header = (f"{'case':45} " + " ".join(f"{s:>24}" for s in servers)
                  + "".join(f" {s + '/hpa':>12}" for s in ratios)
                  + "".join(f" {'µs/blk ' + s:>12}" for s in servers))
        print(header)
        for case in cases:
            rates: dict[str, list[float]] = {server: [] for server in servers}
            cpus: dict[str, list[float]] = {server: [] for server in servers}
            for rep in range(reps):
                # Alternate the order: on a shared machine, load drifts; ratios stay fair.
                for server in servers[rep % len(servers):] + servers[: rep % len(servers)]:
                    try:
                        rate, cpu = measure(server, case, root, outdir, digests, args.tftpd,
                                            args.burst, args.spawn)
                        rates[server].append(rate)
                        cpus[server].append(cpu)
                    except (RuntimeError, TimeoutError) as exc:
                        print(f"  {server} {case.label}: {exc}")
            cells = [f"{statistics.median(r):7.1f} [{min(r):.1f}-{max(r):.1f}]" if r else "failed"
                     for r in rates.values()]
            # The figure to read: the ratio of the medians, both taken in the same run.
            cells += [f"{statistics.median(rates[s]) / statistics.median(rates['tftpd-hpa']):12.2f}"
                      if rates[s] and rates["tftpd-hpa"] else f"{'-':>12}" for s in ratios]
            cells += [f"{statistics.median(c):8.1f}" if c else f"{'-':>8}" for c in cpus.values()]
            print(f"{case.label:45} " + " ".join(f"{c:>24}" for c in cells[:len(servers)])
                  + "".join(f" {c:>12}" for c in cells[len(servers):]), flush=True)
    print(f"# load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
