"""Storm: N virtual phones against `labkit up` in a separate process, on loopback (run on demand).

    .venv/bin/python bench/storm.py [--phones 500] [--concurrency 128]

Prints phones provisioned per second, p50/p95/max time to provisioned (wall clock), requests
served per protocol, and the kit's peak RSS and CPU seconds. Bounded: the phones give up after
their retry rounds, and the whole run after --timeout seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labkit.inventory.load import default_lab_dir, load  # noqa: E402
from labkit.phone.driver import loopback_access, run_swarm  # noqa: E402
from labkit.phone.swarm import Summary, inventory_configs  # noqa: E402
from labkit.services.supervisor import free_port_offset  # noqa: E402

INVENTORY = """\
{%- set models = ["CP-6841-3PCC", "CP-7841-3PCC", "CP-8851-3PCC"] %}
lab:
  domain: lab.example
  address: 10.42.0.1/16
  pool: {start: 10.42.1.1, end: 10.42.250.254}
dhcp:
  options: {tftp_servers: [10.42.0.1]}
  classes:
    - match: "CP-*-3PCC"
      options: {provisioning_url: "http://prov.lab.example"}
dns:
  srv:
    - {service: _ciscoprov-http._tcp, target: prov.lab.example, port: 80}
models:
  CP-6841-3PCC: {firmware: sip68xx.12-0-1MPP-0001.loads}
  CP-7841-3PCC: {firmware: sip78xx.12-0-1MPP-0001.loads}
  CP-8851-3PCC: {firmware: sip88xx.12-0-1MPP-0001.loads}
phones:
{%- for n in range(PHONES) %}
  - {mac: "02:4c:4b:00:{{ '%02x' % (n // 256) }}:{{ '%02x' % (n % 256) }}", model: "{{ models[n % 3] }}"}
{%- endfor %}
"""


def proc_usage(pid: int) -> tuple[int, float]:
    """(peak RSS in KiB, CPU seconds) of a live process, from /proc."""
    peak = 0
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1])
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return peak, (int(fields[11]) + int(fields[12])) / ticks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--phones", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="labkit-storm-") as tmp:
        work = Path(tmp)
        (work / "lab.yaml").write_text(INVENTORY.replace("PHONES", str(args.phones)))
        (work / "firmware").mkdir()
        for load_file in (default_lab_dir() / "firmware").iterdir():
            (work / "firmware" / load_file.name).write_bytes(load_file.read_bytes() * 2000)  # ~300 kB
        offset = free_port_offset()
        command = [sys.executable, "-m", "labkit", "up", str(work / "lab.yaml"), "--port-offset", str(offset),
                   "--state", str(work / "state"), "--log", str(work / "events.jsonl"), "--quiet"]
        lab = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert lab.stdout is not None
        for line in lab.stdout:
            if "Ctrl-C stops the lab." in line:
                break
        else:
            print("the lab did not start", file=sys.stderr)
            return 1
        try:
            inv = load(work / "lab.yaml").inventory
            access = loopback_access(inv, "127.0.0.1", offset, work / "state" / "ca" / "ca.pem")
            configs = inventory_configs(inv, rounds=2, retry_delays=(5,))
            started = time.monotonic()
            result = asyncio.run(asyncio.wait_for(run_swarm(configs, access, concurrency=args.concurrency,
                                                            time_scale=1.0), args.timeout))
            wall = time.monotonic() - started
            peak_kib, cpu = proc_usage(lab.pid)
        finally:
            lab.send_signal(signal.SIGTERM)
            lab.communicate(timeout=60)
        served = Counter(json.loads(line)["service"] for line in (work / "events.jsonl").open())
    summary = Summary.of(result.outcomes)
    report = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.node()} {os.cpu_count()} CPU, Python {platform.python_version()}",
        "phones": summary.total,
        "provisioned": summary.provisioned,
        "phones_per_second": round(summary.provisioned / wall, 1),
        "time_to_provisioned_s": {"p50": summary.p50, "p95": summary.p95, "max": summary.maximum},
        "wall_seconds": round(wall, 2),
        "phone_requests": result.requests,
        "kit_events_by_service": dict(served),
        "kit_peak_rss_mib": round(peak_kib / 1024, 1),
        "kit_cpu_seconds": round(cpu, 2),
        "failures": summary.failures,
    }
    print(json.dumps(report, indent=2))
    return 0 if summary.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
