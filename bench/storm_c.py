"""The storm's phones as a small C program (bench/storm_phones.c), for bench/storm.py --phones-engine c.

The virtual phones (labkit.phone) are one Python process at 2.4-3.1 ms of CPU a phone: on two
vCPUs that process, not the kit, bounds the storm (bench/README.md, rounds 3 and 4 of issue 15).
storm_phones.c does each phone's wire exchange (DHCP DORA, syslog, DNS A, HTTP GETs) with one
epoll loop; this module compiles it on demand (gcc -O2, cached by the source's hash), hands it
the phones and reads back one outcome per phone in the shape bench/storm.py reports.
"""

from __future__ import annotations

import resource
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cbuild import build as build_c

from labkit.phone.core import Outcome, PhoneConfig
from labkit.phone.driver import LabAccess, SwarmResult
from labkit.phone.effects import Lease
from labkit.phone.state import Step
from labkit.protocols.result import Fact

SOURCE = Path(__file__).resolve().parent / "storm_phones.c"


def build() -> Path:
    """The compiled generator (bench/cbuild.py: gcc -O2, cached by the source's hash)."""
    return build_c(SOURCE)


@dataclass
class CRun:
    result: SwarmResult
    cpu_seconds: float  # the generator's user + system CPU
    user_seconds: float


def phone_lines(configs: list[PhoneConfig]) -> str:
    """One phone a line: MAC (12 hex digits), model, User-Agent (as the virtual phone sends it)."""
    return "".join(f"{c.identity['MA']} {c.model} {c.user_agent}\n" for c in configs)


def outcome(line: str, by_mac: dict[str, str]) -> Outcome:
    mac12, status, ip, t_lease, t_done, *why = line.split()
    mac = by_mac[mac12]
    ok = status == "ok"
    reason = " ".join(why) or None
    leased = ip != "-"
    timeline = [Step(float(t_lease), Fact("dhcp", "lease", ip, "ok", mac))] if leased else []
    return Outcome(mac, provisioned=ok, reason=None if ok else reason,
                   lease=Lease(ip, "", {}) if leased else None, timeline=timeline,
                   provisioned_at=float(t_done) if ok else None)


def run_c_swarm(configs: list[PhoneConfig], access: LabAccess, *, concurrency: int, timeout: float,
                rounds: int, seed: int) -> CRun:
    """Run the generator against the lab `access` describes (loopback only) and wait for it."""
    binary = build()
    relay = access.dhcp.relay_ip or "127.0.0.2"
    target = access.network.target or "127.0.0.1"
    with tempfile.NamedTemporaryFile("w", prefix="storm-phones-", suffix=".txt") as listing:
        listing.write(phone_lines(configs))
        listing.flush()
        lab = ",".join(sorted(access.network.lab_addresses))
        command = [str(binary), "--phones", listing.name, "--target", target, "--relay", relay,
                   "--offset", str(access.network.port_offset), "--lab", lab,
                   "--concurrency", str(concurrency), "--timeout", str(timeout), "--rounds", str(rounds),
                   "--seed", str(seed)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout + 60, check=False)
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"storm_phones failed ({done.returncode}): {done.stderr.strip()}")
    by_mac = {c.identity["MA"]: c.mac for c in configs}
    lines = done.stdout.splitlines()
    outcomes = [outcome(line, by_mac) for line in lines if not line.startswith("requests ")]
    counts = next(line for line in lines if line.startswith("requests ")).split()[1:]
    requests = {counts[i]: int(counts[i + 1]) for i in range(0, len(counts), 2)}
    user = after.ru_utime - before.ru_utime
    return CRun(SwarmResult(outcomes, wall, requests), user + after.ru_stime - before.ru_stime, user)
