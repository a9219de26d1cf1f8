"""Per-event cost of the main process's event sinks, fed recorded event shapes (on demand, not a test).

    .venv/bin/python bench/event_sinks.py --kind dhcp --sink ops 20000       # CPU ns per event (noisy)
    valgrind --tool=callgrind --instr-atstart=no .venv/bin/python bench/event_sinks.py \
        --kind storm --sink all 20000 --callgrind                             # instructions per event

The events have the shapes the services emit (taken from `bench/dhcp_cpu.py`'s and a
`bench/storm.py --keep-events` journal): `dhcp` is perfdhcp's DORA pairs for clients the
inventory does not list (each new MAC gets its status row on its DISCOVER, as in dhcp_cpu);
`storm` is a storm phone's 14 events (DISCOVER, REQUEST, six syslog lines, three DNS queries
from loopback, three HTTP GETs) for phones of the inventory; `dns` is a DNS query from loopback
(no phone), as the workers hand them over. The sinks are the ones `labkit up` puts on its bus:
`ops` (LabOps: status fold and timelines), `journal` (MalformedLimiter in front of the
JSON-lines log), `bus` (the EventBus with both), each fed the same list of prebuilt events.
With `--callgrind` (under valgrind, instrumentation off at start) only the feeding is counted and
the instructions per event are printed from callgrind's own count.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labkit.events import Event

WHEN = 1796091085.2427268


def mac_of(k: int) -> str:
    return ":".join(f"{b:02x}" for b in (0x024C4B000000 + k).to_bytes(6, "big"))


def dhcp_events(n: int) -> list[Event]:
    """n DORAs, 32 clients per read as in dhcp_cpu (their events share a time)."""
    out = []
    for first in range(0, n, 32):
        group = range(first, min(n, first + 32))
        when = WHEN + first / 1000
        for k in group:
            mac, ip = mac_of(k), f"198.18.{1 + k // 256}.{k % 256}"
            out.append(Event(when, "dhcp", "198.18.0.2:67", mac, "discover",
                             f"DISCOVER {mac} via relay 198.18.0.2", f"OFFER {ip} to 198.18.0.2:0", "ok",
                             {"ip": ip, "options": [53, 54, 1, 3, 15, 6, 51, 58, 59]}))
        for k in group:
            mac, ip = mac_of(k), f"198.18.{1 + k // 256}.{k % 256}"
            out.append(Event(when + 0.002, "dhcp", "198.18.0.2:67", mac, "request",
                             f"REQUEST {mac} wants {ip} via relay 198.18.0.2", f"ACK {ip} until 1796094676",
                             "ok", {"state": "selecting", "ip": ip}))
    return out


def phone_events(k: int, when: float) -> list[Event]:
    """One storm phone's 14 events, in the order the kit sees them."""
    mac, ip, model = mac_of(k), f"10.42.{1 + k // 250}.{1 + k % 250}", ("6841", "7841", "8851")[k % 3]
    vendor, client = f"CP-{model}-3PCC", f"127.0.0.1:{40000 + k % 20000}"
    syslog = {"facility": "local0", "severity": "info", "hostname": f"SEP{mac.replace(':', '').upper()}",
              "app": "prov", "format": "rfc3164"}
    http = {"ua_model": vendor, "ua_version": "11.3.1", "ua_mac": mac, "identified_by": "user-agent"}
    sent = [Event(when, "dhcp", "127.0.0.2:44067", mac, "discover",
                  f"DISCOVER {mac} vendor '{vendor}' via relay 127.0.0.2", f"OFFER {ip} to 127.0.0.2:44067",
                  "ok", {"ip": ip, "options": [53, 54, 1, 6, 15, 150, 58, 59, 160, 51]}),
            Event(when + 0.01, "dhcp", "127.0.0.2:44067", mac, "request",
                  f"REQUEST {mac} vendor '{vendor}' wants {ip} via relay 127.0.0.2",
                  f"ACK {ip} until 1796094685", "ok", {"state": "selecting", "ip": ip})]
    for step, (path, size) in enumerate(((f"/{model}-3PCC.xml", 302), (f"/Cisco/{mac}.cfg", 1210),
                                         (f"/sip{model}.11-3-1MPP.loads", 4096))):
        t = when + 0.02 + step * 0.01
        sent.append(Event(t, "syslog", client, mac, "log",
                          f"{vendor} {mac} -- Requesting resync http://prov.lab.example{path}", "", "ok",
                          dict(syslog)))
        sent.append(Event(t, "dns", client, None, "query", "A prov.lab.example", "NOERROR 1 A", "ok", {}))
        sent.append(Event(t + 0.001, "http", client, mac, "get", path, f"200 {size} bytes", "ok", dict(http)))
        sent.append(Event(t + 0.002, "syslog", client, mac, "log", f"{vendor} {mac} -- resync done {path}",
                          "", "ok", dict(syslog)))
    return sent


def storm_events(n: int) -> tuple[list[Event], int]:
    """Storm phones until n events; the phones' count."""
    out: list[Event] = []
    k = 0
    while len(out) < n:
        out.extend(phone_events(k, WHEN + k / 500))
        k += 1
    return out[:n], k


def dns_events(n: int) -> list[Event]:
    return [Event(WHEN + k / 100000, "dns", f"127.0.0.1:{40000 + k % 20000}", None, "query",
                  "SRV _ciscoprov-http._tcp.lab.example", "NOERROR 1 SRV + 1 A", "ok", {}) for k in range(n)]


def sink_for(name: str, kind: str, phones: int, work: Path) -> tuple[Any, list[Any]]:
    """The sink to feed, and what to close after."""
    from labkit.services.journal import EventBus, JsonLinesLog, MalformedLimiter
    from labkit.services.ops import LabOps
    from labkit.services.status import LabStatus

    inventory = [(mac_of(k), f"phone {k}", "CP-8851-3PCC", None) for k in range(phones)]
    if kind != "storm":
        inventory = []
    journal = JsonLinesLog(work / "events.jsonl")
    ops = LabOps(LabStatus.of_phones(inventory))
    limiter = MalformedLimiter(journal)
    if name == "ops":
        return ops, [journal]
    if name == "journal":
        return limiter, [journal]
    bus = EventBus()
    bus.sinks += [ops, limiter]
    return bus, [journal]


def callgrind(switch: str) -> None:
    subprocess.run(["callgrind_control", "-i", switch, str(os.getpid())], capture_output=True, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("events", type=int, help="events to feed")
    parser.add_argument("--kind", choices=("dhcp", "storm", "dns"), default="dhcp")
    parser.add_argument("--sink", choices=("ops", "journal", "bus", "none"), default="bus")
    parser.add_argument("--callgrind", action="store_true", help="under callgrind: count the feeding only")
    args = parser.parse_args()
    phones = 0
    if args.kind == "dhcp":
        events = dhcp_events(args.events // 2)
    elif args.kind == "storm":
        events, phones = storm_events(args.events)
    else:
        events = dns_events(args.events)
    work = Path(tempfile.mkdtemp(prefix="labkit-event-sinks-"))
    try:
        sink, closing = sink_for(args.sink, args.kind, phones, work)
        if args.sink == "none":
            sink = lambda event: None  # noqa: E731  # the loop's own cost
        if args.callgrind:
            callgrind("on")
        started = time.process_time()
        for event in events:
            sink(event)
        for journal in closing:
            journal.flush()
        used = time.process_time() - started
        if args.callgrind:
            callgrind("off")
        for journal in closing:
            journal.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    per_event = 1e9 * used / len(events)
    print(f"{len(events)} {args.kind} events into {args.sink}: {per_event:.0f} ns CPU per event")
    if args.callgrind:
        print("instructions: callgrind's 'Collected' total divided by", len(events))
    return 0


if __name__ == "__main__":
    sys.exit(main())
