"""The running lab's status, folded from its events (pure: events in, a snapshot out).

Per phone: its address, the stage it is at (waiting → dhcp → profile → firmware → provisioned),
what went wrong last while it was stuck there, when it was last heard from, the firmware it
fetched and the fault rules that hit it. Per service: requests, errors, malformed input and the
datagrams the kernel dropped. `labkit status`, the dashboard and /metrics all read this model.

`LabStatus.apply(event)` returns the phone whose status changed (or None), so that a live view
(the dashboard's event stream, the metrics) reacts to changes without diffing snapshots.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from labkit.events import MALFORMED_RESULTS, Event
from labkit.timeline import _reached as milestone  # the timeline's milestones, one definition

STAGES = ("waiting", "dhcp", "profile", "firmware", "provisioned")
"""Where a phone is: nothing heard yet, DHCP under way, fetching its profile(s), fetching its
firmware, or done (a lease, a profile, its own profile and firmware all served)."""
FINE = frozenset({"ok", "accepted", "redirect", "nodata", "not-modified", "ignored", "suppressed"})
"""Results that are not errors (a TFTP "accepted" or a DHCP "ignored" is the protocol working)."""
NOT_REQUESTS = frozenset({"fault", "kernel-drops", "suppressed"})
"""Actions that report on the lab rather than answer a request (counted apart)."""
SHAPE_VERSION = 1


@dataclass(slots=True)  # one per inventory phone for the whole run: no __dict__
class PhoneStatus:
    mac: str
    name: str = ""
    model: str = ""
    address: str | None = None
    stage: str = "waiting"
    reached: tuple[str, ...] = ()  # timeline milestones: lease, profile, ... (a tuple: 72 bytes, a set 216)
    problem: str | None = None  # the last thing that went wrong since the last step forward
    first_contact: float | None = None
    last_contact: float | None = None
    provisioned_at: float | None = None
    firmware: str | None = None
    faults: Counter[str] | None = None  # rule label -> times it hit this phone (made on the first hit)
    events: int = 0

    @property
    def seconds_to_provisioned(self) -> float | None:
        if self.provisioned_at is None or self.first_contact is None:
            return None
        return self.provisioned_at - self.first_contact

    def to_dict(self) -> dict[str, Any]:
        return {"mac": self.mac, "name": self.name, "model": self.model, "address": self.address,
                "state": self.stage, "problem": self.problem, "first_contact": self.first_contact,
                "last_contact": self.last_contact, "provisioned_at": self.provisioned_at,
                "seconds_to_provisioned": self.seconds_to_provisioned, "firmware": self.firmware,
                "faults": dict(sorted(self.faults.items())) if self.faults else {}, "events": self.events}


@dataclass
class ServiceCounters:
    requests: int = 0
    errors: int = 0
    malformed: int = 0
    kernel_drops: int = 0
    by_action: Counter[str] = field(default_factory=Counter)
    errors_by_reason: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "errors": self.errors, "malformed": self.malformed,
                "kernel_drops": self.kernel_drops, "by_action": dict(sorted(self.by_action.items())),
                "errors_by_reason": dict(sorted(self.errors_by_reason.items()))}


def _stage(reached: tuple[str, ...], heard: bool) -> str:
    if "lease" not in reached:
        return "dhcp" if heard else "waiting"
    if "profile" not in reached or "own profile" not in reached:
        return "profile"
    return "provisioned" if "firmware" in reached else "firmware"


@dataclass
class LabStatus:
    """Every phone of the plan (and any other MAC the services name), every service seen."""

    phones: dict[str, PhoneStatus] = field(default_factory=dict)
    services: dict[str, ServiceCounters] = field(default_factory=dict)
    faults_fired: Counter[str] = field(default_factory=Counter)  # rule label -> times fired
    unknown_clients: Counter[str] = field(default_factory=Counter)  # address -> events not of a phone
    leases: dict[str, str] = field(default_factory=dict)  # address -> MAC, from DHCP ACKs
    fixed: dict[str, str] = field(default_factory=dict)  # address -> MAC, the inventory's fixed IPs
    events: int = 0
    last_event: float | None = None

    @classmethod
    def of_phones(cls, phones: Iterable[tuple[str, str, str, str | None]]) -> LabStatus:
        """From (mac, name, model, fixed address or None) of each inventory phone."""
        status = cls()
        for mac, name, model, address in phones:
            status.phones[mac] = PhoneStatus(mac, name, model, address)
            if address is not None:
                status.fixed[address] = mac
        return status

    def add_phones(self, phones: Iterable[tuple[str, str, str, str | None]]) -> None:
        """Phones a reload added (the same tuples as `of_phones`); phones already known keep
        their story, removed ones stay until the lab restarts (their events are history)."""
        for mac, name, model, address in phones:
            if mac not in self.phones:
                self.phones[mac] = PhoneStatus(mac, name, model, address)
            if address is not None:
                self.fixed[address] = mac

    def _phone_of(self, event: Event) -> PhoneStatus | None:
        mac = event.phone
        if mac is None:
            address = (event.client or "").rsplit(":", 1)[0]
            if not address or address.startswith("127."):
                return None  # on loopback every phone shares one address
            mac = self.leases.get(address) or self.fixed.get(address)
            if mac is None:
                return None
        phone = self.phones.get(mac)
        if phone is None:
            phone = self.phones[mac] = PhoneStatus(mac)
        return phone

    def _count_report(self, counters: ServiceCounters, event: Event) -> None:
        """An event that reports on the lab (NOT_REQUESTS): kernel drops, a fault that fired."""
        if event.action == "kernel-drops":
            counters.kernel_drops = int(event.detail.get("total", counters.kernel_drops + 1))
        elif event.action == "fault":
            self.faults_fired[str(event.detail.get("rule") or "unnamed")] += 1

    def apply(self, event: Event) -> PhoneStatus | None:
        """Fold one event in; the phone whose status changed, if any. One straight path with the
        event's fields read once (it runs for every event of every service: a DORA is two)."""
        self.events += 1
        when = self.last_event = event.time
        service, action, result = event.service, event.action, event.result
        counters = self.services.get(service)
        if counters is None:
            counters = self.services[service] = ServiceCounters()
        report = action in NOT_REQUESTS
        if report:
            self._count_report(counters, event)
        else:
            counters.requests += 1
            counters.by_action[action] += 1
            if result in MALFORMED_RESULTS:
                counters.malformed += 1
            elif result not in FINE:
                counters.errors += 1
                counters.errors_by_reason[result] += 1
        ip = event.detail.get("ip") if service == "dhcp" and result == "ok" else None
        if ip and event.phone and event.answer[:3] == "ACK":  # startswith, without its argument parsing
            self.leases[str(ip)] = event.phone
        mac = event.phone
        phone = self.phones.get(mac) if mac is not None else None  # _phone_of's common case, inline
        if phone is None:
            phone = self._phone_of(event)
        if phone is None:
            if event.client and not report:
                self.unknown_clients[event.client.rsplit(":", 1)[0]] += 1
            return None
        phone.events += 1
        if phone.first_contact is None:
            phone.first_contact = when
        phone.last_contact = when
        if action == "fault":
            if phone.faults is None:
                phone.faults = Counter()
            phone.faults[str(event.detail.get("rule") or "unnamed")] += 1
            return phone
        self._advance(phone, event, ip, report)
        return phone

    def _advance(self, phone: PhoneStatus, event: Event, ip: Any, report: bool) -> None:
        if ip:
            phone.address = str(ip)
        step = milestone(event)
        stepped = False
        if step is not None and step not in phone.reached:
            stepped = True
            phone.reached += (step,)
            if step == "own profile" and "profile" not in phone.reached:
                phone.reached += ("profile",)
            phone.problem = None
        if step == "firmware" or (phone.firmware is None and event.request[-6:] == ".loads"):
            phone.firmware = event.request.rsplit("/", 1)[-1]
        if not report and event.result not in FINE:
            phone.problem = f"{event.service} {event.request} -> {event.answer} [{event.result}]"
        # the stage follows from `reached` (and having been heard): it can only change when a step
        # was added, or on the first event ("waiting"); `stage` and `reached` change nowhere else
        if stepped or phone.stage == "waiting":
            before = phone.stage
            phone.stage = _stage(phone.reached, heard=True)
            if phone.stage == "provisioned" and before != "provisioned":
                phone.provisioned_at = event.time

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """The documented JSON shape of `labkit status --json` and GET /api/status."""
        by_stage = Counter(p.stage for p in self.phones.values())
        return {
            "version": SHAPE_VERSION,
            "now": now,
            "events": self.events,
            "last_event": self.last_event,
            "stages": {stage: by_stage.get(stage, 0) for stage in STAGES},
            "phones": [p.to_dict() for p in sorted(self.phones.values(), key=lambda p: (p.name or p.mac))],
            "services": {name: c.to_dict() for name, c in sorted(self.services.items())},
            "faults_fired": dict(sorted(self.faults_fired.items())),
            "unknown_clients": dict(self.unknown_clients.most_common(20)),
            "leases_in_use": len(self.leases),
        }


def fold(events: Iterable[Event],
         phones: Mapping[str, tuple[str, str, str | None]] | None = None) -> LabStatus:
    """A status from scratch: `phones` maps each inventory MAC to (name, model, fixed address)."""
    status = LabStatus.of_phones((mac, *info) for mac, info in (phones or {}).items())
    for event in events:
        status.apply(event)
    return status
