"""Typed per-service fault hooks: what a service holds to ask for faults. Every fault that fires
becomes an event naming its rule. Handed to services in their start context (`Faults`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from labkit.events import EventSink, make_event
from labkit.faults.engine import FaultEngine, Fired, Query, Service, describe
from labkit.protocols.cwmp.faults import AcsFaultAction
from labkit.protocols.dhcp.faults import DhcpFaultAction
from labkit.protocols.dns.faults import DnsFaultAction
from labkit.protocols.http_faults import HttpFaultAction
from labkit.protocols.tftp.faults import TftpFaultAction

A = TypeVar("A")


class ServiceFaults(Generic[A]):
    """One service's view of the engine. `check` returns the fired rules' actions, typed."""

    def __init__(self, service: Service, engine: FaultEngine, sink: EventSink,
                 phones: Mapping[str, tuple[str, str | None]], *, started: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.service = service
        self.engine = engine
        self.sink = sink
        self.phones = phones  # mac -> (model, group)
        self.started = started
        self.clock = clock

    def check(self, *, mac: str | None, client: str | None, request: str, path: str | None = None,
              name: str | None = None, message: str | None = None,
              event_service: str | None = None) -> list[Fired[A]]:
        model, group = self.phones.get(mac, (None, None)) if mac else (None, None)
        now = self.clock()
        fired = self.engine.decide(Query(self.service, mac, model, group, path, name, message),
                                   now - self.started)
        for hit in fired:
            self.sink(make_event(event_service or self.service, client, mac, "fault", request,
                                 describe(hit.action), "fault", lambda: now, rule=hit.label))
        return cast(list[Fired[A]], fired)


@dataclass(frozen=True)
class Faults:
    """The hooks for each service; None where no rule concerns that service."""

    dhcp: ServiceFaults[DhcpFaultAction] | None = None
    dns: ServiceFaults[DnsFaultAction] | None = None
    tftp: ServiceFaults[TftpFaultAction] | None = None
    http: ServiceFaults[HttpFaultAction] | None = None
    engine: FaultEngine | None = None
    acs: ServiceFaults[AcsFaultAction] | None = None

    @classmethod
    def build(cls, engine: FaultEngine, sink: EventSink, phones: Mapping[str, tuple[str, str | None]],
              *, started: float, clock: Callable[[], float] = time.time) -> Faults:
        def hook(service: Service) -> Any:
            if not engine.wants(service):
                return None
            return ServiceFaults[Any](service, engine, sink, phones, started=started, clock=clock)

        return cls(hook("dhcp"), hook("dns"), hook("tftp"), hook("http"), engine, hook("acs"))


NO_FAULTS = Faults()
