"""Reload without restart (issue 14): a real `labkit up --port-offset` whose inventory is edited,
then SIGHUP or `labkit reload`: the new phone gets its profile over HTTP and TFTP, dig sees the
changed record, a lease taken before the reload is still there, and the event log goes on. A
broken inventory is reported with its file:line and the lab keeps serving the plan it had."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from labkit.inventory.load import load
from labkit.plan.build import build_plan
from tests.conftest import require_tool
from tests.helpers import FIRMWARE, labkit, write_lab
from tests.interop.lab_process import LabProcess, start_lab_process, wait_for_event

PHONE1, PHONE2 = "00:56:2b:00:00:01", "00:56:2b:00:00:02"
BEFORE = f"""\
lab: {{domain: t.example, address: 192.0.2.1/24}}
models: {{CP-8851-3PCC: {{firmware: {FIRMWARE}}}}}
dns: {{records: {{pbx: 192.0.2.5}}}}
dhcp: {{options: {{provisioning_url: "http://prov.t.example"}}}}
phones:
  - {{mac: "{PHONE1}", model: CP-8851-3PCC, ip: 192.0.2.9}}
"""
AFTER = BEFORE.replace("192.0.2.5", "192.0.2.6").replace(
    "ip: 192.0.2.9}", "ip: 192.0.2.9, options: {time_offset: 3600}}"
) + f'  - {{mac: "{PHONE2}", model: CP-8851-3PCC, ip: 192.0.2.10}}\n'
BROKEN = AFTER + "phonez: []\n"  # a key labkit does not know, on the last line
BROKEN_LINE = len(BROKEN.splitlines())


def _dig(lab: LabProcess, name: str) -> str:
    dig = require_tool("dig")
    return subprocess.run([dig, "@127.0.0.1", "-p", str(lab.port("dns")), "+short", name, "A"],
                          capture_output=True, text=True, timeout=30, check=True).stdout.strip()


def _simulate(lab: LabProcess, inventory: Path, mac: str) -> dict[str, object]:
    result = labkit("simulate", str(inventory), "--port-offset", str(lab.offset), "--phone", mac,
                    "--state", str(lab.state), "--json", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    outcomes = json.loads(result.stdout)
    return outcomes["outcomes"][0]


def _reloads(lab: LabProcess) -> list[dict[str, object]]:
    return [e for e in lab.events() if e["action"] == "reload"]


def _hup_and_wait(lab: LabProcess, count: int) -> dict[str, object]:
    os.kill(lab.process.pid, signal.SIGHUP)
    wait_for_event(lab, lambda e: len(_reloads(lab)) >= count)
    return _reloads(lab)[count - 1]


def _fetch_profile(lab: LabProcess, tmp_path: Path, path: str) -> tuple[bytes, bytes]:
    curl, tftp = require_tool("curl"), require_tool("tftp")
    http = subprocess.run([curl, "-sf", f"http://127.0.0.1:{lab.port('http')}/{path}"], capture_output=True,
                          timeout=60, check=True).stdout
    out = tmp_path / "by-tftp.cfg"
    subprocess.run([tftp, "127.0.0.1", str(lab.port("tftp")), "-m", "binary", "-c", "get", "/" + path,
                    str(out)], check=True, timeout=60, cwd=tmp_path)
    return http, out.read_bytes()


def test_sighup_reloads_a_new_phone_a_changed_option_and_record_leases_carry_on(tmp_path: Path) -> None:
    inventory = write_lab(tmp_path / "lab", BEFORE)
    lab = start_lab_process(tmp_path, inventory, "--quiet")
    try:
        assert _simulate(lab, inventory, PHONE1)["provisioned"]
        assert PHONE1 in labkit("leases", "--state", str(lab.state)).stdout
        assert _dig(lab, "pbx.t.example") == "192.0.2.5"
        events_before = len(lab.events())
        inventory.write_text(AFTER)
        reload = _hup_and_wait(lab, 1)
        assert reload["result"] == "ok", reload
        diff = reload["detail"]["diff"]
        assert diff["phones"] == {"added": [PHONE2], "changed": [PHONE1]}
        assert diff["options"] == {PHONE1: [2]}  # time offset, by code
        assert diff["zones"] == {"changed": ["t.example"]}
        assert any("00562b000002" in path for path in diff["files"]["added"])
        assert _dig(lab, "pbx.t.example") == "192.0.2.6"
        profile = "Cisco/CP-8851-3PCC/00562b000002.cfg"
        expected = build_plan(load(inventory)).files[profile].data
        assert _fetch_profile(lab, tmp_path, profile) == (expected, expected)
        assert _simulate(lab, inventory, PHONE2)["provisioned"]
        leases = labkit("leases", "--state", str(lab.state)).stdout
        assert PHONE1 in leases and PHONE2 in leases  # the lease taken before the reload stayed
        events = lab.events()
        assert len(events) > events_before and events[:events_before] == lab.events()[:events_before]
    finally:
        code, printed = lab.stop()
    assert code == 0, printed
    assert "labkit: reloaded: phones: 1 added (00:56:2b:00:00:02)" in printed


def test_a_broken_inventory_is_reported_with_file_and_line_and_the_old_plan_stays(tmp_path: Path) -> None:
    inventory = write_lab(tmp_path / "lab", BEFORE)
    lab = start_lab_process(tmp_path, inventory, "--quiet")
    try:
        inventory.write_text(BROKEN)
        reload = _hup_and_wait(lab, 1)
        assert reload["result"] == "error"
        assert f"{inventory}:{BROKEN_LINE}" in str(reload["detail"]["lines"]), reload
        assert _dig(lab, "pbx.t.example") == "192.0.2.5"  # still the plan it started with
        assert lab.process.poll() is None
        # `labkit reload` does the same, and says so by its exit code
        broken = labkit("reload", "--state", str(lab.state))
        assert broken.returncode == 1 and f"{inventory}:{BROKEN_LINE}" in broken.stderr, broken.stderr
        inventory.write_text(AFTER)
        fixed = labkit("reload", "--state", str(lab.state))
        assert fixed.returncode == 0, fixed.stderr
        assert "phones: 1 added (00:56:2b:00:00:02)" in fixed.stdout
        assert _dig(lab, "pbx.t.example") == "192.0.2.6"
    finally:
        code, printed = lab.stop()
    assert code == 0, printed
    assert f"{inventory}:{BROKEN_LINE}" in printed and "reload failed, the running plan stays" in printed
    assert not (lab.state / "labkit.pid").exists()  # removed when the lab stopped


def test_reload_without_a_running_lab_says_so(tmp_path: Path) -> None:
    result = labkit("reload", "--state", str(tmp_path))
    assert result.returncode == 1 and "no lab is running" in result.stderr


def test_up_watch_reloads_when_the_inventory_changes(tmp_path: Path) -> None:
    curl = require_tool("curl")
    inventory = write_lab(tmp_path / "lab", BEFORE)
    lab = start_lab_process(tmp_path, inventory, "--quiet", "--watch")
    url = f"http://127.0.0.1:{lab.port('http')}/gone.cfg"
    try:
        status = subprocess.run([curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", url],
                                capture_output=True, text=True, timeout=60).stdout
        assert status == "404"
        inventory.write_text(BEFORE + 'faults: [{name: gone, match: {path: "/gone.cfg"}, '
                             'http: {status: 410}}]\n')
        reload = wait_for_event(lab, lambda e: e["action"] == "reload")  # no signal: the watch saw it
        assert reload["result"] == "ok" and reload["detail"]["diff"]["faults"] == {"added": ["gone"]}
        status = subprocess.run([curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", url],
                                capture_output=True, text=True, timeout=60).stdout
        assert status == "410"
        wait_for_event(lab, lambda e: e["action"] == "fault" and e.get("detail", {}).get("rule") == "gone")
    finally:
        code, printed = lab.stop()
    assert code == 0, printed
