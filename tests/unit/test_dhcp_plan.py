"""The plan converts the inventory into the DHCP core's plain input; the core's merged option sets
are byte for byte the plan's OptionSet (what `labkit explain` shows)."""

from __future__ import annotations

from pathlib import Path

from labkit.inventory.load import load
from labkit.plan.build import build_plan
from labkit.plan.dhcp import client_options, option_set

POOL_LAB = """\
lab: {domain: p.example, address: 192.0.2.1/24, answer: any,
      pool: {start: 192.0.2.100, end: 192.0.2.102}}
dhcp:
  force: [43]
  options: {tftp_server_name: "192.0.2.1"}
  classes:
    - match: "CP-*-3PCC"
      options: {provisioning_url: "http://192.0.2.1/"}
      force: [160]
    - match: "CP-88*"
      options: {tftp_server_name: "192.0.2.88"}
models: {CP-8851-3PCC: {options: {ntp_servers: [192.0.2.5]}}}
phones: [{mac: "00:56:2b:00:00:01", model: CP-8851-3PCC, ip: 192.0.2.9, options: {domain_name: x.example}}]
"""


def _same(core_set, planned) -> None:
    assert dict(core_set.payloads) == {code: p.payload for code, p in planned.options.items()}
    assert list(core_set.payloads) == list(planned.options)
    assert {c for c in core_set.payloads if c in core_set.always} == {
        code for code, p in planned.options.items() if p.forced}


def test_core_options_equal_the_plans_option_sets_for_the_default_lab() -> None:
    plan = build_plan(load(None))
    options = client_options(plan.inventory)
    for mac, phone_plan in plan.phones.items():
        _same(options(mac, phone_plan.vendor_class), phone_plan.options)
    _same(options("02:00:00:00:00:01", None), plan.pool_options)


def test_core_options_overlay_classes_models_and_phones(tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(POOL_LAB)
    inv = load(path).inventory
    options = client_options(inv)
    phone = inv.phones[0]
    for vendor in (None, "CP-8851-3PCC", "CP-7841-3PCC", "other"):
        _same(options(phone.mac, vendor), option_set(inv, vendor_class=vendor, phone=phone))
        _same(options("02:00:00:00:00:09", vendor), option_set(inv, vendor_class=vendor))
    assert options("02:00:00:00:00:09", "CP-8851-3PCC").payloads[66] == b"192.0.2.88"
    assert options("02:00:00:00:00:09", "CP-8851-3PCC") is options("02:00:00:00:00:0a", "CP-8851-3PCC")
