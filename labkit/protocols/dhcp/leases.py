"""The lease table the DHCP core decides with (pure, in memory).

Every change is also queued as a LeaseChange; the transport writes the queue to SQLite in one
transaction and only then sends the replies that depend on it, so an ACK never leaves before
its binding is durable. One address is never bound to two MACs: `by_number` is the proof.

The per-request tables are keyed by the address's integer (`ip._ip`), not the IPv4Address: an
IPv4Address hashes in Python (hex, then a string hash), an int in C; that was ~8 Python calls per
DORA. `by_ip` is the same table keyed by address, made on demand (tests, tools).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address
from typing import Literal

LeaseState = Literal["bound", "released", "declined"]
# at most this many addresses are quarantined after a DHCPDECLINE; beyond it the oldest
# quarantine ends first (a client that declines in a loop cannot lock the whole pool)
MAX_QUARANTINE = 256


@dataclass(frozen=True)
class Lease:
    mac: str
    ip: IPv4Address
    state: LeaseState
    expires: float  # epoch seconds; for "declined", the end of the quarantine
    hostname: str | None = None
    vendor_class: str | None = None
    phone: str | None = None  # the inventory phone's name, when it is one

    def active(self, now: float) -> bool:
        return self.state == "bound" and self.expires > now


@dataclass(frozen=True)
class LeaseChange:
    """One row to write: `lease` replaces the row of its MAC (declines are keyed by address)."""

    lease: Lease
    delete: bool = False


def _factories() -> tuple[Callable[..., Lease], Callable[[Lease], LeaseChange]]:
    """Lease(...) and LeaseChange(lease) for the binding hot path, filled in one step each instead of
    the frozen __init__'s object.__setattr__ per field; the constructors themselves if the classes
    ever stop being the plain frozen dataclasses this relies on."""
    lease_fields = ("mac", "ip", "state", "expires", "hostname", "vendor_class", "phone")
    plain = (tuple(Lease.__dataclass_fields__) == lease_fields and "__slots__" not in vars(Lease)
             and tuple(LeaseChange.__dataclass_fields__) == ("lease", "delete")
             and "__slots__" not in vars(LeaseChange))
    if not plain:
        return Lease, LeaseChange
    new, set_attribute = object.__new__, object.__setattr__

    def lease(mac: str, ip: IPv4Address, state: LeaseState, expires: float, hostname: str | None,
              vendor_class: str | None, phone: str | None) -> Lease:
        made = new(Lease)
        set_attribute(made, "__dict__", {"mac": mac, "ip": ip, "state": state, "expires": expires,
                                         "hostname": hostname, "vendor_class": vendor_class, "phone": phone})
        return made

    def change(lease: Lease) -> LeaseChange:
        made = new(LeaseChange)
        set_attribute(made, "__dict__", {"lease": lease, "delete": False})
        return made

    return lease, change


_lease, _change = _factories()


@dataclass
class LeaseTable:
    by_mac: dict[str, Lease] = field(default_factory=dict)
    by_number: dict[int, Lease] = field(default_factory=dict)  # int(lease.ip) -> lease
    declined: dict[IPv4Address, float] = field(default_factory=dict)  # address -> quarantine end
    offers: dict[str, tuple[IPv4Address, float]] = field(default_factory=dict)  # mac -> (ip, until)
    offered: dict[int, tuple[str, float]] = field(default_factory=dict)  # int(ip) -> (mac, until)
    pending: list[LeaseChange] = field(default_factory=list)
    max_declined: int = MAX_QUARANTINE

    @classmethod
    def from_rows(cls, rows: list[Lease], *, max_declined: int = MAX_QUARANTINE) -> LeaseTable:
        """The table as stored. Quarantines beyond the bound (the oldest first) are dropped here
        and their rows queued for deletion, so memory and disk agree after a restart."""
        table = cls(max_declined=max_declined)
        for lease in sorted((r for r in rows if r.state == "declined"), key=lambda r: r.expires):
            table.declined[lease.ip] = lease.expires
        for lease in rows:
            if lease.state != "declined":
                table._put(lease)
        table._bound_quarantine()
        return table

    @property
    def by_ip(self) -> dict[IPv4Address, Lease]:
        """The leases by address (a copy, made on demand: the core uses `by_number`)."""
        return {lease.ip: lease for lease in self.by_number.values()}

    def lease_at(self, ip: IPv4Address) -> Lease | None:
        return self.by_number.get(ip._ip)  # type: ignore[attr-defined]  # int(ip) without a call

    def _put(self, lease: Lease) -> None:
        by_number, number = self.by_number, lease.ip._ip  # type: ignore[attr-defined]
        old = self.by_mac.get(lease.mac)
        if old is not None and by_number.get(old.ip._ip) is old:  # type: ignore[attr-defined]
            del by_number[old.ip._ip]  # type: ignore[attr-defined]
        holder = by_number.get(number)
        if holder is not None and holder.mac != lease.mac:
            # the address moves to a new MAC only once its old lease is over: drop the old record
            del self.by_mac[holder.mac]
            self.pending.append(LeaseChange(holder, delete=True))
        self.by_mac[lease.mac] = lease
        by_number[number] = lease

    def holder(self, ip: IPv4Address, now: float) -> str | None:
        """The MAC that may not lose `ip` now: an active lease or an unexpired offer."""
        number = ip._ip  # type: ignore[attr-defined]
        lease = self.by_number.get(number)
        if lease is not None and lease.active(now):
            return lease.mac
        offer = self.offered.get(number)
        if offer is not None and offer[1] > now:
            return offer[0]
        return None

    def is_quarantined(self, ip: IPv4Address, now: float) -> bool:
        return self.declined.get(ip, 0.0) > now

    def offer(self, mac: str, ip: IPv4Address, until: float) -> None:
        self.drop_offer(mac)
        self.offers[mac] = (ip, until)
        self.offered[ip._ip] = (mac, until)  # type: ignore[attr-defined]

    def drop_offer(self, mac: str) -> None:
        previous = self.offers.pop(mac, None)
        if previous is not None:
            number = previous[0]._ip  # type: ignore[attr-defined]
            held = self.offered.pop(number, None)
            if held is not None and held[0] != mac:
                self.offered[number] = held  # another client's offer of that address stays

    def bind(self, mac: str, ip: IPv4Address, expires: float, *, hostname: str | None,
             vendor_class: str | None, phone: str | None) -> Lease:
        lease = _lease(mac, ip, "bound", expires, hostname, vendor_class, phone)
        self._put(lease)
        self.drop_offer(mac)
        if self.declined:
            self.declined.pop(ip, None)
        self.pending.append(_change(lease))
        return lease

    def release(self, mac: str, now: float) -> Lease | None:
        lease = self.by_mac.get(mac)
        if lease is None or lease.state != "bound":
            return None
        released = replace(lease, state="released", expires=now)
        self._put(released)
        self.pending.append(LeaseChange(released))
        return released

    def decline(self, mac: str, ip: IPv4Address, until: float) -> None:
        """The client found `ip` in use: quarantine it and forget the client's binding to it.
        The caller has checked that `mac` holds `ip` and that the server manages it."""
        self.declined.pop(ip, None)
        self.declined[ip] = until  # insertion order: oldest quarantine first
        self._bound_quarantine()
        self.drop_offer(mac)
        lease = self.by_mac.get(mac)
        if lease is not None and lease.ip == ip:
            del self.by_mac[mac]
            if self.by_number.get(ip._ip) is lease:  # type: ignore[attr-defined]
                del self.by_number[ip._ip]  # type: ignore[attr-defined]
            self.pending.append(LeaseChange(lease, delete=True))
        self.pending.append(LeaseChange(Lease(f"declined {ip}", ip, "declined", until)))

    def end_quarantine(self, ip: IPv4Address) -> None:
        until = self.declined.pop(ip, None)
        if until is not None:
            self.pending.append(LeaseChange(Lease(f"declined {ip}", ip, "declined", until), delete=True))

    def forget_quarantines(self, keep: Callable[[IPv4Address, float], bool]) -> None:
        """End every quarantine `keep(ip, until)` refuses (expired, or not an address we manage)."""
        for ip, until in list(self.declined.items()):
            if not keep(ip, until):
                self.end_quarantine(ip)

    def _bound_quarantine(self) -> None:
        while len(self.declined) > self.max_declined:
            self.end_quarantine(next(iter(self.declined)))

    def take_pending(self) -> list[LeaseChange]:
        changes, self.pending = self.pending, []
        return changes
