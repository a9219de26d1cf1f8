"""Fault rules: make a service misbehave on purpose, per phone, to reproduce a field bug.

A rule has a match (MAC, model, phone group, file path pattern, DNS name, service), one action
for one service, and when it applies (the first N times, every Nth time, with a probability,
during a time window since the lab started). The engine is pure: services ask it with what
they know about a request and get back the rules that fire, each one counted.
"""

from __future__ import annotations

import fnmatch
import random
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from labkit.errors import LabkitError
from labkit.inventory.types import HexBytes, Mac, Strict, Text

Service = Literal["dhcp", "dns", "tftp", "http"]


class FaultMatch(Strict):
    mac: Mac | None = None
    model: Text | None = None
    group: Text | None = None
    path: Text | None = None  # shell pattern on the requested path, e.g. "/Cisco/*"
    name: Text | None = None  # shell pattern on the DNS name asked for
    message: Literal["DISCOVER", "REQUEST", "INFORM"] | None = None  # DHCP: which request


class FaultWhen(Strict):
    first: Annotated[int, Field(ge=1)] | None = None  # only the first N matching requests
    every: Annotated[int, Field(ge=1)] | None = None  # every Nth matching request
    probability: Annotated[float, Field(ge=0, le=1)] | None = None
    after: Annotated[float, Field(ge=0)] | None = None  # seconds since the lab started
    until: Annotated[float, Field(ge=0)] | None = None


class DhcpFault(Strict):
    drop: Literal["offer", "ack", "any"] | None = None
    delay: Annotated[float, Field(ge=0, le=300)] | None = None
    nak: bool = False
    omit: list[Annotated[int, Field(ge=1, le=254)]] = Field(default_factory=list)
    replace: dict[Annotated[int, Field(ge=1, le=254)], HexBytes] = Field(default_factory=dict)
    malformed: Annotated[int, Field(ge=1, le=254)] | None = None  # this option's length overruns


class DnsFault(Strict):
    rcode: Literal["SERVFAIL", "NXDOMAIN", "REFUSED"] | None = None
    drop: bool = False  # no answer at all
    srv_port: Annotated[int, Field(ge=0, le=65535)] | None = None
    srv_target: Text | None = None
    ttl0: bool = False
    truncate: bool = False


class TftpFault(Strict):
    error: Annotated[int, Field(ge=0, le=8)] | None = None
    drop_oack: bool = False
    drop_block: Annotated[int, Field(ge=1)] | None = None  # the first transmission of block N
    duplicate_block: Annotated[int, Field(ge=1)] | None = None
    stall_after: Annotated[int, Field(ge=0)] | None = None  # blocks sent, then silence
    wrong_tsize: Annotated[int, Field(ge=0)] | None = None
    refuse_options: bool = False


class HttpFault(Strict):
    status: Annotated[int, Field(ge=100, le=599)] | None = None
    location: Text | None = None  # for 301/302
    authenticate: Text | None = None  # WWW-Authenticate for 401/407
    delay: Annotated[float, Field(ge=0, le=300)] | None = None
    slow: Annotated[int, Field(ge=1)] | None = None  # body bytes per second
    truncate: Annotated[int, Field(ge=0)] | None = None  # send only this many bytes
    wrong_length: Annotated[int, Field(ge=0)] | None = None  # announce this Content-Length
    corrupt: bool = False  # flip bytes in the body
    wrong_key: Text | None = None  # re-encrypt the profile with this key


class FaultRule(Strict):
    name: Text | None = None
    match: FaultMatch = Field(default_factory=FaultMatch)
    when: FaultWhen = Field(default_factory=FaultWhen)
    dhcp: DhcpFault | None = None
    dns: DnsFault | None = None
    tftp: TftpFault | None = None
    http: HttpFault | None = None

    @model_validator(mode="after")
    def _one_service(self) -> FaultRule:
        given = [s for s in ("dhcp", "dns", "tftp", "http") if getattr(self, s) is not None]
        if len(given) != 1:
            raise ValueError("a fault rule takes exactly one of dhcp, dns, tftp, http")
        return self

    @property
    def service(self) -> Service:
        return next(s for s in ("dhcp", "dns", "tftp", "http") if getattr(self, s) is not None)  # type: ignore[return-value]

    @property
    def action(self) -> Any:
        return getattr(self, self.service)

    def label(self, index: int) -> str:
        return self.name or f"fault {index + 1} ({self.service})"


class FaultError(LabkitError):
    """A fault rule given on the command line that does not read."""


def parse_cli_rule(text: str) -> FaultRule:
    """`--fault '{match: {mac: ...}, http: {status: 404}, when: {first: 2}}'` (YAML flow syntax)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FaultError(f"--fault {text!r}: not YAML: {exc}") from None
    try:
        return FaultRule.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise FaultError(f"--fault {text!r}: {where}: {first['msg']}") from None


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
