"""What the ACS remembers between sessions, bounded: each CPE's last Inform (its Connection
Request URL), the operator's queued requests per CPE, which planned actions it already got, and
the last sessions with every exchange (for `labkit acs sessions`). No I/O.

A CPE is known by its MAC when the ACS can tell it (the inventory's serial numbers, a
`...MACAddress` parameter in its Inform, or the address the lab gave it), else by
`OUI-SerialNumber` (TR-069's device identity).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from labkit.errors import LabkitError
from labkit.macros import normalize_mac
from labkit.plan.acs import AcsPlan, AcsRpc, FactoryReset, Reboot
from labkit.protocols.cwmp import rpc
from labkit.protocols.result import Fact
from labkit.services.acs_rpcs import from_plan

SESSIONS_KEPT = 200  # finished sessions kept for `labkit acs sessions`
EXCHANGES_KEPT = 200  # exchanges kept per session (a longer session keeps its first ones)
CPES_KEPT = 4096  # CPEs remembered (the least recently heard from is forgotten first)
BOOTSTRAP = "0 BOOTSTRAP"


class QueueFull(LabkitError):
    """The CPE already has as many requests waiting as the ACS's limits allow."""


@dataclass
class Cpe:
    key: str  # the MAC, or OUI-SerialNumber
    mac: str | None
    device: dict[str, str] = field(default_factory=dict)  # manufacturer, oui, product_class, serial
    connection_request_url: str | None = None
    last_inform: float = 0.0
    last_events: tuple[str, ...] = ()
    applied: tuple[AcsRpc, ...] | None = None  # the planned actions last queued for it
    client: str | None = None  # address:port of its last session

    def to_dict(self, pending: int) -> dict[str, Any]:
        return {"key": self.key, "mac": self.mac, "device": self.device,
                "connection_request_url": self.connection_request_url, "last_inform": self.last_inform,
                "last_events": list(self.last_events), "pending": pending, "client": self.client}


@dataclass
class SessionRecord:
    id: str
    client: str
    started: float
    key: str | None = None
    mac: str | None = None
    events: tuple[str, ...] = ()
    ended: float | None = None
    outcome: str = "open"  # "ok" (204), "fault-8005", "dropped", "timeout", "malformed", ...
    exchanges: list[dict[str, Any]] = field(default_factory=list)

    def add(self, when: float, fact: Fact) -> None:
        if len(self.exchanges) < EXCHANGES_KEPT:
            self.exchanges.append({"time": when, "action": fact.action, "request": fact.request,
                                   "answer": fact.answer, "result": fact.result})

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "key": self.key, "mac": self.mac, "client": self.client,
                "started": self.started, "ended": self.ended, "events": list(self.events),
                "outcome": self.outcome, "exchanges": list(self.exchanges)}


def identify(inform: rpc.Inform, serials: Mapping[str, str], phone_at: Callable[[str], str | None],
             address: str) -> tuple[str, str | None]:
    """(key, MAC or None) of the CPE that sent `inform` from `address`."""
    device = inform.device_id
    mac = serials.get(device.serial_number)
    if mac is None:
        for param in inform.parameters:
            if param.name.endswith("MACAddress"):
                try:
                    mac = normalize_mac(param.value.text())
                except (LabkitError, ValueError):
                    continue
                break
    if mac is None:
        mac = phone_at(address)
    return (mac, mac) if mac else (f"{device.oui}-{device.serial_number}", None)


class AcsState:
    def __init__(self, queue_limit: int) -> None:
        self.queue_limit = queue_limit
        self.cpes: OrderedDict[str, Cpe] = OrderedDict()
        self.queues: dict[str, deque[rpc.Rpc]] = {}
        self.history: deque[SessionRecord] = deque(maxlen=SESSIONS_KEPT)

    def queue(self, key: str, request: rpc.Rpc) -> int:
        """Keep `request` for the CPE's next session; how many wait now."""
        waiting = self.queues.setdefault(key, deque())
        if len(waiting) >= self.queue_limit:
            raise QueueFull(f"{key} already has {len(waiting)} requests waiting (acs.limits.queue)")
        waiting.append(request)
        return len(waiting)

    def pending(self, key: str) -> int:
        return len(self.queues.get(key, ()))

    def take(self, key: str) -> list[rpc.Rpc]:
        return list(self.queues.pop(key, ()))

    def heard(self, key: str, mac: str | None, inform: rpc.Inform, when: float, client: str,
              url_name: str) -> Cpe:
        """Remember the CPE's Inform (its Connection Request URL among its parameters)."""
        cpe = self.cpes.pop(key, None) or Cpe(key, mac)
        self.cpes[key] = cpe
        while len(self.cpes) > CPES_KEPT:
            forgotten, _ = self.cpes.popitem(last=False)
            self.queues.pop(forgotten, None)
        device = inform.device_id
        cpe.device = {"manufacturer": device.manufacturer, "oui": device.oui,
                      "product_class": device.product_class, "serial": device.serial_number}
        cpe.last_inform, cpe.last_events, cpe.client = when, inform.event_codes(), client
        for param in inform.parameters:
            if param.name == url_name:
                cpe.connection_request_url = param.value.text() or None
        return cpe

    def planned(self, cpe: Cpe, plan: AcsPlan, events: Iterable[str]) -> list[rpc.Rpc]:
        """The plan's actions when they are due: the CPE's first session since the lab started
        (or since a reload changed them), and again after a BOOTSTRAP Inform, but a reboot or
        factory reset only once per plan (a factory reset comes back as BOOTSTRAP)."""
        actions = plan.actions.get(cpe.mac or "", ()) if cpe.mac else ()
        if not actions:
            return []
        if cpe.applied == actions:
            if BOOTSTRAP not in events:
                return []
            actions = tuple(a for a in actions if not isinstance(a, Reboot | FactoryReset))
        cpe.applied = plan.actions[cpe.mac or ""]
        return [from_plan(action) for action in actions]

    def find(self, mac_or_key: str) -> Cpe | None:
        return self.cpes.get(mac_or_key)

    def sessions(self, key: str | None = None) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self.history if key is None or key in (s.key, s.mac)]
