"""Each export passes its engine's own checker, for the default lab and a lab with classes,
per-phone options and auth. Skips without the engine (fails under LABKIT_REQUIRE_INTEROP=1)."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from labkit.export import export
from labkit.plan.build import Plan
from tests.conftest import require_tool
from tests.export.labs import default_plan, rich_plan

LABS = ["default", "rich"]


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Plan]:
    return {"default": default_plan(), "rich": rich_plan(tmp_path_factory.mktemp("rich"))}


def run(*args: str | Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})
    command = " ".join(map(str, args))
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done.stdout + done.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kea_check(conf: Path, run_dir: Path) -> None:
    tool = require_tool("kea-dhcp4")
    run_dir.mkdir(exist_ok=True)
    run(tool, "-t", conf, env={"KEA_LOCKFILE_DIR": str(run_dir), "KEA_PIDFILE_DIR": str(run_dir)})


@pytest.mark.parametrize("lab", LABS)
@pytest.mark.parametrize("backend", ["memfile", "postgresql", "mysql"])
def test_kea(plans: dict[str, Plan], lab: str, backend: str, tmp_path: Path) -> None:
    report = export(plans[lab], "kea", tmp_path, interface="lo", lease_backend=backend)
    assert report.complete, report.gaps
    kea_check(tmp_path / "kea-dhcp4.conf", tmp_path / "run")


@pytest.mark.parametrize("lab", LABS)
def test_kea_ha_pair(plans: dict[str, Plan], lab: str, tmp_path: Path) -> None:
    export(plans[lab], "kea", tmp_path, interface="lo", ha=True)
    for role in ("primary", "standby"):
        kea_check(tmp_path / f"kea-dhcp4-{role}.conf", tmp_path / "run")


@pytest.mark.parametrize("lab", LABS)
def test_dnsmasq(plans: dict[str, Plan], lab: str, tmp_path: Path) -> None:
    tool = require_tool("dnsmasq")
    export(plans[lab], "dnsmasq", tmp_path, interface="lo")
    assert "syntax check OK" in run(tool, "--test", "-C", tmp_path / "dnsmasq.conf")


@pytest.mark.parametrize("lab", LABS)
def test_knot(plans: dict[str, Plan], lab: str, tmp_path: Path) -> None:
    knotc, kzonecheck = require_tool("knotc"), require_tool("kzonecheck")
    report = export(plans[lab], "knot", tmp_path)
    assert report.complete, report.gaps
    for role in ("primary", "secondary"):
        run(knotc, "-c", tmp_path / f"knot-{role}.conf", "conf-check")
    for zone in plans[lab].zones.values():
        run(kzonecheck, "-o", zone.name, tmp_path / "zones" / zone.file_name)


@pytest.mark.parametrize("lab", LABS)
def test_nsd(plans: dict[str, Plan], lab: str, tmp_path: Path) -> None:
    checkconf, checkzone = require_tool("nsd-checkconf"), require_tool("nsd-checkzone")
    export(plans[lab], "nsd", tmp_path)
    for role in ("primary", "secondary"):
        run(checkconf, tmp_path / f"nsd-{role}.conf")
    for zone in plans[lab].zones.values():
        run(checkzone, zone.name, tmp_path / "zones" / zone.file_name)


@pytest.mark.parametrize("lab", LABS)
def test_bind(plans: dict[str, Plan], lab: str, tmp_path: Path) -> None:
    tool = require_tool("named-checkconf")
    export(plans[lab], "bind", tmp_path)
    output = run(tool, "-z", tmp_path / "named-primary.conf")
    for zone in plans[lab].zones.values():
        assert f"zone {zone.name}/IN: loaded serial" in output
    run(tool, tmp_path / "named-secondary.conf")  # its zone files come by transfer


@pytest.mark.parametrize("lab", LABS)
def test_nginx(plans: dict[str, Plan], lab: str, tmp_path: Path) -> None:
    tool = require_tool("nginx")
    # `nginx -t` binds its listen addresses for a moment: free loopback ports, never the lab's
    export(plans[lab], "nginx", tmp_path, state_dir=tmp_path / "state",
           http_listen=f"127.0.0.1:{free_port()}", https_listen=f"127.0.0.1:{free_port()}")
    out = tmp_path.resolve()
    assert "test is successful" in run(tool, "-t", "-c", out / "nginx.conf", "-p", f"{out}/")


@pytest.mark.parametrize("lab", LABS)
def test_tftpd_tree_and_command(plans: dict[str, Plan], lab: str, tmp_path: Path) -> None:
    export(plans[lab], "tftpd-hpa", tmp_path)
    script = (tmp_path / "run-tftpd.sh").read_text()
    assert "in.tftpd --listen --foreground" in script and "--secure" in script
    assert "--create" not in script  # read-only, as labkit without upload_dir
    for rel, planned in plans[lab].files.items():
        served = tmp_path / "tftp" / rel
        source = planned.disk_path
        expected = planned.data if planned.data is not None else source.read_bytes() if source else b""
        assert served.read_bytes() == expected, rel


def test_all_targets_side_by_side(plans: dict[str, Plan], tmp_path: Path) -> None:
    report = export(plans["default"], "all", tmp_path, interface="lo", state_dir=tmp_path / "state")
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == sorted(
        ["kea", "dnsmasq", "knot", "nsd", "bind", "nginx", "tftpd-hpa", "state"])
    # the default lab runs a syslog receiver, which no target carries: reported, exit 2
    assert [g.item for g in report.gaps] == ["services.syslog"]
    assert report.exit_code == 2


def test_kea_takes_a_phone_with_neither_address_nor_options_of_its_own(tmp_path: Path) -> None:
    """A reservation must reserve something in Kea: such a phone gets a test-less class."""
    from labkit.inventory.load import load
    from labkit.plan.build import build_plan
    from tests.helpers import write_lab

    lab = """\
    lab: {domain: t.example, address: 192.0.2.1/24, pool: {start: 192.0.2.100, end: 192.0.2.199}}
    models: {CP-8851-3PCC: {}}
    phones: [{mac: "00:56:2b:00:00:01", model: CP-8851-3PCC}]
    """
    plan = build_plan(load(write_lab(tmp_path / "lab", lab, firmware=False)))
    export(plan, "kea", tmp_path / "out", interface="lo")
    kea_check(tmp_path / "out" / "kea-dhcp4.conf", tmp_path / "run")
