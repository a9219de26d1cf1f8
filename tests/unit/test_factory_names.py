"""The kit serves every documented factory profile name; the inventory chooses which exist
(issue 11); `labkit explain` shows them and the phone generation's request order."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.explain import explain_phone
from labkit.formats import flat_profile
from labkit.inventory.load import load
from labkit.inventory.source import InventoryError
from labkit.plan.build import build_plan
from tests.helpers import write_inventory

LAB = """\
lab: {{domain: t.example, address: 192.0.2.1/24}}
{profiles}
models:
  CP-8851-3PCC: {{{model}}}
  CP-7841-3PCC: {{}}
phones:
  - {{mac: "00:56:2b:00:00:01", model: CP-8851-3PCC, ip: 192.0.2.9}}
  - {{mac: "00:56:2b:00:00:02", model: CP-7841-3PCC, ip: 192.0.2.10}}
"""


def plan_of(tmp_path: Path, profiles: str = "", model: str = ""):
    return build_plan(load(write_inventory(tmp_path, LAB.format(profiles=profiles, model=model))))


def test_every_documented_name_is_served_by_default(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    for path in ("8851-3PCC.xml", "CP-8851-3PCC.cfg", "Cisco/00562b000001.cfg",
                 "Cisco/CP-8851-3PCC/00562b000001.cfg"):
        assert path in plan.files, path
    assert plan.files["8851-3PCC.xml"].data == plan.files["CP-8851-3PCC.cfg"].data  # one bootstrap profile
    assert plan.files["Cisco/00562b000001.cfg"].kind == "phone profile"
    assert plan.files["Cisco/00562b000001.cfg"].data == plan.files["Cisco/CP-8851-3PCC/00562b000001.cfg"].data


def test_the_inventory_chooses_which_names_exist_lab_wide_and_per_model(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, profiles='profiles: {factory_names: ["/$PN.cfg", "/Cisco/$MA.cfg"]}',
                   model='factory_names: ["/$PSN.xml", "/Cisco/$PN/$MA.cfg"]')
    served = set(plan.files)
    # the 8851 follows its model's list, the 7841 the lab's
    assert {"8851-3PCC.xml", "Cisco/CP-8851-3PCC/00562b000001.cfg"} <= served
    assert not {"CP-8851-3PCC.cfg", "Cisco/00562b000001.cfg"} & served
    assert {"CP-7841-3PCC.cfg", "Cisco/00562b000002.cfg"} <= served
    assert not {"7841-3PCC.xml", "Cisco/CP-7841-3PCC/00562b000002.cfg"} & served
    # the bootstrap profile sends the phone to the per-phone name that exists
    rule = flat_profile.parse(plan.files["CP-7841-3PCC.cfg"].data or b"")["Profile_Rule"].value
    assert rule.endswith("/Cisco/$MA.cfg")
    rule = flat_profile.parse(plan.files["8851-3PCC.xml"].data or b"")["Profile_Rule"].value
    assert rule.endswith("/Cisco/$PN/$MA.cfg")


@pytest.mark.parametrize(("names", "wanted"), [
    ('["/$PSN.xml", "/spa$PSN.cfg"]', "profiles.factory_names[1]: expected one of"),
    ('["/$PSN.xml"]', "serve at least one per-phone name"),
    ('["/Cisco/$MA.cfg", "/Cisco/$MA.cfg"]', "a name is listed twice"),
])
def test_a_wrong_name_list_is_an_error_naming_file_line_and_field(tmp_path: Path, names: str,
                                                                   wanted: str) -> None:
    with pytest.raises(InventoryError) as caught:
        plan_of(tmp_path, profiles=f"profiles: {{factory_names: {names}}}")
    text = str(caught.value)
    assert f"{tmp_path / 'lab.yaml'}:2:" in text and wanted in text


def test_explain_shows_the_names_served_and_the_generation_s_order(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, profiles='profiles: {factory_names: ["/$PSN.xml", "/Cisco/$MA.cfg"]}')
    text = explain_phone(plan, "00:56:2b:00:00:01", "cisco-ma")
    assert "/$PSN.xml            served as /8851-3PCC.xml" in text
    assert "/$PN.cfg             not served" in text
    assert "requests, in order: /$PSN.xml (/8851-3PCC.xml), /Cisco/$MA.cfg (/Cisco/00562b000001.cfg)" in text
    default = explain_phone(plan, "00:56:2b:00:00:01")
    assert "Its firmware generation mpp-12" in default
