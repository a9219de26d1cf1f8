"""The commands end to end: explain, init, check, and the README's example inventory."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from labkit.explain import explain_phone, resolve_url
from labkit.inventory.load import load
from labkit.plan.build import build_plan
from tests.helpers import ROOT, assert_one_line_error, labkit


def test_explain_shows_annotated_options_srv_and_urls_in_order() -> None:
    result = labkit("explain", "--phone", "00-56-2B-00-03-3C")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "CP-8851-3PCC, MAC 00:56:2b:00:03:3c" in text
    # option 150 as bytes with its decoded value, option 160 from the vendor-class level
    assert re.search(r"96 04 0a 2a 00 01\s+option 150 tftp_servers \(len 4\): 10\.42\.0\.1", text)
    assert "[class CP-*-3PCC]" in text
    assert "_ciscoprov-https._tls.lab.example SRV 10 10 443 prov.lab.example" in text
    urls = re.findall(r"^\s+\d+\. (?:=>|x |  ) (\S+)", text, flags=re.MULTILINE)
    # option 66 (a bare address) first: TFTP, then HTTP, then HTTPS, each with both tails
    assert urls[:6] == [
        "tftp://10.42.0.1/8851-3PCC.xml",
        "tftp://10.42.0.1/Cisco/CP-8851-3PCC/00562b00033c.cfg",
        "http://10.42.0.1/8851-3PCC.xml",
        "http://10.42.0.1/Cisco/CP-8851-3PCC/00562b00033c.cfg",
        "https://10.42.0.1/8851-3PCC.xml",
        "https://10.42.0.1/Cisco/CP-8851-3PCC/00562b00033c.cfg",
    ]
    # then option 160 (a URL without a path: tails only), then option 150
    assert urls[6:8] == ["http://prov.lab.example/8851-3PCC.xml",
                         "http://prov.lab.example/Cisco/CP-8851-3PCC/00562b00033c.cfg"]
    assert "files/8851-3PCC.xml (model profile" in text
    assert "taken: the first success ends the search" in text
    assert "http://prov.lab.example/Cisco/CP-8851-3PCC/00562b00033c.cfg" in text.split(
        "Then it resyncs to its Profile_Rule:")[1]
    assert "files/sip88xx.12-0-1MPP-0001.loads (firmware" in text


def test_explain_tr069_option_43_names_its_suboptions(tmp_path: Path) -> None:
    inventory = tmp_path / "lab.yaml"
    inventory.write_text("""\
lab: {domain: t.example, address: 192.0.2.1/24}
dhcp:
  options:
    vendor_specific:
      tr069: {acs_url: "http://192.0.2.1:7547/", provisioning_code: bench}
  force: [43]
models: {CP-6841-3PCC: {}}
phones: [{mac: "00:56:2b:00:00:01", model: CP-6841-3PCC, ip: 192.0.2.9}]
""")
    text = explain_phone(build_plan(load(inventory)), "00:56:2b:00:00:01")
    assert "ACS URL" in text and "http://192.0.2.1:7547/" in text
    assert "bench" in text
    # no provisioning option at all: DNS SRV comes next, and this lab has none
    assert "nothing usable from DHCP" in text


def test_resolve_url_says_why_a_url_fails() -> None:
    plan = build_plan(load(None))
    assert resolve_url(plan, "http://prov.lab.example/8851-3PCC.xml").ok
    assert "404" in resolve_url(plan, "http://prov.lab.example/nope.xml").detail
    assert "TFTP error 1" in resolve_url(plan, "tftp://10.42.0.1/nope.xml").detail
    assert "does not resolve" in resolve_url(plan, "http://other.example/8851-3PCC.xml").detail
    assert "not this kit" in resolve_url(plan, "http://10.42.0.7/8851-3PCC.xml").detail
    assert "port 8080" in resolve_url(plan, "http://prov.lab.example:8080/8851-3PCC.xml").detail


def test_init_writes_a_lab_that_checks(tmp_path: Path) -> None:
    result = labkit("init", str(tmp_path / "bench"))
    assert result.returncode == 0, result.stderr
    lab = tmp_path / "bench" / "lab.yaml"
    assert lab.read_text().startswith("{#- labkit inventory")
    assert (tmp_path / "bench" / "templates" / "phone.xml.j2").is_file()
    check = labkit("check", str(lab))
    assert check.returncode == 0, check.stderr
    assert "24 phones over 3 models" in check.stdout
    again = labkit("init", str(tmp_path / "bench"))
    assert again.returncode == 1 and "exists" in again.stderr


def test_user_template_overrides_the_built_in_and_can_expand_macros(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "mine.xml.j2").write_text(
        '<flat-profile><Station_Display_Name>{{ "SEP$MAU" | expand }}</Station_Display_Name>'
        "{% for p in params %}<{{ p.name }}>{{ p.value }}</{{ p.name }}>{% endfor %}</flat-profile>\n")
    inventory = tmp_path / "lab.yaml"
    inventory.write_text("""\
lab: {domain: t.example, address: 192.0.2.1/24}
profiles: {template: mine.xml.j2, params: {Text_Logo: "A & B"}}
models: {CP-8851-3PCC: {}}
phones: [{mac: "00:56:2b:00:00:01", model: CP-8851-3PCC, ip: 192.0.2.9}]
""")
    data = build_plan(load(inventory)).files["Cisco/CP-8851-3PCC/00562b000001.cfg"].data
    assert data is not None
    assert b"<Station_Display_Name>SEP00562B000001</Station_Display_Name>" in data
    assert b"<Text_Logo>A &amp; B</Text_Logo>" in data  # values are escaped for XML


def test_readme_example_inventory_is_valid(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, flags=re.DOTALL)
    example = next(b for b in blocks if "phones:" in b)  # the inventory example, not a fragment
    inventory = tmp_path / "lab.yaml"
    inventory.write_text(example)
    (tmp_path / "firmware").mkdir()
    (tmp_path / "firmware" / "sip88xx.12-0-1MPP-0001.loads").write_text("fw")
    loaded = load(inventory)
    assert len(loaded.inventory.phones) == 48
    assert loaded.warnings == []
    plan = build_plan(loaded)
    assert "Cisco/CP-8851-3PCC/00562b00012f.cfg" in plan.files


def _self_signed(tmp_path: Path, dns_names: list[str]) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


CERT_LAB = """\
lab: {domain: t.example, address: 192.0.2.1/24}
dns:
  srv: [{service: _ciscoprov-https._tls, target: prov.t.example, port: 443}]
tls: {cert: cert.pem, key: key.pem}
models: {CP-8851-3PCC: {}}
phones: [{mac: "00:56:2b:00:00:01", model: CP-8851-3PCC, ip: 192.0.2.9}]
"""


def test_own_certificate_must_cover_srv_targets_and_domain(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text(CERT_LAB)
    _self_signed(tmp_path, ["prov.t.example", "t.example"])
    assert load(tmp_path / "lab.yaml").inventory.tls.cert == "cert.pem"
    _self_signed(tmp_path, ["www.t.example"])
    result = labkit("check", str(tmp_path / "lab.yaml"))
    assert result.returncode == 1
    assert "tls.cert: the certificate's names (www.t.example) do not cover prov.t.example" in (
        result.stderr)


def test_readme_fault_example_is_a_valid_rule() -> None:
    import yaml

    from labkit.inventory.faults import FaultRule

    readme = (ROOT / "README.md").read_text()
    fragment = next(b for b in re.findall(r"```yaml\n(.*?)```", readme, flags=re.DOTALL) if "faults:" in b)
    rules = [FaultRule.model_validate(r) for r in yaml.safe_load(fragment)["faults"]]
    assert rules[0].http is not None and rules[0].http.status == 404 and rules[0].when.first == 1


def test_ca_prints_the_lab_ca_path_and_keeps_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = labkit("ca", "--state", str(state))
    assert first.returncode == 0, first.stderr
    path = Path(first.stdout.strip())
    assert path == (state / "ca" / "ca.pem").resolve()
    assert path.read_bytes().startswith(b"-----BEGIN CERTIFICATE")
    again = labkit("ca", "--state", str(state))
    assert Path(again.stdout.strip()).read_bytes() == path.read_bytes()  # made once, then kept


def test_up_without_the_lab_interface_says_what_to_do(tmp_path: Path) -> None:
    inventory = tmp_path / "lab.yaml"
    inventory.write_text("""\
lab: {domain: t.example, address: 192.0.2.1/24, interface: no-such-if0}
models: {CP-8851-3PCC: {}}
phones: [{mac: "00:56:2b:00:00:01", model: CP-8851-3PCC, ip: 192.0.2.9}]
""")
    result = labkit("up", str(inventory), "--state", str(tmp_path / "state"), "--quiet")
    assert result.returncode == 1
    assert "the lab interface 'no-such-if0' (lab.interface) does not exist" in result.stderr
    assert "--loopback" in result.stderr and "Traceback" not in result.stderr


def test_bad_arguments_are_one_line_errors_with_proper_exit_codes(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder\n")
    assert_one_line_error(labkit("demo", "--mode", "bogus"), code=2,
                          says="demo: --mode 'bogus': expected auto, loopback or netns")
    assert_one_line_error(labkit("init", str(a_file)), says=f"init: {a_file}: exists and is not a folder")
    assert a_file.read_text() == "not a folder\n"
    for command in ("ca", "leases"):
        assert_one_line_error(labkit(command, "--state", str(a_file)), says=f"--state {a_file}: not a folder")
    assert_one_line_error(labkit("up", "--loopback", "--quiet", "--state", str(a_file)),
                          says=f"--state {a_file}: not a folder")
    assert_one_line_error(labkit("render", "-o", str(a_file)),
                          says=f"-o {a_file}: exists and is not a folder")


def test_scenario_all_without_scenarios_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import labkit.scenarios
    from labkit.cli import app

    monkeypatch.setattr(labkit.scenarios, "names", lambda: [])
    result = CliRunner().invoke(app, ["scenario", "--all"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # a clean exit
    assert "no scenarios found" in result.output and "Traceback" not in result.output
