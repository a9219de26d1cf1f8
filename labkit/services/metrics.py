"""/metrics: the lab's counters in the Prometheus text format, through prometheus_client.

One registry per running lab (never the process-wide default one), fed from the same events as
the status model: requests per service and message type, errors by reason, malformed input,
faults fired, kernel drops, leases in use, phones per stage and the time each phone took from
its first packet to provisioned.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from labkit.events import Event, is_malformed
from labkit.services.status import FINE, NOT_REQUESTS, STAGES, LabStatus, PhoneStatus

__all__ = ["CONTENT_TYPE_LATEST", "LabMetrics"]

PROVISIONING_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)


class LabMetrics:
    """Prometheus metrics of one lab; `observe(event, changed)` after the status model folded it."""

    def __init__(self, status: LabStatus) -> None:
        self.status = status
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("labkit_requests", "Requests answered (or not), by service and message type",
                                ["service", "type"], registry=r)
        self.errors = Counter("labkit_errors", "Requests that went wrong, by service and reason",
                              ["service", "reason"], registry=r)
        self.malformed = Counter("labkit_malformed_input", "Input a service could not read",
                                 ["service"], registry=r)
        self.faults = Counter("labkit_faults_fired", "Fault rules fired, by rule", ["rule"], registry=r)
        self.drops = Gauge("labkit_kernel_drops", "Datagrams the kernel dropped before a service read them",
                           ["service"], registry=r)
        self.leases = Gauge("labkit_leases_in_use", "DHCP leases handed out (ACKed) since the lab started",
                            registry=r)
        self.stages = Gauge("labkit_phones", "Phones by provisioning stage", ["stage"], registry=r)
        self.provisioning = Histogram("labkit_time_to_provisioned_seconds",
                                      "From a phone's first packet to provisioned "
                                      "(lease, profiles, firmware)",
                                      buckets=PROVISIONING_BUCKETS, registry=r)
        self._timed: set[str] = set()  # phones whose time to provisioned is in the histogram
        self._refresh_stages()

    def observe(self, event: Event, changed: PhoneStatus | None) -> None:
        if event.action == "kernel-drops":
            self.drops.labels(event.service).set(int(event.detail.get("total", 0)))
        elif event.action == "fault":
            self.faults.labels(str(event.detail.get("rule") or "unnamed")).inc()
        elif event.action not in NOT_REQUESTS:
            self.requests.labels(event.service, event.action).inc()
            if is_malformed(event):
                self.malformed.labels(event.service).inc()
            elif event.result not in FINE:
                self.errors.labels(event.service, event.result).inc()
        self.leases.set(len(self.status.leases))
        if changed is not None:
            took = changed.seconds_to_provisioned
            if took is not None and changed.mac not in self._timed:
                self._timed.add(changed.mac)
                self.provisioning.observe(took)
            self._refresh_stages()

    def _refresh_stages(self) -> None:
        counts = dict.fromkeys(STAGES, 0)
        for phone in self.status.phones.values():
            counts[phone.stage] += 1
        for stage, count in counts.items():
            self.stages.labels(stage).set(count)

    def text(self) -> bytes:
        return generate_latest(self.registry)
