"""The pure diff of two plans (`labkit reload`'s summary): phones, options by code, files,
zones, faults, and what a running lab keeps until a restart."""

from __future__ import annotations

from pathlib import Path

from labkit.inventory.load import load
from labkit.plan.build import Plan, build_plan
from labkit.plan.diff import diff_plans, option_codes
from tests.helpers import FIRMWARE, write_lab

BASE = f"""\
lab: {{domain: t.example, address: 192.0.2.1/24}}
models: {{CP-8851-3PCC: {{firmware: {FIRMWARE}}}}}
dns: {{records: {{pbx: 192.0.2.5}}}}
phones:
  - {{mac: "00:56:2b:00:00:01", model: CP-8851-3PCC, ip: 192.0.2.9}}
  - {{mac: "00:56:2b:00:00:02", model: CP-8851-3PCC, ip: 192.0.2.10}}
"""


def _plan(folder: Path, text: str) -> Plan:
    return build_plan(load(write_lab(folder, text)))


def test_the_same_inventory_changes_nothing(tmp_path: Path) -> None:
    diff = diff_plans(_plan(tmp_path, BASE), _plan(tmp_path, BASE))
    assert not diff
    assert diff.lines() == ["nothing changed"]
    assert diff.as_dict() == {}


def test_phones_options_files_zones_and_faults_are_named(tmp_path: Path) -> None:
    new = BASE.replace("192.0.2.5", "192.0.2.6").replace(
        '  - {mac: "00:56:2b:00:00:02", model: CP-8851-3PCC, ip: 192.0.2.10}\n',
        '  - {mac: "00:56:2b:00:00:01", model: CP-8851-3PCC, ip: 192.0.2.9, options: {time_offset: 3600}}\n'
        '  - {mac: "00:56:2b:00:00:03", model: CP-8851-3PCC, ip: 192.0.2.11}\n'
        'faults: [{name: slow, match: {path: "/*.cfg"}, http: {delay: 1}}]\n',
    ).replace('  - {mac: "00:56:2b:00:00:01", model: CP-8851-3PCC, ip: 192.0.2.9}\n', "", 1)
    old_plan, new_plan = _plan(tmp_path, BASE), _plan(tmp_path, new)
    diff = diff_plans(old_plan, new_plan)
    assert diff.phones.added == ("00:56:2b:00:00:03",)
    assert diff.phones.removed == ("00:56:2b:00:00:02",)
    assert diff.phones.changed == ("00:56:2b:00:00:01",)  # its own options are part of its entry
    assert diff.options == {"00:56:2b:00:00:01": (2,)}  # option 2: time offset, set on the phone only
    assert any("00562b000003" in path for path in diff.files.added)
    assert any("00562b000002" in path for path in diff.files.removed)
    assert diff.zones.changed == ("t.example",) and not diff.zones.added
    assert diff.files.changed == ()  # the firmware and the model profile stay
    assert diff.faults.added == ("slow",)
    assert "dhcp" in diff.services  # the DHCP server's phones changed
    assert diff.restart_only == ()
    text = "\n".join(diff.lines())
    assert "phones: 1 added (00:56:2b:00:00:03); 1 removed (00:56:2b:00:00:02)" in text
    assert "options of 00:56:2b:00:00:01: 2" in text and "faults: 1 added (slow)" in text
    assert diff.as_dict()["options"] == {"00:56:2b:00:00:01": [2]}


def test_a_changed_listening_port_is_kept_until_a_restart(tmp_path: Path) -> None:
    new = BASE + "services: {http: {port: 8080}}\n"
    diff = diff_plans(_plan(tmp_path, BASE), _plan(tmp_path, new))
    assert diff.restart_only == ("listen",)
    assert "not applied until a restart (kept as they were): listen" in diff.lines()


def test_option_codes_compare_value_presence_and_forcing(tmp_path: Path) -> None:
    plan = _plan(tmp_path, BASE)
    pool = plan.pool_options
    assert option_codes(pool, pool) == ()
    phone = plan.phones["00:56:2b:00:00:01"].options
    assert option_codes(pool, phone) == option_codes(phone, pool)
