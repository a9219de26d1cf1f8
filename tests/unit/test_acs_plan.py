"""The inventory's `acs:` section and the ACS's plan: levels merged in order, the RPCs in their
fixed order, the lab's own files for Download, errors located at file:line:field, explain, the
reload diff, and the ACS's fault rules."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from labkit.explain import explain_phone
from labkit.inventory.faults import FaultError, parse_cli_rule
from labkit.inventory.load import load
from labkit.inventory.source import InventoryError
from labkit.plan import acs as planned
from labkit.plan.build import build_plan
from labkit.plan.diff import diff_plans
from labkit.plan.faults import plan_faults
from labkit.protocols.cwmp.faults import AcsFaultAction
from tests.helpers import FIRMWARE, default_inventory, write_lab

MAC = "00:56:2b:00:00:01"
OTHER = "00:56:2b:00:00:02"
LAB = f"""\
lab: {{domain: t.example, address: 192.0.2.1/24}}
models: {{CP-8851-3PCC: {{firmware: {FIRMWARE}}}}}
phones:
  - {{mac: "{MAC}", model: CP-8851-3PCC, ip: 192.0.2.9, group: desk, serial: FCH1}}
  - {{mac: "{OTHER}", model: CP-8851-3PCC, ip: 192.0.2.10}}
acs:
  defaults:
    periodic_inform_interval: 300
    set: {{Device.A: one, Device.B: 2, Device.C: true}}
  models:
    CP-8851-3PCC:
      set: {{Device.A: model}}
      downloads: [{{file_type: firmware}}]
  groups:
    desk:
      set: {{Device.B: {{value: -3, type: int}}}}
      attributes: {{Device.ManagementServer.ConnectionRequestURL: {{notification: 2}}}}
      add_objects: [Device.X.]
      reboot: true
  phones:
    "{MAC}":
      delete_objects: [Device.Y.1.]
      downloads: [{{file_type: config}}, {{file_type: ca}}]
"""


def plan_of(tmp_path: Path, text: str = LAB):  # type: ignore[no-untyped-def]
    return build_plan(load(write_lab(tmp_path, text)))


def errors_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(InventoryError) as caught:
        load(write_lab(tmp_path, text))
    return [p.render() for p in caught.value.problems if p.severity == "error"]


def test_levels_merge_and_the_rpcs_come_in_their_fixed_order(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    rpcs = plan.acs.actions[MAC]
    assert [type(r).__name__ for r in rpcs] == ["SetValues", "SetAttributes", "AddObject", "DeleteObject",
                                                "DownloadFile", "DownloadFile", "DownloadFile", "Reboot"]
    values = {p.name: (p.value, p.type) for p in rpcs[0].params}  # type: ignore[union-attr]
    assert values == {"Device.A": ("model", "string"), "Device.B": ("-3", "int"),
                      "Device.C": ("true", "boolean"),
                      "Device.ManagementServer.PeriodicInformEnable": ("true", "boolean"),
                      "Device.ManagementServer.PeriodicInformInterval": ("300", "unsignedInt")}
    firmware, config, ca = rpcs[4:7]
    assert isinstance(firmware, planned.DownloadFile) and firmware.file_type == "1 Firmware Upgrade Image"
    assert firmware.url == f"http://prov.t.example/{FIRMWARE}" and firmware.file_size > 0
    assert isinstance(config, planned.DownloadFile) and config.file_type == "3 Vendor Configuration File"
    assert config.url == "http://prov.t.example/Cisco/CP-8851-3PCC/00562b000001.cfg"
    assert config.file_size == plan.files["Cisco/CP-8851-3PCC/00562b000001.cfg"].size
    assert isinstance(ca, planned.DownloadFile) and ca.url == "http://prov.t.example:7547/labkit/ca.pem"
    # the other phone: no group, no phone level
    other = plan.acs.actions[OTHER]
    assert [type(r).__name__ for r in other] == ["SetValues", "DownloadFile"]
    assert plan.acs.serials == {"FCH1": MAC}
    assert plan.listen["acs"].enabled and plan.listen["acs"].port == 7547


def test_no_acs_section_no_acs(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, LAB[:LAB.index("acs:")])
    assert "acs" not in plan.listen and not plan.acs.enabled and plan.acs.actions == {}
    assert "TR-069" not in explain_phone(plan, next(iter(plan.phones)))


def test_the_default_lab_runs_the_acs_its_option_43_names() -> None:
    inv = default_inventory().inventory
    tr069 = inv.dhcp.classes[1].options.vendor_specific.tr069  # type: ignore[union-attr]
    assert tr069 is not None and tr069.acs_url == "http://acs.lab.example:7547/"
    plan = build_plan(default_inventory())
    assert plan.listen["acs"].enabled and plan.listen["acs"].port == 7547 and not plan.acs.https
    mac = next(iter(plan.phones))
    assert [type(r).__name__ for r in plan.acs.actions[mac]] == ["SetValues"]
    said = explain_phone(plan, mac)
    assert "TR-069: the ACS at http://prov.lab.example:7547/" in said
    assert "with TR-069 on, DHCP option 43 names http://acs.lab.example:7547/" in said


def test_explain_lists_what_the_acs_will_do_in_order(tmp_path: Path) -> None:
    text = explain_phone(plan_of(tmp_path), MAC)
    tail = text[text.index("TR-069: the ACS at http://prov.t.example:7547/"):].splitlines()
    assert tail[1].startswith("  with TR-069 on, DHCP gives it no option 43 ACS URL")
    assert tail[3].startswith("   1. SetParameterValues Device.A='model' (string)")
    assert tail[6] == "   4. DeleteObject Device.Y.1."
    assert tail[-1] == "   8. Reboot"


@pytest.mark.parametrize(("snippet", "field", "message"), [
    ("acs: {defaults: {set: {Device.B: {value: x, type: int}}}}", "acs.defaults.set.Device.B",
     "'x' is not an xsd:int"),
    ("acs: {defaults: {attributes: {Device.A: {notification: 3}}}}", "notification", "expected one of: 0, 1"),
    ("acs: {defaults: {add_objects: [Device.X]}}", "acs.defaults.add_objects[0]", "expected form"),
    ("acs: {defaults: {set: {'bad name': 1}}}", "acs.defaults.set", "expected form"),
    ("acs: {models: {CP-9999: {reboot: true}}}", "acs.models.CP-9999", "unknown model 'CP-9999'"),
    ("acs: {phones: {'00:56:2b:00:00:09': {reboot: true}}}", "acs.phones.00:56:2b:00:00:09", "no phone"),
    ("acs: {defaults: {reboot: true, factory_reset: true}}", "acs.defaults.factory_reset", "set one of"),
    ("acs: {defaults: {downloads: [{file_type: config, url: 'ftp://x/y'}]}}", "downloads[0].url",
     "http://, https:// or tftp://"),
    ("acs: {port: 80}", "acs.port", "also where http listens"),
    ("acs: {prot: 1}", "acs.prot", "unknown key 'prot'"),
])
def test_inventory_errors_name_the_line_and_field(tmp_path: Path, snippet: str, field: str,
                                                   message: str) -> None:
    text = LAB[:LAB.index("acs:")] + snippet + "\n"
    rendered = errors_of(tmp_path, text)
    line = text.count("\n")  # the snippet is the last line
    assert any(f"lab.yaml:{line}: error: " in r and field in r and message in r for r in rendered), rendered


def test_a_firmware_download_without_firmware_in_the_plan_is_an_error(tmp_path: Path) -> None:
    text = LAB.replace(f"{{firmware: {FIRMWARE}}}", "{}")
    rendered = errors_of(tmp_path, text)
    assert any("acs.models.CP-8851-3PCC.downloads[0]" in r and "no firmware in the plan" in r
               for r in rendered)


def test_an_unknown_group_is_a_warning(tmp_path: Path) -> None:
    loaded = load(write_lab(tmp_path, LAB.replace("    desk:\n", "    dusk:\n")))
    said = [w.render() for w in loaded.warnings]
    assert any("acs.groups.dusk" in w and "no phone is in group" in w for w in said)


def test_reload_diff_names_the_phones_whose_acs_actions_changed(tmp_path: Path) -> None:
    old = plan_of(tmp_path / "a")
    new = plan_of(tmp_path / "b", LAB.replace("reboot: true", "reboot: false"))
    diff = diff_plans(old, new)
    assert diff.acs.changed == (MAC,) and "acs" in diff.services
    assert any(line.startswith("ACS actions: 1 changed") for line in diff.lines())
    assert not diff_plans(old, replace(old)).acs
    tls = diff_plans(old, replace(old, acs=replace(old.acs, https=True)))
    assert "acs.https" in tls.restart_only and "not applied until a restart" in tls.lines()[-1]


def test_acs_fault_rules_become_plain_actions() -> None:
    rule = parse_cli_rule("{match: {name: Inform}, acs: {fault: 8005}, when: {first: 1}}")
    (planned_rule,) = plan_faults([rule])
    assert planned_rule.service == "acs" and planned_rule.action == AcsFaultAction(fault=8005)
    with pytest.raises(FaultError, match=r"acs\.fault: expected one of: 8000"):
        parse_cli_rule("{acs: {fault: 9005}}")
    with pytest.raises(FaultError, match="exactly one of dhcp, dns, tftp, http, acs"):
        parse_cli_rule("{acs: {drop: true}, http: {status: 404}}")
