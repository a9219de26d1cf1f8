"""/metrics: the lab's counters as prometheus_client exposes them, read back with the library's
own text parser (and `promtool check metrics` when it is installed)."""

from __future__ import annotations

import subprocess

from prometheus_client.parser import text_string_to_metric_families

from labkit.services.ops import LabOps
from labkit.services.status import LabStatus
from tests.conftest import require_tool
from tests.helpers import event
from tests.unit.test_status_model import MAC, PHONES, boot


def _ops() -> LabOps:
    return LabOps(LabStatus.of_phones((mac, *info) for mac, info in PHONES.items()))


def _samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text.decode()) for s in family.samples}


def test_metrics_count_what_the_lab_did() -> None:
    ops = _ops()
    fault = event(100.3, "http", "fault", action="fault", request="/x", phone=MAC, rule="flaky")
    junk = event(100.4, "dns", "formerr", action="malformed", request="7 bytes", client="198.51.100.1:9")
    drops = event(100.45, "syslog", "overflow", action="kernel-drops", request="4", client=None, total=4)
    missing = event(100.46, "tftp", "not-found", action="rrq", request="/nope", client="192.0.2.77:1")
    for e in [*boot(), fault, junk, drops, missing]:
        ops(e)
    samples = _samples(ops.metrics.text())
    assert samples[("labkit_requests_total", (("service", "dhcp"), ("type", "discover")))] == 1
    assert samples[("labkit_requests_total", (("service", "http"), ("type", "get")))] == 2
    assert samples[("labkit_errors_total", (("reason", "not-found"), ("service", "tftp")))] == 1
    assert samples[("labkit_malformed_input_total", (("service", "dns"),))] == 1
    assert samples[("labkit_faults_fired_total", (("rule", "flaky"),))] == 1
    assert samples[("labkit_kernel_drops", (("service", "syslog"),))] == 4
    assert samples[("labkit_leases_in_use", ())] == 1
    assert samples[("labkit_phones", (("stage", "provisioned"),))] == 1
    assert samples[("labkit_phones", (("stage", "waiting"),))] == 1
    assert samples[("labkit_time_to_provisioned_seconds_count", ())] == 1
    assert samples[("labkit_time_to_provisioned_seconds_sum", ())] == 4.0
    assert samples[("labkit_time_to_provisioned_seconds_bucket", (("le", "5.0"),))] == 1
    assert samples[("labkit_time_to_provisioned_seconds_bucket", (("le", "2.0"),))] == 0


def test_a_phone_is_timed_once_even_when_it_fetches_again() -> None:
    ops = _ops()
    for e in [*boot(), *boot(start=300.0)]:
        ops(e)
    samples = _samples(ops.metrics.text())
    assert samples[("labkit_time_to_provisioned_seconds_count", ())] == 1


def test_every_lab_has_its_own_registry() -> None:
    first, second = _ops(), _ops()
    first(boot()[0])
    assert ("labkit_requests_total", (("service", "dhcp"), ("type", "discover"))) not in _samples(
        second.metrics.text())


def test_promtool_accepts_the_metrics() -> None:
    promtool = require_tool("promtool")  # Debian: apt-get install prometheus
    ops = _ops()
    for e in boot():
        ops(e)
    checked = subprocess.run([promtool, "check", "metrics"], input=ops.metrics.text(), capture_output=True,
                             timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
