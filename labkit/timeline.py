"""One phone's story from the event log: what it asked, what it was told, which faults hit it,
and where it stalled (pure: a list of events in, lines of text out)."""

from __future__ import annotations

import datetime
import json
import re
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
    if event.service == "dhcp":  # (a slice compare: str.startswith parses its arguments every call)
        return "lease" if event.answer[:3] == "ACK" and event.result == "ok" else None
    if event.service in ("tftp", "http", "https") and event.result == "ok":
        path = event.request
        if path.endswith(".loads"):
            return "firmware"
        if "/Cisco/" in path and path.endswith(".cfg"):
            return "own profile"
        if path.endswith((".xml", ".cfg")):
            return "profile"
    return None


BOOT_GAP = 30.0  # seconds of silence after which a DHCP DISCOVER means the phone booted again
FINE = frozenset({"ok", "accepted", "redirect", "nodata", "ignored"})


def clock(when: float) -> str:
    """Wall-clock time of day, local, to the millisecond: 14:03:21.042."""
    moment = datetime.datetime.fromtimestamp(when)
    return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def stamp(when: float) -> str:
    """Date and time, local, to the second: 2026-11-30 14:03:21."""
    return datetime.datetime.fromtimestamp(when).strftime("%Y-%m-%d %H:%M:%S")


def span(seconds: float) -> str:
    """A duration as a person says it: 0.250s, 42.1s, 5m 12s, 2h 03m."""
    if seconds < 60:
        return f"{seconds:.3f}s" if seconds < 10 else f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def boots(events: list[Event]) -> list[list[Event]]:
    """Events split per boot: a boot starts with the first event, or with a DHCP DISCOVER after
    BOOT_GAP seconds of silence or after the phone already got its lease (it restarted)."""
    out: list[list[Event]] = []
    leased = False
    for event in events:
        discover = event.service == "dhcp" and event.action == "discover"
        gap = bool(out) and event.time - out[-1][-1].time >= BOOT_GAP
        if not out or (discover and (gap or leased)):
            out.append([])
            leased = False
        out[-1].append(event)
        leased = leased or _reached(event) == "lease"
    return out


def _fault_count(events: list[Event]) -> int:
    """Faults that hit: one per rule firing (the "fault" event), not again for the answer it caused."""
    fired = sum(1 for e in events if e.action == "fault")
    return fired or sum(1 for e in events if e.result == "fault")


@dataclass
class Story:
    mac: str
    events: list[Event]
    reached: list[str]

    def lines(self, *, last_boot: bool = False, since: float | None = None) -> list[str]:
        if not self.events:
            return [f"{self.mac}: no events for this phone in the log"]
        sections = boots(self.events)
        numbered = list(enumerate(sections, 1))
        if last_boot:
            numbered = numbered[-1:]
        if since is not None:
            numbered = [(n, [e for e in s if e.time >= since]) for n, s in numbered]
            numbered = [(n, s) for n, s in numbered if s]
        if not numbered:
            return [f"{self.mac}: {len(self.events)} events, none since {stamp(since or 0)}"]
        shown = [e for _, s in numbered for e in s]
        first = self.events[0].time
        out = [f"{self.mac}: {len(shown)} of {len(self.events)} events, {len(sections)} boot(s), "
               f"from {stamp(shown[0].time)} to {stamp(shown[-1].time)}"]
        for number, section in numbered:
            after = f", {span(section[0].time - first)} after the first" if number > 1 else ""
            out.append(f"--- boot {number} at {stamp(section[0].time)}{after} " + "-" * 20)
            out.extend(_event_lines(section))
        out.append(story_of(self.mac, shown).diagnosis())
        return out

    def diagnosis(self) -> str:
        missing = [label for key, label in MILESTONES if key not in self.reached]
        faults = _fault_count(self.events)
        hit = f"; {faults} fault(s) hit it" if faults else ""
        if not missing:
            return f"provisioned: lease, profile, own profile and firmware all served{hit}"
        last_ok = next((label for key, label in reversed(MILESTONES) if key in self.reached), None)
        failures = [e for e in self.events if e.result not in FINE and e.action != "fault"]
        last_failure = failures[-1] if failures else None
        told = (f"; the last thing that went wrong: {last_failure.service} {last_failure.request} -> "
                f"{last_failure.answer} [{last_failure.result}]") if last_failure else ""
        where = f"stalled after {last_ok}" if last_ok else "stalled before getting a DHCP lease"
        return f"{where}; never got {missing[0]}{told}{hit}"


def _event_lines(section: list[Event]) -> list[str]:
    """One line per event: mark, time since the boot began, wall clock, what was asked and told."""
    start = section[0].time
    out = []
    rule: str | None = None
    for e in section:
        if e.action == "fault":
            rule = str(e.detail.get("rule") or "unnamed rule")
            out.append(f"! +{span(e.time - start):>8} {clock(e.time)} {e.service:<6} fault rule "
                       f"{rule!r} fired on {e.request}: {e.answer}")
            continue
        mark = "!" if e.result == "fault" else (" " if e.result in FINE else "x")
        cause = f"  <- fault rule {rule}" if e.result == "fault" and rule else ""
        out.append(f"{mark} +{span(e.time - start):>8} {clock(e.time)} {e.service:<6} {e.action:<8} "
                   f"{e.request} -> {e.answer} [{e.result}]{cause}")
    return out


def story_of(mac: str, chosen: list[Event]) -> Story:
    """A Story of events already chosen for one phone (their milestones worked out)."""
    reached = [r for e in chosen if (r := _reached(e))]
    if "own profile" in reached:  # its own profile is a profile, whichever way the first one came
        reached.append("profile")
    return Story(mac, chosen, reached)


_SPAN = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: float) -> float:
    """`--since`: a duration back from now (90s, 10m, 1h30m, 2d) or a time (14:05, 14:05:30,
    2026-11-30 14:05, ISO 8601); epoch seconds of the moment. Raises ValueError in plain words."""
    compact = text.strip().lower().replace(" ", "")
    if compact and _SPAN.sub("", compact) == "":
        return now - sum(float(n) * _UNITS[u] for n, u in _SPAN.findall(compact))
    today = datetime.datetime.fromtimestamp(now)
    for form in ("%H:%M", "%H:%M:%S"):
        try:
            t = datetime.datetime.strptime(text.strip(), form).time()
        except ValueError:
            continue
        return datetime.datetime.combine(today.date(), t).timestamp()
    try:
        return datetime.datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise ValueError(f"{text!r} is neither a duration (90s, 10m, 1h30m, 2d) nor a time "
                         "(14:05, 14:05:30, 2026-11-30 14:05)") from None


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
    return story_of(mac, chosen)
