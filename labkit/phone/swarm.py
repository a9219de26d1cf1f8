"""Which phones to boot, and what a swarm's results add up to (summary table, JSON)."""

from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from labkit.inventory.model import Inventory
from labkit.phone.core import Outcome, PhoneConfig
from labkit.phone.traits import generation_for


def _generation(model: str, generations: dict[str, str] | None) -> dict[str, Any]:
    """The `generation` setting for a phone of `model` (`generations`: model or `*` -> name)."""
    return {"generation": generation_for(model, generations)} if generations else {}


def inventory_configs(inv: Inventory, *, only: str | None = None, generations: dict[str, str] | None = None,
                      **settings: Any) -> list[PhoneConfig]:
    phones = [p for p in inv.phones if only is None or p.mac == only]
    return [PhoneConfig(p.mac, p.model, p.serial, **settings, **_generation(p.model, generations))
            for p in phones]


def generated_configs(inv: Inventory, count: int, *, generations: dict[str, str] | None = None,
                      **settings: Any) -> list[PhoneConfig]:
    """`count` phones the inventory does not list (locally administered MACs), models in turn."""
    models = list(inv.models) or ["CP-8851-3PCC"]
    configs = []
    for n in range(count):
        mac = f"02:4c:4b:{(n >> 16) & 0xFF:02x}:{(n >> 8) & 0xFF:02x}:{n & 0xFF:02x}"
        model = models[n % len(models)]
        configs.append(PhoneConfig(mac, model, f"SIM{n:07d}", **settings, **_generation(model, generations)))
    return configs


_URL = re.compile(r"\b\w+://\S+")


def _reason_key(outcome: Outcome) -> str:
    """A failure's reason with URLs left out, so that phones that failed alike group together."""
    text = f"{outcome.reason}: {outcome.last_error}" if outcome.last_error else str(outcome.reason)
    return _URL.sub("<url>", text)


def time_to_provisioned(outcome: Outcome) -> float | None:
    if not outcome.provisioned or not outcome.timeline:
        return None
    end = outcome.provisioned_at if outcome.provisioned_at is not None else outcome.timeline[-1].time
    return end - outcome.timeline[0].time


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


@dataclass(frozen=True)
class Summary:
    total: int
    provisioned: int
    failed: int
    p50: float | None
    p95: float | None
    maximum: float | None
    failures: dict[str, int]
    resyncs: dict[str, int] = field(default_factory=dict)  # MAC -> resyncs after provisioning
    resync_failures: int = 0
    customization: dict[str, int] = field(default_factory=dict)  # state -> phones in it

    @property
    def resync_spread(self) -> tuple[int, float, int] | None:
        """Resyncs per phone: min, median, max (None when no phone lived past its boot)."""
        counts = list(self.resyncs.values())
        if not any(counts):
            return None
        return min(counts), statistics.median(counts), max(counts)

    @classmethod
    def of(cls, outcomes: list[Outcome]) -> Summary:
        times = [t for o in outcomes if (t := time_to_provisioned(o)) is not None]
        failures = Counter(_reason_key(o) for o in outcomes if not o.provisioned)
        return cls(len(outcomes), sum(o.provisioned for o in outcomes),
                   sum(not o.provisioned for o in outcomes),
                   statistics.median(times) if times else None,
                   _percentile(times, 0.95) if times else None, max(times) if times else None,
                   dict(failures.most_common()), {o.mac: o.resyncs for o in outcomes},
                   sum(o.resync_failures for o in outcomes),
                   dict(Counter(o.customization for o in outcomes).most_common()))


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    return {
        "mac": outcome.mac,
        "provisioned": outcome.provisioned,
        "reason": outcome.reason,
        "last_error": outcome.last_error,
        "profile_source": outcome.profile_source,
        "firmware": outcome.firmware,
        "sinkhole_hit": outcome.sinkhole_hit,
        "ip": outcome.lease.ip if outcome.lease else None,
        "time_to_provisioned": time_to_provisioned(outcome),
        "customization": outcome.customization,
        "resyncs": outcome.resyncs,
        "resync_failures": outcome.resync_failures,
        "upgrades": outcome.upgrades,
        "moved": dict(outcome.moved),
        "timeline": [{"time": s.time, "kind": s.kind, "detail": s.detail, "ok": s.ok}
                     for s in outcome.timeline],
    }
