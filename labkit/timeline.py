"""One phone's story from the event log: what it asked, what it was told, which faults hit it,
and where it stalled (pure: a list of events in, lines of text out)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.events import Event

MILESTONES = (
    ("lease", "a DHCP lease (ACK)"),
    ("profile", "a profile (.xml or .cfg)"),
    ("own profile", "its own profile (/Cisco/$PN/$MA.cfg)"),
    ("firmware", "firmware (.loads)"),
)


def log_files(path: Path) -> list[Path]:
    """The event log and its rotated predecessors (`path.1`, `path.2`, ...), oldest first."""
    rotated = []
    n = 1
    while (older := path.with_name(f"{path.name}.{n}")).is_file():
        rotated.append(older)
        n += 1
    return [*reversed(rotated), *([path] if path.is_file() else [])]


def read_events(path: Path) -> list[Event]:
    """Every event of the log, its rotated files included."""
    events = []
    for file in log_files(path):
        with file.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    try:
                        events.append(Event(**json.loads(line)))
                    except (ValueError, TypeError):
                        continue  # a line cut short by a crash: the rest of the story still counts
    return events


def _reached(event: Event) -> str | None:
    if event.service == "dhcp" and event.answer.startswith("ACK") and event.result == "ok":
        return "lease"
    if event.service in ("tftp", "http", "https") and event.result == "ok":
        path = event.request
        if path.endswith(".loads"):
            return "firmware"
        if "/Cisco/" in path and path.endswith(".cfg"):
            return "own profile"
        if path.endswith((".xml", ".cfg")):
            return "profile"
    return None


@dataclass
class Story:
    mac: str
    events: list[Event]
    reached: list[str]

    def lines(self) -> list[str]:
        if not self.events:
            return [f"{self.mac}: no events for this phone in the log"]
        start = self.events[0].time
        out = [f"{self.mac}: {len(self.events)} events"]
        for e in self.events:
            fine = e.result in ("ok", "accepted", "redirect")
            mark = "!" if e.result == "fault" else (" " if fine else "x")
            rule = f"  <- fault rule {e.detail.get('rule')}" if e.result == "fault" else ""
            out.append(f"{mark} +{e.time - start:8.3f}s {e.service:<6} {e.action:<8} {e.request} -> "
                       f"{e.answer} [{e.result}]{rule}")
        out.append(self.diagnosis())
        return out

    def diagnosis(self) -> str:
        missing = [label for key, label in MILESTONES if key not in self.reached]
        faults = sum(1 for e in self.events if e.result == "fault")
        hit = f"; {faults} fault(s) hit it" if faults else ""
        if not missing:
            return f"provisioned: lease, profile, own profile and firmware all served{hit}"
        last_ok = next((label for key, label in reversed(MILESTONES) if key in self.reached), None)
        failures = [e for e in self.events if e.result not in ("ok", "accepted", "redirect", "nodata")]
        last_failure = failures[-1] if failures else None
        told = (f"; the last thing that went wrong: {last_failure.service} {last_failure.request} -> "
                f"{last_failure.answer} [{last_failure.result}]") if last_failure else ""
        where = f"stalled after {last_ok}" if last_ok else "stalled before getting a DHCP lease"
        return f"{where}; never got {missing[0]}{told}{hit}"


def story(events: Iterable[Event], mac: str) -> Story:
    """Events of one phone in time order: tagged with its MAC, or from an address it held then."""
    mac = mac.lower()
    addresses: set[str] = set()
    chosen: list[Event] = []
    for event in sorted(events, key=lambda e: e.time):
        ip = (event.client or "").rsplit(":", 1)[0]
        if event.phone == mac:
            chosen.append(event)
            detail: dict[str, Any] = event.detail
            if event.service == "dhcp" and detail.get("ip"):
                addresses.add(str(detail["ip"]))
        elif event.phone is None and ip in addresses and not ip.startswith("127."):
            chosen.append(event)
    reached = [r for e in chosen if (r := _reached(e))]
    if "own profile" in reached:  # its own profile is a profile, whichever way the first one came
        reached.append("profile")
    return Story(mac, chosen, reached)
