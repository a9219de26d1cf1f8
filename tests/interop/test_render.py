"""`labkit render` output checked by the field's own tools: named-checkzone and openssl enc -d."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from labkit.formats import flat_profile
from labkit.inventory.load import default_lab_dir, load
from labkit.plan.build import build_plan
from labkit.plan.write import write_plan
from tests.conftest import require_tool


def render_cli(inventory: Path | None, out: Path) -> None:
    args = [sys.executable, "-m", "labkit", "render", "-o", str(out)]
    if inventory is not None:
        args.insert(4, str(inventory))
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def default_render(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plan")
    render_cli(None, out)
    return out


def test_rendered_zones_pass_named_checkzone(default_render: Path) -> None:
    checkzone = require_tool("named-checkzone")
    zones = sorted((default_render / "zones").glob("*.zone"))
    names = {z.name for z in zones}
    assert names == {"lab.example.zone", "activate.cisco.com.zone", "webapps.cisco.com.zone",
                     "activation.webex.com.zone"}
    for zone in zones:
        origin = zone.name.removesuffix(".zone")
        result = subprocess.run([checkzone, "-k", "fail", "-i", "full", origin, str(zone)],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "OK" in result.stdout


def test_lab_zone_has_the_srv_records_and_their_targets(default_render: Path) -> None:
    from dnslib import QTYPE, RR

    records = RR.fromZone((default_render / "zones" / "lab.example.zone").read_text())
    by_type: dict[str, list[str]] = {}
    for rr in records:
        by_type.setdefault(QTYPE[rr.rtype], []).append(f"{rr.rname} {rr.rdata}")
    assert "_ciscoprov-https._tls.lab.example. 10 10 443 prov.lab.example." in by_type["SRV"]
    assert "_ciscoprov-http._tcp.lab.example. 20 10 80 prov.lab.example." in by_type["SRV"]
    assert "prov.lab.example. 10.42.0.1" in by_type["A"]
    assert len(by_type["SOA"]) == 1


def test_files_tree_has_model_and_phone_profiles(default_render: Path) -> None:
    files = default_render / "files"
    for psn in ("6841-3PCC", "7841-3PCC", "8851-3PCC"):
        params = flat_profile.parse((files / f"{psn}.xml").read_bytes())
        assert params["Profile_Rule"].value == "http://prov.lab.example/Cisco/$PN/$MA.cfg"
        assert params["Upgrade_Rule"].value.endswith(".loads")
    cfgs = sorted(files.glob("Cisco/*/*.cfg"))
    assert len(cfgs) == 24
    one = files / "Cisco" / "CP-7841-3PCC" / "00562b000228.cfg"
    params = flat_profile.parse(one.read_bytes())
    assert params["User_ID_1_"].value == "1040"
    assert params["Password_1_"].access == "na"
    assert params["Station_Name"].value == "7841-1"
    firmware = files / "sip78xx.12-0-1MPP-0001.loads"
    assert firmware.read_bytes() == (default_lab_dir() / "firmware" / firmware.name).read_bytes()


def test_dhcp_json_has_every_option_as_hex_and_decoded(default_render: Path) -> None:
    data = json.loads((default_render / "dhcp.json").read_text())
    phone = data["phones"]["00:56:2b:00:03:3c"]
    assert phone["vendor_class"] == "CP-8851-3PCC"
    options = {o["code"]: o for o in phone["options"]}
    assert options[150]["hex"] == "0a2a0001" and options[150]["decoded"] == ["10.42.0.1"]
    assert options[160]["decoded"] == "http://prov.lab.example"
    assert options[160]["level"] == "class CP-*-3PCC"
    assert bytes.fromhex(options[15]["hex"]) == b"lab.example"
    assert options[51]["decoded"] == 3600 and options[58]["decoded"] == 1800
    tr069 = data["pool"]["classes"]["*dslforum.org*"]
    by_code = {o["code"]: o for o in tr069}
    assert by_code[43]["decoded"]["tr069"]["acs_url"] == "http://acs.lab.example:7547/"
    assert by_code[125]["decoded"][0]["tr111"]["gateway_product_class"] == "labkit"
    assert by_code[125]["always_sent"] is True  # forced: phones never ask for 125


ENCRYPTED = """\
lab:
  domain: enc.example
  address: 192.0.2.1/24
profiles:
  encryption: {key: "s3cret pass", digest: DIGEST}
  gzip: GZIP
models:
  CP-8851-3PCC: {}
phones:
  - {mac: "00:56:2b:aa:bb:01", model: CP-8851-3PCC, ip: 192.0.2.10}
"""


@pytest.mark.parametrize("digest", ["md5", "sha256"])
@pytest.mark.parametrize("compressed", [False, True])
def test_encrypted_profiles_decrypt_with_openssl(tmp_path: Path, digest: str, compressed: bool) -> None:
    openssl = require_tool("openssl")
    inventory = tmp_path / "lab.yaml"
    inventory.write_text(ENCRYPTED.replace("DIGEST", digest).replace("GZIP", str(compressed).lower()))
    out = tmp_path / "plan"
    render_cli(inventory, out)
    cfg = out / "files" / "Cisco" / "CP-8851-3PCC" / "00562baabb01.cfg"
    data = cfg.read_bytes()
    assert data.startswith(b"Salted__")
    result = subprocess.run(
        [openssl, "enc", "-d", "-aes-256-cbc", "-md", digest, "-k", "s3cret pass", "-in", str(cfg)],
        capture_output=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    plain = gzip.decompress(result.stdout) if compressed else result.stdout
    assert plain.startswith(b"<?xml")
    params = flat_profile.parse(plain)
    assert params["Profile_Rule"].value == '[--key "s3cret pass"]http://prov.enc.example/Cisco/$PN/$MA.cfg'
    # the bootstrap profile stays readable: a factory phone has no key yet
    assert (out / "files" / "8851-3PCC.xml").read_bytes().startswith(b"<?xml")


def test_render_is_deterministic(tmp_path: Path) -> None:
    inventory = tmp_path / "lab.yaml"
    inventory.write_text(ENCRYPTED.replace("DIGEST", "md5").replace("GZIP", "true"))
    plans = [build_plan(load(inventory)) for _ in range(2)]
    assert {k: v.data for k, v in plans[0].files.items()} == {k: v.data for k, v in plans[1].files.items()}
    assert [z.text for z in plans[0].zones.values()] == [z.text for z in plans[1].zones.values()]


def test_render_replaces_stale_files(tmp_path: Path) -> None:
    import json

    import pytest

    from labkit.plan.write import MANIFEST, RenderRefused

    plan = build_plan(load(None))
    stale = tmp_path / "files" / "old.xml"
    stale.parent.mkdir(parents=True)
    stale.write_text("stale")
    (tmp_path / MANIFEST).write_text(json.dumps({"written": ["files/old.xml"]}))  # an earlier render's
    write_plan(plan, tmp_path)
    assert not stale.exists()
    foreign = tmp_path / "files" / "mine.txt"  # not labkit's: kept unless forced
    foreign.write_text("mine")
    with pytest.raises(RenderRefused, match=r"files/mine\.txt"):
        write_plan(plan, tmp_path)
    assert foreign.exists()
    write_plan(plan, tmp_path, force=True)
    assert not foreign.exists()
