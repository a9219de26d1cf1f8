"""What changed between two Plans, for `labkit reload`: pure, no I/O.

`diff_plans(old, new)` names the phones added and removed, the DHCP option codes changed per
client (a phone by MAC, the pool, a vendor class), the served files added, removed and
changed, the DNS zones changed, the fault rules added, removed and changed, and the parts a
running lab cannot take without a restart (listening endpoints, TLS credentials).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from labkit.plan.build import Plan
from labkit.plan.dhcp import OptionSet

RESTART_ONLY = ("listen", "interface", "kit_address", "tls")  # fields a running lab keeps as they were


@dataclass(frozen=True)
class Changed:
    """Keys added, removed and changed between two mappings (each sorted)."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def as_dict(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in (("added", self.added), ("removed", self.removed),
                                        ("changed", self.changed)) if v}

    def text(self, noun: str) -> str:
        parts = [f"{len(v)} {word} ({', '.join(v)})" for word, v in
                 (("added", self.added), ("removed", self.removed), ("changed", self.changed)) if v]
        return f"{noun}: " + "; ".join(parts)


def changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> Changed:
    return Changed(tuple(sorted(set(new) - set(old))), tuple(sorted(set(old) - set(new))),
                   tuple(sorted(k for k in set(old) & set(new) if old[k] != new[k])))


def option_codes(old: OptionSet, new: OptionSet) -> tuple[int, ...]:
    """The option codes whose value, presence or forcing differs."""
    before, after = old.options, new.options
    return tuple(sorted(code for code in set(before) | set(after)
                        if (p := before.get(code)) is None or (q := after.get(code)) is None
                        or (p.payload, p.forced) != (q.payload, q.forced)))


@dataclass(frozen=True)
class PlanDiff:
    phones: Changed = Changed()  # by MAC; "changed": anything of the phone's entry differs
    options: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # client -> codes changed
    files: Changed = Changed()
    zones: Changed = Changed()
    faults: Changed = Changed()  # by rule label
    acs: Changed = Changed()  # by MAC: the phones whose planned ACS RPCs differ
    services: tuple[str, ...] = ()  # services whose own config changed (taken live)
    restart_only: tuple[str, ...] = ()  # what differs but a running lab keeps (endpoints, TLS)

    def __bool__(self) -> bool:
        return bool(self.phones or self.options or self.files or self.zones or self.faults
                    or self.acs or self.services or self.restart_only)

    def lines(self) -> list[str]:
        """The change in a few lines, for people."""
        out = [part.text(noun) for noun, part in (("phones", self.phones), ("files", self.files),
                                                  ("zones", self.zones), ("faults", self.faults),
                                                  ("ACS actions", self.acs)) if part]
        out += [f"options of {who}: {', '.join(str(c) for c in codes)}"
                for who, codes in self.options.items()]
        if self.services:
            out.append(f"service settings changed: {', '.join(self.services)}")
        if self.restart_only:
            out.append(f"not applied until a restart (kept as they were): {', '.join(self.restart_only)}")
        return out or ["nothing changed"]

    def as_dict(self) -> dict[str, Any]:
        """The change as JSON data (an event's detail)."""
        out: dict[str, Any] = {noun: part.as_dict() for noun, part in
                               (("phones", self.phones), ("files", self.files), ("zones", self.zones),
                                ("faults", self.faults), ("acs", self.acs)) if part}
        if self.options:
            out["options"] = {who: list(codes) for who, codes in self.options.items()}
        if self.services:
            out["services"] = list(self.services)
        if self.restart_only:
            out["restart_only"] = list(self.restart_only)
        return out


def _option_changes(old: Plan, new: Plan) -> dict[str, tuple[int, ...]]:
    """Codes changed per client present in both plans: each phone, the pool, each class."""
    out: dict[str, tuple[int, ...]] = {}
    for mac in sorted(set(old.phones) & set(new.phones)):
        if codes := option_codes(old.phones[mac].options, new.phones[mac].options):
            out[mac] = codes
    if codes := option_codes(old.pool_options, new.pool_options):
        out["pool"] = codes
    for match in sorted(set(old.class_options) & set(new.class_options)):
        if codes := option_codes(old.class_options[match], new.class_options[match]):
            out[f"class {match}"] = codes
    return out


def _services(old: Plan, new: Plan) -> tuple[str, ...]:
    names = ("dhcp", "dns", "tftp", "http", "https", "proxy", "acs")
    return tuple(name for name in names if getattr(old, name) != getattr(new, name))


def diff_plans(old: Plan, new: Plan) -> PlanDiff:
    """What `new` changes from `old`."""
    return PlanDiff(
        phones=changed({m: p.phone for m, p in old.phones.items()},
                       {m: p.phone for m, p in new.phones.items()}),
        options=_option_changes(old, new),
        files=changed(old.files, new.files),
        zones=changed(old.zones, new.zones),
        faults=changed({r.label: r for r in old.faults}, {r.label: r for r in new.faults}),
        acs=changed(old.acs.actions, new.acs.actions),
        services=_services(old, new),
        restart_only=tuple(name for name in RESTART_ONLY if getattr(old, name) != getattr(new, name))
        + (("acs.https",) if old.acs.https != new.acs.https else ()),  # the ACS's listener keeps its TLS
    )
