"""/metrics: the lab's counters in the Prometheus text format, through prometheus_client.

The status model already counts everything per event; the metrics are read from it when
Prometheus scrapes (a custom collector in a registry of the lab's own, never the process-wide
default one), so events cost nothing more: requests per service and message type, errors by
reason, malformed input, faults fired, kernel drops, leases in use, phones per stage and the time
each phone took from its first packet to provisioned.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from labkit.services.status import STAGES, LabStatus

__all__ = ["CONTENT_TYPE_LATEST", "LabMetrics"]

PROVISIONING_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)


class _StatusCollector(Collector):
    def __init__(self, status: LabStatus) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        yield from self._services()
        faults = CounterMetricFamily("labkit_faults_fired", "Fault rules fired, by rule", labels=["rule"])
        for rule, count in sorted(self.status.faults_fired.items()):
            faults.add_metric([rule], count)
        yield faults
        yield GaugeMetricFamily("labkit_leases_in_use", "DHCP leases handed out (ACKed) since the lab "
                                "started", value=len(self.status.leases))
        stages = GaugeMetricFamily("labkit_phones", "Phones by provisioning stage", labels=["stage"])
        counts = dict.fromkeys(STAGES, 0)
        for phone in self.status.phones.values():
            counts[phone.stage] += 1
        for stage, count in counts.items():
            stages.add_metric([stage], count)
        yield stages
        yield self._provisioning()

    def _services(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("labkit_requests", "Requests answered (or not), by service and "
                                       "message type", labels=["service", "type"])
        errors = CounterMetricFamily("labkit_errors", "Requests that went wrong, by service and reason",
                                     labels=["service", "reason"])
        malformed = CounterMetricFamily("labkit_malformed_input", "Input a service could not read",
                                        labels=["service"])
        drops = GaugeMetricFamily("labkit_kernel_drops", "Datagrams the kernel dropped before a service "
                                  "read them", labels=["service"])
        for name, counters in sorted(self.status.services.items()):
            for action, count in sorted(counters.by_action.items()):
                requests.add_metric([name, action], count)
            for reason, count in sorted(counters.errors_by_reason.items()):
                errors.add_metric([name, reason], count)
            malformed.add_metric([name], counters.malformed)
            drops.add_metric([name], counters.kernel_drops)
        yield from (requests, errors, malformed, drops)

    def _provisioning(self) -> Metric:
        took = [s for p in self.status.phones.values() if (s := p.seconds_to_provisioned) is not None]
        buckets = [(str(float(bound)), sum(1 for s in took if s <= bound)) for bound in PROVISIONING_BUCKETS]
        buckets.append(("+Inf", len(took)))
        return HistogramMetricFamily("labkit_time_to_provisioned_seconds",
                                     "From a phone's first packet to provisioned (lease, profiles, firmware)",
                                     buckets=buckets, sum_value=sum(took))


class LabMetrics:
    """The Prometheus view of one lab's status model."""

    def __init__(self, status: LabStatus) -> None:
        self.status = status
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_StatusCollector(status))

    def text(self) -> bytes:
        return generate_latest(self.registry)
