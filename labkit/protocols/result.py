"""One result vocabulary for every protocol core, in the spirit of h11's events.

A core's handler returns a `Result`: the datagrams to send, the timers to set or cancel, and
the facts for the event log. Transports only move the datagrams and keep the timers; one
function (`labkit.events.events_from`) turns facts into Events for every service. Nothing here
knows about sockets, clocks or the inventory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

NO_DETAIL: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Datagram:
    data: bytes
    to: tuple[str, int] | None = None  # None: back to the peer the request came from
    l2_unicast: bool = False  # DHCP: deliver as an Ethernet frame to chaddr (no address yet)


@dataclass(frozen=True, slots=True)
class Timer:
    """Set (after = seconds from now) or cancel (after = None) the core's timer named `key`."""

    after: float | None
    key: str = "retransmit"


@dataclass(frozen=True, slots=True)
class Fact:
    """What the event log says about one step: the request in short, the answer, the result."""

    action: str  # "query", "rrq", "discover", "get", ...
    request: str
    answer: str
    result: str  # "ok", or what went wrong: "nxdomain", "not-found", "malformed", ...
    phone: str | None = None  # the inventory phone's MAC when the core knows it
    detail: Mapping[str, Any] = field(default_factory=lambda: NO_DETAIL)


@dataclass(frozen=True, slots=True)
class Result:
    send: tuple[Datagram, ...] = ()
    timers: tuple[Timer, ...] = ()
    facts: tuple[Fact, ...] = ()
    done: bool = False  # the session this result belongs to is over (no timers stay set)


NOTHING = Result()


def reply(data: bytes, fact: Fact | None = None, *, to: tuple[str, int] | None = None) -> Result:
    """The common case: one datagram back, one fact."""
    return Result((Datagram(data, to),), (), (fact,) if fact is not None else ())


def only(fact: Fact, *, done: bool = False) -> Result:
    """Nothing to send, one fact to log."""
    return Result((), (), (fact,), done)
