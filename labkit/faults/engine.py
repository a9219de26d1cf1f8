"""The fault rule engine, pure: rules, the time since the lab started and a random source in,
the rules that fire out. It never reads a clock or a global random generator."""

from __future__ import annotations

import fnmatch
import random
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Generic, Literal, TypeVar

Service = Literal["dhcp", "dns", "tftp", "http", "acs"]
SERVICES: tuple[Service, ...] = ("dhcp", "dns", "tftp", "http", "acs")
A = TypeVar("A")


@dataclass(frozen=True, slots=True)
class Match:
    mac: str | None = None  # normalized aa:bb:cc:dd:ee:ff
    model: str | None = None  # shell pattern
    group: str | None = None  # shell pattern
    path: str | None = None  # shell pattern on the requested path, e.g. "/Cisco/*"
    name: str | None = None  # shell pattern on the DNS name asked for (case-insensitive)
    message: str | None = None  # DHCP: DISCOVER, REQUEST or INFORM


@dataclass(frozen=True, slots=True)
class When:
    first: int | None = None  # only the first N matching requests
    every: int | None = None  # every Nth matching request
    probability: float | None = None
    after: float | None = None  # seconds since the lab started
    until: float | None = None


@dataclass(frozen=True, slots=True)
class Rule(Generic[A]):
    label: str  # the rule's name, or "fault N (service)"
    service: Service
    action: A  # the protocol core's plain action type
    match: Match = Match()
    when: When = When()


@dataclass(frozen=True, slots=True)
class Query:
    """What a service knows about a request when it asks for faults."""

    service: Service
    mac: str | None = None
    model: str | None = None
    group: str | None = None
    path: str | None = None
    name: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class Fired(Generic[A]):
    label: str
    action: A


class FaultEngine:
    """Counts matching requests per rule and decides which rules fire."""

    def __init__(self, rules: Sequence[Rule[Any]], rng: random.Random) -> None:
        self.rules = tuple(rules)
        self.random = rng
        self.counts = [0] * len(self.rules)  # matching requests seen per rule
        self.fired = [0] * len(self.rules)  # times each rule fired
        self.services = frozenset(rule.service for rule in self.rules)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def wants(self, service: Service) -> bool:
        """Cheap check for hot paths: does any rule concern this service?"""
        return service in self.services

    def decide(self, query: Query, elapsed: float) -> list[Fired[Any]]:
        """The rules that fire for `query`, `elapsed` seconds after the lab started."""
        out: list[Fired[Any]] = []
        for index, rule in enumerate(self.rules):
            if rule.service != query.service or not matches(rule.match, query):
                continue
            self.counts[index] += 1
            if applies(rule.when, self.counts[index], elapsed, self.random):
                self.fired[index] += 1
                out.append(Fired(rule.label, rule.action))
        return out


def _pattern(pattern: str | None, value: str | None, *, case: bool = True) -> bool:
    if pattern is None:
        return True
    if value is None:
        return False
    if not case:
        return fnmatch.fnmatchcase(value.lower().rstrip("."), pattern.lower().rstrip("."))
    return fnmatch.fnmatchcase(value, pattern)


def matches(match: Match, query: Query) -> bool:
    if match.mac is not None and match.mac != query.mac:
        return False
    if match.message is not None and match.message != query.message:
        return False
    return (_pattern(match.model, query.model) and _pattern(match.group, query.group)
            and _pattern(match.path, query.path) and _pattern(match.name, query.name, case=False))


def applies(when: When, count: int, elapsed: float, rng: random.Random) -> bool:
    if when.first is not None and count > when.first:
        return False
    if when.every is not None and count % when.every != 0:
        return False
    if when.after is not None and elapsed < when.after:
        return False
    if when.until is not None and elapsed >= when.until:
        return False
    return not (when.probability is not None and rng.random() >= when.probability)


def describe(action: object) -> str:
    """A plain action dataclass in short: the fields it sets."""
    names = [f.name for f in fields(action)] if hasattr(action, "__dataclass_fields__") else []  # type: ignore[arg-type]
    parts = []
    for name in names:
        value = getattr(action, name)
        if value in (None, False, (), {}, []):
            continue
        if hasattr(value, "items"):
            value = dict(value)
        elif isinstance(value, tuple):
            value = list(value)  # as the inventory wrote it: omit=[150]
        parts.append(f"{name}={value}")
    return ", ".join(parts) or "no-op"
