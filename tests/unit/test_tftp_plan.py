"""plan_tftp: the TFTP service's frozen config from the inventory (labkit.plan.tftp)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from labkit.inventory.load import load
from labkit.plan.tftp import TftpLimits, TftpPlan, plan_tftp

LAB = """\
lab: {domain: lab.example, address: 10.42.0.1/24}
services:
  tftp: {upload_dir: uploads}
models: {CP-8851-3PCC: {}}
phones:
  - {mac: "00:56:2b:00:00:01", model: CP-8851-3PCC, ip: 10.42.0.9}
"""


def test_upload_dir_is_absolute_and_the_plan_frozen(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text(LAB)
    plan = plan_tftp(load(tmp_path / "lab.yaml"))
    assert plan.upload_dir == (tmp_path / "uploads").resolve() and plan.upload_dir.is_absolute()
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.upload_dir = None  # type: ignore[misc]


def test_no_upload_dir_by_default() -> None:
    assert plan_tftp(load(None)) == TftpPlan(None, TftpLimits())


def test_rules_per_address_only_where_addresses_tell_clients_apart() -> None:
    limits = TftpLimits(max_sessions=100, per_client=4, reserved=10)
    lan = limits.rules(uploads=False)
    assert (lan.per_client, lan.reserved, lan.uploads) == (4, 10, False)
    loopback = limits.rules(uploads=True, loopback=True)  # every phone is 127.0.0.1
    assert (loopback.per_client, loopback.reserved, loopback.uploads) == (None, 0, True)
    asked = dataclasses.replace(limits, per_client_on_loopback=True).rules(uploads=False, loopback=True)
    assert (asked.per_client, asked.reserved) == (4, 10)
    assert TftpLimits(max_sessions=8, reserved=32).rules(uploads=False).reserved == 2  # a quarter at most
    assert lan.session.max_retransmit_timeout == 10.0 and lan.session.max_life == 1800.0
