"""The frozen Plan is the boundary: what the supervisor needs is in its ready fields."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from labkit.inventory.load import load
from labkit.plan.build import Listen, build_plan
from labkit.services.supervisor import endpoints
from tests.helpers import write_inventory

LAB = """\
lab: {domain: t.example, address: 192.0.2.1/24, interface: bench0,
      pool: {start: 192.0.2.100, end: 192.0.2.150}}
services: {tftp: {enabled: false}, http: {port: 8080}, syslog: {bind: 192.0.2.7}}
models: {CP-8851-3PCC: {}}
phones:
  - {mac: "00:56:2b:00:00:01", model: CP-8851-3PCC, ip: 192.0.2.9, group: desk}
  - {mac: "00:56:2b:00:00:02", model: CP-8851-3PCC}
"""


def test_plan_holds_what_the_supervisor_reads(tmp_path: Path) -> None:
    plan = build_plan(load(write_inventory(tmp_path, LAB)))
    assert plan.interface == "bench0" and plan.kit_address == "192.0.2.1"
    assert "192.0.2.1" in plan.kit_addresses
    assert plan.listen["tftp"] == Listen(False) and plan.listen["http"] == Listen(True, None, 8080)
    assert plan.listen["syslog"] == Listen(True, "192.0.2.7", None)
    assert plan.fixed_ips == {"192.0.2.9": "00:56:2b:00:00:01"}
    assert plan.known_macs == {"00:56:2b:00:00:01", "00:56:2b:00:00:02"}
    assert plan.fault_phones["00:56:2b:00:00:01"] == ("CP-8851-3PCC", "desk")
    assert not plan.tls.own and plan.tls.cert is None and plan.tls.lab_name == plan.inventory.lab.name
    assert plan.tls.names == plan.tls_names and "192.0.2.1" in plan.tls.addresses
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.interface = "eth0"  # type: ignore[misc]
    with pytest.raises(TypeError):
        plan.files["x"] = plan.files[next(iter(plan.files))]  # type: ignore[index]


def test_endpoints_come_from_the_plan_not_the_inventory(tmp_path: Path) -> None:
    plan = build_plan(load(write_inventory(tmp_path, LAB)))
    placed = endpoints(plan)
    assert "tftp" not in placed and placed["http"].port == 8080 and placed["http"].host == "192.0.2.1"
    assert placed["syslog"].host == "192.0.2.7" and placed["dns"].port == 53
    moved = dataclasses.replace(plan, kit_address="198.51.100.1",
                                listen={**plan.listen, "tftp": Listen(True, None, 6969)})
    again = endpoints(moved)
    assert again["tftp"].port == 6969 and again["dns"].host == "198.51.100.1"
    assert {e.host for e in endpoints(plan, loopback=True).values()} == {"127.0.0.1"}
    assert endpoints(plan, port_offset=100)["http"].port == 8180
