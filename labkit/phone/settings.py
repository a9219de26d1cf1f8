"""What a phone's profile sets for its life after provisioning (pure): the resync schedule, the
error retries, upgrades and the User-Agent, read from the flat-profile parameters with the
chapter's defaults (reference §3.3)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from labkit import macros

DEFAULT_PERIODIC = 3600.0  # Resync_Periodic
DEFAULT_RANDOM_DELAY = 2.0  # Resync_Random_Delay, in the firmware's unit
DEFAULT_AT_RANDOM_DELAY = 600.0  # Resync_At_Random_Delay, seconds
DEFAULT_UPGRADE_RETRY = 3600.0  # Upgrade_Error_Retry_Delay
RULE_NAMES = ("Profile_Rule", "Profile_Rule_B", "Profile_Rule_C", "Profile_Rule_D")


def _yes(value: str | None, default: bool) -> bool:
    if value is None or not value.strip():
        return default
    return value.strip().lower() in ("yes", "true", "1", "on")


def _number(value: str | None, default: float) -> float:
    try:
        return float(value) if value is not None and value.strip() else default
    except ValueError:
        return default  # a value the phone cannot read leaves the default [I]


def delay_list(value: str | None, default: tuple[float, ...]) -> tuple[float, ...]:
    """`60,120,240`: the delays in order, the last one repeating (reference §3.3)."""
    if value is None or not value.strip():
        return default
    try:
        found = tuple(float(part) for part in value.split(",") if part.strip())
    except ValueError:
        return default
    return found or default


def pick(delays: tuple[float, ...], index: int) -> float:
    """The `index`-th delay of a list whose last element repeats."""
    return delays[min(index, len(delays) - 1)] if delays else 60.0


@dataclass(frozen=True)
class Periodic:
    """Resync_Periodic: `N` seconds, `a,b,c` (successive intervals, the last repeating) or `N+R`
    (N plus a random 0..R). 0 disables periodic resyncs. The `a,b,c` and `N+R` readings are [I]:
    the chapter names the forms, not their meaning."""

    intervals: tuple[float, ...]
    extra: float = 0.0

    @classmethod
    def parse(cls, value: str | None) -> Periodic:
        text = (value or "").strip()
        if not text:
            return cls((DEFAULT_PERIODIC,))
        base, _, extra = text.partition("+")
        return cls(delay_list(base, (DEFAULT_PERIODIC,)), _number(extra, 0.0))

    def interval(self, index: int, rng: random.Random) -> float | None:
        first = pick(self.intervals, index)
        if first <= 0:
            return None
        return first + (rng.uniform(0, self.extra) if self.extra > 0 else 0.0)


def resync_at(value: str | None) -> tuple[int, int] | None:
    """Resync_At `HHmm` (or `HH:mm`): the daily resync time, or None."""
    text = (value or "").strip().replace(":", "")
    if len(text) != 4 or not text.isdigit():
        return None
    hours, minutes = int(text[:2]), int(text[2:])
    return (hours, minutes) if hours < 24 and minutes < 60 else None


def next_daily(now: float, at: tuple[int, int]) -> float:
    """The next phone-clock instant (UTC seconds) at HH:mm, strictly after `now`."""
    day = 86400.0
    offset = at[0] * 3600 + at[1] * 60
    start = now - now % day + offset
    return start if start > now else start + day


@dataclass(frozen=True)
class LifeSettings:
    periodic: Periodic
    random_delay: float  # seconds (the unit already applied)
    at: tuple[int, int] | None
    at_random_delay: float
    error_delays: tuple[float, ...]
    fails_on_fnf: bool
    upgrade_enable: bool
    upgrade_retry: float
    resync_on_reset: bool
    user_agent: str | None  # HTTP_User_Agent_Name, macros expanded; None: the firmware's own

    @classmethod
    def of(cls, params: Mapping[str, str], identity: Mapping[str, str], *, unit: float,
           default_delays: tuple[float, ...]) -> LifeSettings:
        ua = (params.get("HTTP_User_Agent_Name") or "").strip()
        return cls(
            periodic=Periodic.parse(params.get("Resync_Periodic")),
            # "Resync Random Delay": seconds in S4 (2017), units of 20 s in S5 and S27 (reference
            # §3.3): the unit is the firmware generation's (labkit.phone.traits)
            random_delay=_number(params.get("Resync_Random_Delay"), DEFAULT_RANDOM_DELAY) * unit,
            at=resync_at(params.get("Resync_At")),
            at_random_delay=_number(params.get("Resync_At_Random_Delay"), DEFAULT_AT_RANDOM_DELAY),
            error_delays=delay_list(params.get("Resync_Error_Retry_Delay"), default_delays),
            # "Resync_Fails_On_FNF ... When it is set to No, the phone accepts a file-not-found
            # response from the server as a successful resync" (reference §3.3: default Yes)
            fails_on_fnf=_yes(params.get("Resync_Fails_On_FNF"), True),
            upgrade_enable=_yes(params.get("Upgrade_Enable"), True),
            upgrade_retry=_number(params.get("Upgrade_Error_Retry_Delay"), DEFAULT_UPGRADE_RETRY),
            resync_on_reset=_yes(params.get("Resync_On_Reset"), True),
            user_agent=macros.expand(ua, identity) if ua else None,
        )

    def next_resync(self, now: float, index: int, rng: random.Random) -> float | None:
        """When the next scheduled resync is due. Resync_At overrides Resync_Periodic (reference
        §3.3); "Resync Periodic and Resync Random Delay determine subsequent requests" (S1,
        category A), so each periodic resync is spread by 0..Resync_Random_Delay."""
        if self.at is not None:
            return next_daily(now, self.at) + rng.uniform(0, max(0.0, self.at_random_delay))
        interval = self.periodic.interval(index, rng)
        if interval is None:
            return None
        return now + interval + rng.uniform(0, max(0.0, self.random_delay))
