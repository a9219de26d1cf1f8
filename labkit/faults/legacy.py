"""Transitional: the old single-module fault API, for services that do not yet take typed hooks
from their start context (issue 9). The schema now lives in `labkit.inventory.faults`, the pure
engine in `labkit.faults.engine`. The lead deletes this module once every service has moved.
"""

from __future__ import annotations

import fnmatch
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from labkit.inventory.faults import (
    DhcpFault,
    DnsFault,
    FaultError,
    FaultMatch,
    FaultRule,
    FaultWhen,
    HttpFault,
    Service,
    TftpFault,
    parse_cli_rule,
)

if TYPE_CHECKING:
    from labkit.faults.hooks import Faults

__all__ = ["DhcpFault", "DnsFault", "FaultEngine", "FaultError", "FaultHooks", "FaultMatch", "FaultRule",
           "FaultWhen", "Fired", "HttpFault", "Request", "Service", "TftpFault", "TypedHooksShim", "describe",
           "parse_cli_rule"]


@dataclass(frozen=True)
class Request:
    """What a service knows about a request when it asks for faults."""

    service: Service
    mac: str | None = None
    model: str | None = None
    group: str | None = None
    path: str | None = None
    name: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class Fired:
    label: str
    rule: FaultRule

    @property
    def action(self) -> Any:
        return self.rule.action


@dataclass
class FaultEngine:
    rules: list[FaultRule]
    started: float = 0.0
    seed: int | None = None
    counts: list[int] = field(default_factory=list)
    fired: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.rules)
        self.fired = [0] * len(self.rules)
        self.random = random.Random(self.seed)
        self.services = {rule.service for rule in self.rules}

    def __bool__(self) -> bool:
        return bool(self.rules)

    def wants(self, service: Service) -> bool:
        """Cheap check for hot paths: does any rule concern this service?"""
        return service in self.services

    def decide(self, request: Request, now: float) -> list[Fired]:
        out: list[Fired] = []
        for index, rule in enumerate(self.rules):
            if rule.service != request.service or not _matches(rule.match, request):
                continue
            self.counts[index] += 1
            if _applies(rule.when, self.counts[index], now - self.started, self.random):
                self.fired[index] += 1
                out.append(Fired(rule.label(index), rule))
        return out


def _pattern(pattern: str | None, value: str | None, *, case: bool = True) -> bool:
    if pattern is None:
        return True
    if value is None:
        return False
    if not case:
        return fnmatch.fnmatchcase(value.lower().rstrip("."), pattern.lower().rstrip("."))
    return fnmatch.fnmatchcase(value, pattern)


def _matches(match: FaultMatch, request: Request) -> bool:
    if match.mac is not None and match.mac != request.mac:
        return False
    if match.message is not None and match.message != request.message:
        return False
    return (_pattern(match.model, request.model) and _pattern(match.group, request.group)
            and _pattern(match.path, request.path) and _pattern(match.name, request.name, case=False))


def _applies(when: FaultWhen, count: int, elapsed: float, rng: random.Random) -> bool:
    if when.first is not None and count > when.first:
        return False
    if when.every is not None and count % when.every != 0:
        return False
    if when.after is not None and elapsed < when.after:
        return False
    if when.until is not None and elapsed >= when.until:
        return False
    return not (when.probability is not None and rng.random() >= when.probability)


def describe(action: Any) -> str:
    """A fault action in short: the fields it sets."""
    fields = {k: v for k, v in action.model_dump().items() if v not in (None, False, [], {})}
    return ", ".join(f"{k}={v}" for k, v in fields.items()) or "no-op"


@dataclass
class FaultHooks:
    """What services hold to ask for faults; every fault that fires becomes an event naming its rule."""

    engine: FaultEngine
    sink: Any  # EventSink
    phones: dict[str, tuple[str, str | None]]  # mac -> (model, group)
    clock: Any = None  # () -> float; time.time by default

    def check(self, service: Service, *, mac: str | None, client: str | None, request: str,
              path: str | None = None, name: str | None = None, message: str | None = None) -> list[Fired]:
        if not self.engine.wants(service):
            return []
        import time

        from labkit.events import make_event

        clock = self.clock or time.time
        model, group = self.phones.get(mac, (None, None)) if mac else (None, None)
        fired = self.engine.decide(Request(service, mac, model, group, path, name, message), clock())
        for hit in fired:
            self.sink(make_event(service, client, mac, "fault", request, describe(hit.action), "fault", clock,
                                 rule=hit.label))
        return fired


_SCHEMA: dict[str, Any] = {"dhcp": DhcpFault, "dns": DnsFault, "tftp": TftpFault, "http": HttpFault}


@dataclass(frozen=True)
class ShimFired:
    label: str
    action: Any  # the old pydantic action (DhcpFault, ...), as services not yet moved expect


class TypedHooksShim:
    """The old `FaultHooks.check(service, ...)` over the new typed hooks: one engine, one count per
    rule, the same events. For services that still expose a settable `.faults` attribute."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults

    def check(self, service: Service, *, mac: str | None, client: str | None, request: str,
              path: str | None = None, name: str | None = None,
              message: str | None = None) -> list[ShimFired]:
        hooks = getattr(self.faults, service)
        if hooks is None:
            return []
        fired = hooks.check(mac=mac, client=client, request=request, path=path, name=name, message=message)
        return [ShimFired(hit.label, _old_action(service, hit.action)) for hit in fired]


def _old_action(service: str, action: Any) -> Any:
    values = {}
    for name in action.__dataclass_fields__:
        value = getattr(action, name)
        values[name] = dict(value) if hasattr(value, "items") else list(value) if isinstance(value, tuple) \
            else value
    return _SCHEMA[service].model_construct(**values)
