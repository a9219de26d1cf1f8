"""Export targets as text, without any engine: what each writes for a plan, and what it reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labkit.export import ExportError, export
from labkit.export.dnsmasq_options import option_lines
from labkit.export.kea import KeaLayout, class_test
from labkit.export.nginx import ssha
from labkit.protocols.dhcp.options import SubOption, Tr111, VendorBlock, encode_value
from tests.export.labs import RICH_LAB, default_plan, rich_plan
from tests.helpers import write_lab


def test_kea_class_tests_anchor_prefix_and_suffix() -> None:
    test = class_test("CP-*-3PCC")
    assert test is not None
    assert "substring(option[60].hex,0,3) == 'CP-'" in test
    assert "substring(option[60].hex,-5,all) == '-3PCC'" in test
    assert class_test("exact") == "option[60].hex == 'exact'"
    assert class_test("CP-?841") is None  # `?` has no Kea spelling: reported, not guessed
    inner = class_test("*dslforum.org*")
    assert inner is not None and inner.count(" or ") == 255 - len("dslforum.org")


def test_kea_reservation_carries_only_what_classes_and_global_do_not(tmp_path: Path) -> None:
    plan = rich_plan(tmp_path)
    layout = KeaLayout(plan)
    first = layout.reservation("00:56:2b:00:00:01")
    # model level 66, phone level 43/125 (forced), nothing the classes already give
    assert sorted(first) == [43, 66, 125]
    assert first[43][1] and first[125][1]
    second = layout.reservation("00:56:2b:00:00:02")
    assert sorted(second) == [160]
    # the last matching inventory class wins for 160, as in labkit's overlay
    assert layout.view("CP-8851-3PCC")[160][0] == b"http://prov.rich.example/88xx"


def test_kea_config_defines_150_160_and_uses_flex_for_159(tmp_path: Path) -> None:
    report = export(rich_plan(tmp_path / "lab"), "kea", tmp_path / "out", interface="lo")
    config = json.loads((tmp_path / "out" / "kea-dhcp4.conf").read_text())["Dhcp4"]
    defs = {(d["space"], d["code"]): d for d in config["option-def"]}
    assert defs[("dhcp4", 150)]["type"] == "ipv4-address" and defs[("dhcp4", 150)]["array"]
    assert defs[("dhcp4", 160)]["type"] == "string"
    assert ("dhcp4", 159) not in defs  # Kea 2.2 predefines 159: an option-def would be refused
    assert all(e.get("code") != 159 for e in config["option-data"])
    flex = config["hooks-libraries"][0]
    assert flex["library"].endswith("libdhcp_flex_option.so")
    add = flex["parameters"]["options"][0]["add"]
    assert "pkt4.mac == 0x00562B000001" in add and b"https://p1.rich.example/x".hex().upper() in add
    assert config["valid-lifetime"] == 7200 and config["renew-timer"] == 3600
    assert report.complete


def test_kea_lease_backends_and_ha(tmp_path: Path) -> None:
    plan = default_plan()
    export(plan, "kea", tmp_path / "pg", lease_backend="postgresql", interface="lo")
    db = json.loads((tmp_path / "pg" / "kea-dhcp4.conf").read_text())["Dhcp4"]["lease-database"]
    assert db["type"] == "postgresql" and db["port"] == 5432
    report = export(plan, "kea", tmp_path / "ha", ha=True, interface="lo")
    assert sorted(p.name for p in report.files) == ["kea-dhcp4-primary.conf", "kea-dhcp4-standby.conf"]
    standby = json.loads((tmp_path / "ha" / "kea-dhcp4-standby.conf").read_text())["Dhcp4"]
    ha = standby["hooks-libraries"][-1]["parameters"]["high-availability"][0]
    assert ha["this-server-name"] == "standby" and ha["mode"] == "hot-standby"
    assert [p["role"] for p in ha["peers"]] == ["primary", "standby"]
    with pytest.raises(ExportError, match="lease backend"):
        export(plan, "kea", tmp_path / "bad", lease_backend="sqlite")


def test_dnsmasq_forms() -> None:
    assert option_lines("dhcp-option=", 66, b"10.0.0.1")[-1] == 'dhcp-option=66,"10.0.0.1"'
    assert option_lines("dhcp-option=", 150, bytes([10, 0, 0, 1, 10, 0, 0, 2])) == \
        ["dhcp-option=150,10.0.0.1,10.0.0.2"]
    subs = (SubOption(1, b"http://acs/"), SubOption(2, b"p"))
    lines = option_lines("dhcp-option=tag:x,", 43, encode_value(43, subs))
    assert lines[-1] == "dhcp-option=tag:x,43," + ":".join(f"{b:02x}" for b in encode_value(43, subs))
    assert '#   dhcp-option=tag:x,encap:43,1,"http://acs/"' in lines
    block = Tr111(gateway_manufacturer_oui="00562B", gateway_serial_number="S").to_block()
    lines = option_lines("dhcp-option-force=", 125, encode_value(125, (block,)))
    assert lines == ['dhcp-option-force=vi-encap:3561,5,"S"', 'dhcp-option-force=vi-encap:3561,4,"00562B"']
    raw = encode_value(125, (VendorBlock(9, ()),))
    assert option_lines("dhcp-option=", 125, raw) == ["dhcp-option=125,00:00:00:09:00"]


def test_dnsmasq_default_lab(tmp_path: Path) -> None:
    report = export(default_plan(), "dnsmasq", tmp_path)
    text = (tmp_path / "dnsmasq.conf").read_text()
    assert report.complete, report.gaps
    assert "no-ping" in text and "duplicate" in text  # the consequence is stated
    assert "dhcp-ignore=tag:!known" in text
    assert "srv-host=_ciscoprov-https._tls.lab.example,prov.lab.example,443,10,10" in text
    assert "dhcp-host=00:56:2b:00:01:14,set:ph-00562b000114,10.42.0.20,3600" in text
    assert (tmp_path / "tftp" / "8851-3PCC.xml").read_bytes() == default_plan().files["8851-3PCC.xml"].data


GAPPY_LAB = RICH_LAB.replace('https: {auth: {user: phone, password: "s3cret pw"}}',
                             'https: {auth: {user: phone, password: pw, scheme: digest}, '
                             'encrypt: {ikm: "0123456789abcdef"}}') + """\
faults:
  - name: drop-offers
    dhcp: {drop: offer}
  - http: {status: 503}
"""


def test_gaps_are_reported_per_item_and_fail_without_allow_partial(tmp_path: Path) -> None:
    from labkit.inventory.load import load
    from labkit.plan.build import build_plan

    plan = build_plan(load(write_lab(tmp_path / "lab", GAPPY_LAB)))
    report = export(plan, "nginx", tmp_path / "nginx")
    items = [g.item for g in report.gaps]
    assert "services.https.auth (digest)" in items
    assert "services.https.encrypt (aes128gcm)" in items
    assert any(i.startswith("faults[1]") and "(http)" in i for i in items)
    assert not any("drop-offers" in i for i in items)  # a DHCP fault is not nginx's concern
    assert report.exit_code == 2
    kea = export(plan, "kea", tmp_path / "kea", allow_partial=True, interface="lo")
    assert [g.item for g in kea.gaps] == ["faults[0] 'drop-offers' (dhcp)"]
    assert kea.exit_code == 0


def test_nginx_basic_auth_file(tmp_path: Path) -> None:
    import base64
    import hashlib

    entry = ssha("s3cret pw", b"saltsalt")
    raw = base64.b64decode(entry.removeprefix("{SSHA}"))
    assert raw == hashlib.sha1(b"s3cret pwsaltsalt").digest() + b"saltsalt"
    export(rich_plan(tmp_path / "lab"), "nginx", tmp_path / "out", state_dir=tmp_path / "state")
    user, _, secret = (tmp_path / "out" / "htpasswd-http").read_text().strip().partition(":")
    assert user == "phone" and secret.startswith("{SSHA}")
    conf = (tmp_path / "out" / "nginx.conf").read_text()
    assert "auth_basic_user_file" in conf and "ssl_certificate" in conf and "$mpp_mac" in conf


def test_unknown_target_and_command_exit_codes(tmp_path: Path) -> None:
    from labkit.cli import app

    with pytest.raises(ExportError, match="unknown export target"):
        export(default_plan(), "isc-dhcpd", tmp_path)
    runner = CliRunner()
    lab = write_lab(tmp_path / "lab", RICH_LAB)
    done = runner.invoke(app, ["export", str(lab), "--to", "dnsmasq", str(tmp_path / "d")])
    assert done.exit_code == 2, done.output
    assert "not exported: dnsmasq: dhcp.classes[0]" in done.output
    done = runner.invoke(app, ["export", str(lab), "--to", "dnsmasq", str(tmp_path / "d"), "--allow-partial"])
    assert done.exit_code == 0, done.output
    done = runner.invoke(app, ["export", "--to", "kea", str(tmp_path / "k"), "--interface", "lo"])
    assert done.exit_code == 0 and (tmp_path / "k" / "kea-dhcp4.conf").is_file()


def test_nginx_carries_redirects_and_skips_disabled_https(tmp_path: Path) -> None:
    from labkit.inventory.load import load
    from labkit.plan.build import build_plan

    lab = """\
    lab: {domain: t.example, address: 192.0.2.1/24}
    services:
      http: {redirects: {"/old.xml": {to: "/8851-3PCC.xml", status: 301}}}
      https: {enabled: false}
    models: {CP-8851-3PCC: {}}
    phones: [{mac: "00:56:2b:00:00:01", model: CP-8851-3PCC, ip: 192.0.2.9}]
    """
    plan = build_plan(load(write_lab(tmp_path / "lab", lab, firmware=False)))
    report = export(plan, "nginx", tmp_path / "out")
    conf = (tmp_path / "out" / "nginx.conf").read_text()
    assert "location = /old.xml { return 301 /8851-3PCC.xml; }" in conf
    assert " ssl" not in conf and report.complete
