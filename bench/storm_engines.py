"""Storm side by side: the same N phones against `labkit up`, the exported dnsmasq + nginx and the
exported Kea + Knot + nginx + tftpd-hpa, in one run (run on demand, as root).

    .venv/bin/python bench/storm_engines.py [--phones 1000] [--concurrency 128] [--timeout 600]

Each stack serves from a network namespace of its own (10.42.0.1/16 on a veth named labkit0);
the phones are `labkit simulate --against 10.42.0.1 --interface IF` in a second namespace on the
other end of the veth, so every phone really broadcasts its DISCOVER and fetches its profile and
firmware over the veth. Nothing touches this machine's own interfaces; every engine runs in the
foreground, is started by this script and stopped by its PID; the namespaces are removed at the
end however the run ends. The inventory is `bench/storm.py`'s (N phones over three models).

Reported per stack: phones provisioned, time to provisioned p50/p95/max (wall clock, time scale
1, from the DISCOVER to the firmware), phones/s over the swarm's wall time, and server CPU: the
user+system seconds of the engines' processes and their children during the swarm only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from storm import inventory  # noqa: E402

from labkit.export import export  # noqa: E402
from labkit.inventory.load import default_lab_dir, load  # noqa: E402
from labkit.plan.build import Plan, build_plan  # noqa: E402

SERVER = "10.42.0.1"
SERVER_IF = "labkit0"  # the inventory's lab interface: the exports bind to it
PHONES_IF = "phones0"
PYTHON = sys.executable


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=True)


@dataclass
class Stack:
    """A server namespace and a phones namespace joined by a veth pair; the engines we started."""

    name: str
    base: str
    work: Path
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)

    @property
    def server_ns(self) -> str:
        return f"{self.base}-s"

    @property
    def phones_ns(self) -> str:
        return f"{self.base}-c"

    def start(self, args: list[str], log: str, ready: str, timeout: float = 90) -> subprocess.Popen[Any]:
        """Start an engine in the server namespace, in the foreground; wait for `ready` in its log."""
        path = self.work / log
        with path.open("ab") as sink:
            process = subprocess.Popen(["ip", "netns", "exec", self.server_ns, *args], stdout=sink,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT)
        self.processes.append(process)
        deadline = time.monotonic() + timeout
        while ready and ready not in path.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{args[0]} did not start:\n{path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        return process

    def cpu_seconds(self) -> dict[str, float]:
        """user+system seconds per engine: its process, live descendants and reaped children."""
        out: dict[str, float] = {}
        for process in self.processes:
            if process.poll() is None:
                name = Path(Path(f"/proc/{process.pid}/exe").resolve()).name  # the engine, not `env`
                out[name] = out.get(name, 0.0) + _tree_cpu(process.pid)
        return out

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.kill(process.pid, signal.SIGKILL)
                    process.wait(timeout=30)
        for ns in (self.server_ns, self.phones_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30, check=False)


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def _own_cpu(pid: int) -> float:
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime
    return 0.0


def _tree_cpu(pid: int) -> float:
    tree, total, todo = _children(), 0.0, [pid]
    while todo:
        current = todo.pop()
        total += _own_cpu(current)
        todo.extend(tree.get(current, []))
    return total


@contextlib.contextmanager
def stack(name: str, work: Path) -> Iterator[Stack]:
    base = f"lkt-st-{os.getpid()}-{secrets.token_hex(3)}"
    built = Stack(name, base, work)
    try:
        for ns in (built.server_ns, built.phones_ns):
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("link", "add", "name", SERVER_IF, "netns", built.server_ns, "type", "veth", "peer", "name",
            PHONES_IF, "netns", built.phones_ns)
        _ip("-n", built.server_ns, "addr", "add", f"{SERVER}/16", "dev", SERVER_IF)
        _ip("-n", built.server_ns, "link", "set", SERVER_IF, "up")
        _ip("-n", built.phones_ns, "link", "set", PHONES_IF, "up")
        yield built
    finally:
        built.close()


def bench_inventory(phones: int) -> str:
    """storm.py's inventory, on labkit0, every phone at a fixed address outside the pool (the Kea
    export rejects a reservation with neither an address nor a per-phone option: see the report)."""
    if phones > 127 * 250:
        raise SystemExit("storm_engines: at most 31,750 phones (fixed addresses 10.42.128-254.x)")
    text = inventory(phones, 0.0).replace("  address: 10.42.0.1/16\n",
                                          f"  address: 10.42.0.1/16\n  interface: {SERVER_IF}\n")
    text = text.replace("end: 10.42.250.254}", "end: 10.42.127.254}")  # the pool below the fixed ones
    fixed = 'ip: "10.42.{{ 128 + n // 250 }}.{{ n % 250 + 1 }}"'
    return text.replace('model: "{{ models[n % 3] }}"}', f'model: "{{{{ models[n % 3] }}}}", {fixed}}}')


def serve_labkit(st: Stack, plan: Plan, lab: Path) -> str:
    st.start([PYTHON, "-m", "labkit", "up", str(lab), "--state", str(st.work / "state"), "--quiet",
              "--log", str(st.work / "events.jsonl")], "labkit.log", "Ctrl-C stops the lab.")
    return str(st.work / "state" / "ca" / "ca.pem")


def _nginx(st: Stack, plan: Plan) -> str:
    export(plan, "nginx", st.work / "nginx", state_dir=st.work / "state")
    n = st.work / "nginx"
    st.start(["nginx", "-c", str(n / "nginx.conf"), "-p", f"{n}/", "-g", "daemon off; user root;"],
             "nginx.log", "")
    return str(n / "tls" / "ca.crt")


def serve_dnsmasq(st: Stack, plan: Plan, lab: Path) -> str:
    export(plan, "dnsmasq", st.work / "dnsmasq", interface=SERVER_IF)
    conf = st.work / "dnsmasq" / "dnsmasq.conf"
    st.start(["dnsmasq", "-k", "--user=root", "--log-facility=-", "-C", str(conf)], "dnsmasq.log", "started")
    return _nginx(st, plan)


def serve_kea(st: Stack, plan: Plan, lab: Path) -> str:
    export(plan, "kea", st.work / "kea", interface=SERVER_IF)
    run = st.work / "run"
    run.mkdir()
    st.start(["env", f"KEA_LOCKFILE_DIR={run}", f"KEA_PIDFILE_DIR={run}", "kea-dhcp4", "-c",
              str(st.work / "kea" / "kea-dhcp4.conf")], "kea.log", "DHCP4_STARTED")
    export(plan, "knot", st.work / "knot", primary_address=SERVER, primary_port=53)
    st.start(["knotd", "-c", str(st.work / "knot" / "knot-primary.conf")], "knot.log", "server started")
    export(plan, "tftpd-hpa", st.work / "tftpd")
    command = (st.work / "tftpd" / "run-tftpd.sh").read_text().splitlines()[-1].removeprefix("exec ").split()
    st.start(command, "tftpd.log", "")
    return _nginx(st, plan)


STACKS: dict[str, Callable[[Stack, Plan, Path], str]] = {
    "labkit up": serve_labkit, "dnsmasq + nginx": serve_dnsmasq,
    "kea + knot + nginx + tftpd-hpa": serve_kea}


def storm(st: Stack, lab: Path, ca: str, args: argparse.Namespace) -> dict[str, Any]:
    """The phones against one stack: their figures and the stack's CPU during the swarm."""
    command = ["ip", "netns", "exec", st.phones_ns, PYTHON, "-m", "labkit", "simulate", str(lab),
               "--against", SERVER, "--interface", PHONES_IF, "--ca", ca, "--json", "--time-scale", "1",
               "--concurrency", str(args.concurrency), "--rounds", "2", "--preflight-listen", "2"]
    before, phones_before = st.cpu_seconds(), _children_cpu()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"stack": st.name, "error": f"not done within {args.timeout} s"}
    after, phones_cpu = st.cpu_seconds(), _children_cpu() - phones_before
    engines = {name: round(seconds - before.get(name, 0.0), 2) for name, seconds in after.items()}
    cpu = sum(engines.values())
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError:
        return {"stack": st.name, "error": f"simulate exited {done.returncode}: {done.stderr[-800:]}"}
    outcomes = result["outcomes"]
    times = sorted(o["time_to_provisioned"] for o in outcomes if o["provisioned"])
    wall = result["wall_seconds"]
    failures: dict[str, int] = {}
    for o in outcomes:
        if not o["provisioned"]:
            failures[o["reason"] or "?"] = failures.get(o["reason"] or "?", 0) + 1
    return {"stack": st.name, "phones": len(outcomes), "provisioned": len(times),
            "p50": _q(times, 0.5), "p95": _q(times, 0.95), "max": round(times[-1], 3) if times else None,
            "wall_seconds": round(wall, 2),
            "phones_per_second": round(len(times) / wall, 1) if wall else None,
            "server_cpu_seconds": round(cpu, 2), "phones_cpu_seconds": round(phones_cpu, 2),
            "server_cpu_by_engine": engines, "failures": failures, "requests": result["requests"]}


def _children_cpu() -> float:
    """user+system seconds of this script's reaped children (the simulate run, `ip addr add` included)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _q(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 3)
    return round(statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1], 3)


def table(rows: list[dict[str, Any]]) -> str:
    def s(value: Any) -> str:
        return "-" if value is None else f"{value:.2f}"

    lines = ["| stack | provisioned | time to provisioned p50 / p95 / max | phones/s | server CPU "
             "| phones CPU |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['stack']} | {r['error']} | | | | |")
            continue
        lines.append(f"| {r['stack']} | {r['provisioned']} / {r['phones']} | {s(r['p50'])} / {s(r['p95'])} / "
                     f"{s(r['max'])} s | {r['phones_per_second']} | {r['server_cpu_seconds']} s | "
                     f"{r['phones_cpu_seconds']} s |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phones", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--timeout", type=float, default=600.0, help="Seconds per stack's swarm, at most.")
    parser.add_argument("--only", action="append", choices=sorted(STACKS),
                        help="Only this stack (repeatable).")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("storm_engines needs root (network namespaces)", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="labkit-storm-engines-") as tmp:
        work = Path(tmp)
        lab = work / "lab.yaml"
        lab.write_text(bench_inventory(args.phones))
        (work / "firmware").mkdir()
        for load_file in (default_lab_dir() / "firmware").iterdir():
            (work / "firmware" / load_file.name).write_bytes(load_file.read_bytes() * 2000)  # ~300 kB
        plan = build_plan(load(lab))
        for name, serve in STACKS.items():
            if args.only and name not in args.only:
                continue
            folder = work / name.split()[0]
            folder.mkdir()
            with stack(name, folder) as st:
                try:
                    ca = serve(st, plan, lab)
                except (RuntimeError, OSError) as exc:
                    rows.append({"stack": name, "error": str(exc)[-300:]})
                    continue
                rows.append(storm(st, lab, ca, args))
            print(json.dumps(rows[-1]), file=sys.stderr)
    print(f"{args.phones} phones, concurrency {args.concurrency}, {os.cpu_count()} CPU\n")
    print(table(rows))
    return 0 if all(r.get("provisioned") == r.get("phones") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
