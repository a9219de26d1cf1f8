"""`labkit check` finds what would fail at run time, located, in labkit's own words."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.inventory.faults import FaultError, parse_cli_rule
from labkit.inventory.load import load
from labkit.inventory.runtime_checks import STANDARD_PORTS, TRANSPORTS
from labkit.inventory.source import InventoryError
from labkit.plan.build import build_plan
from labkit.plan.checks import plan_problems
from tests.helpers import write_lab

LAB = """\
lab: {{domain: t.example, address: 192.0.2.1/24{lab}}}
models: {{CP-8851-3PCC: {{}}}}
phones: [{{mac: "00:56:2b:00:00:01", model: CP-8851-3PCC, ip: {ip}}}]
{more}
"""


def problems(tmp_path: Path, *, lab: str = "", ip: str = "192.0.2.9", more: str = "") -> list[str]:
    path = write_lab(tmp_path, LAB.format(lab=lab, ip=ip, more=more))
    with pytest.raises(InventoryError) as caught:
        load(path)
    rendered = [p.render() for p in caught.value.problems if p.severity == "error"]
    for text in rendered:
        assert "Input should" not in text and "Extra inputs" not in text and "Value error" not in text
    return rendered


def test_two_services_on_one_port_and_address(tmp_path: Path) -> None:
    [only] = problems(tmp_path, more="services: {dns: {port: 69}}")
    assert "lab.yaml:4" in only and "tftp and dns both listen on udp port 69 at 192.0.2.1" in only


def test_services_on_one_port_but_other_transports_or_addresses_are_fine(tmp_path: Path) -> None:
    fine = "services: {https: {port: 69}, syslog: {bind: 127.0.0.1, port: 69}}"
    assert _load_errors(tmp_path, LAB.format(lab="", ip="192.0.2.9", more=fine)) == []
    clash = "services: {http: {port: 53}}"  # DNS answers over TCP too
    [only] = _load_errors(tmp_path, LAB.format(lab="", ip="192.0.2.9", more=clash))
    assert "http and dns both listen on tcp port 53" in only


def _load_errors(tmp_path: Path, text: str) -> list[str]:
    try:
        load(write_lab(tmp_path, text))
    except InventoryError as exc:
        return [p.render() for p in exc.problems]
    return []


def test_standard_ports_agree_with_the_supervisor() -> None:
    from labkit.services import supervisor

    # the admin port is the command line's (`--admin`), not the inventory's: check leaves it out
    # admin: the command line's; acs: the inventory's `acs:` section, checked there
    inventory_services = {s: p for s, p in supervisor.STANDARD_PORTS.items() if s not in ("admin", "acs")}
    assert inventory_services == STANDARD_PORTS
    assert {s: "+".join(t) for s, t in TRANSPORTS.items()} == {
        s: t for s, t in supervisor.TRANSPORTS.items() if s != "acs"}


def test_interface_name_over_15_characters(tmp_path: Path) -> None:
    [only] = problems(tmp_path, lab=", interface: enp0s31f6-lab-bench")
    assert "lab.interface" in only and "at most 15" in only


def test_templates_dir_that_does_not_exist(tmp_path: Path) -> None:
    [only] = problems(tmp_path, lab=", templates_dir: tmpl")
    assert "lab.templates_dir" in only and "tmpl does not exist" in only


@pytest.mark.parametrize(("ip", "which"), [("192.0.2.0", "network"), ("192.0.2.255", "broadcast")])
def test_phone_on_the_network_or_broadcast_address(tmp_path: Path, ip: str, which: str) -> None:
    [only] = problems(tmp_path, ip=ip)
    assert f"fixed IP {ip} is the {which} address of the lab subnet 192.0.2.0/24" in only


@pytest.mark.parametrize("code", [0, 255, 300])
def test_option_codes_outside_1_to_254(tmp_path: Path, code: int) -> None:
    [only] = problems(tmp_path, more=f'dhcp: {{options: {{{code}: "0a"}}}}')
    assert f"option {code} does not exist: DHCP option codes run from 1 to 254" in only
    assert "set by the server" not in only


def test_misspelt_keys_get_a_did_you_mean(tmp_path: Path) -> None:
    text = LAB.format(lab=", tempaltes_dir: t", ip="192.0.2.9", more="")
    [only] = _load_errors(tmp_path, text)
    assert "unknown key 'tempaltes_dir'; did you mean 'templates_dir'?" in only


def test_tabs_in_yaml_get_a_hint(tmp_path: Path) -> None:
    [only] = _load_errors(tmp_path, "lab:\n\tdomain: t.example\n")
    assert "lab.yaml:2" in only and "YAML indents with spaces only" in only


@pytest.mark.parametrize(("rule", "says"), [
    ("{http: {statuss: 404}}", "http.statuss: unknown key 'statuss'; did you mean 'status'?"),
    ("{http: {status: 404}, when: {first: 0}}", "when.first: must be 1 or more (got 0)"),
    ("{dns: {rcode: NOPE}}", "dns.rcode: expected one of:"),
    ("[1, 2]", "expected a mapping"),
])
def test_fault_rules_are_refused_in_labkit_words(rule: str, says: str) -> None:
    with pytest.raises(FaultError) as caught:
        parse_cli_rule(rule)
    assert says in str(caught.value)
    assert "Input should" not in str(caught.value) and "Extra inputs" not in str(caught.value)


def test_urls_to_files_the_plan_does_not_serve(tmp_path: Path) -> None:
    more = ('dhcp: {options: {provisioning_url: "http://prov.t.example/nothing-$MA.xml"}}\n'
            "profiles: {template: p.xml.j2}")
    path = write_lab(tmp_path, LAB.format(lab="", ip="192.0.2.9", more=more), templates={
        "p.xml.j2": "<flat-profile><Profile_Rule>tftp://192.0.2.1/gone.cfg</Profile_Rule>"
                    "<Resync>http://elsewhere.example/x.cfg</Resync></flat-profile>\n"})
    found = [p.render() for p in plan_problems(build_plan(load(path)))]
    assert len(found) == 2, found
    assert "lab.yaml:4" in found[0] and "http://prov.t.example/nothing-00562b000001.xml" in found[0]
    assert "lab.yaml:5" in found[1] and "tftp://192.0.2.1/gone.cfg" in found[1]
    assert not any("elsewhere" in text for text in found)  # not this kit: not judged


def test_the_default_lab_and_served_urls_pass(tmp_path: Path) -> None:
    assert plan_problems(build_plan(load(None))) == []
    for url in ("http://prov.t.example/Cisco/$PN/$MA.cfg", "http://prov.t.example/", "tftp://192.0.2.1"):
        more = f'dhcp: {{options: {{provisioning_url: "{url}"}}}}'  # as given, or with a tail phones try
        lab = write_lab(tmp_path / url.replace("/", "_"), LAB.format(lab="", ip="192.0.2.9", more=more))
        assert plan_problems(build_plan(load(lab))) == [], url


def test_check_warns_about_the_plan_and_render_does_not(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from labkit.cli import app

    more = 'dhcp: {options: {provisioning_url: "http://prov.t.example/moved/"}}'
    lab = write_lab(tmp_path / "lab", LAB.format(lab="", ip="192.0.2.9", more=more))
    runner = CliRunner()
    done = runner.invoke(app, ["check", str(lab)])
    assert done.exit_code == 0 and "1 warning(s)" in done.stdout
    assert "lab.yaml:4: warning: dhcp.options.provisioning_url: option 160 sends phones to " \
           "http://prov.t.example/moved/" in done.stderr
    done = runner.invoke(app, ["render", str(lab), "-o", str(tmp_path / "out")])
    assert done.exit_code == 0 and "warning" not in done.stderr
