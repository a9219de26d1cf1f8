"""The README's first command: `labkit up --loopback` on the embedded default lab, end to end."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from labkit.inventory.load import load
from labkit.plan.build import build_plan
from tests.conftest import require_tool
from tests.interop.lab_process import start_lab_process, wait_for_event


def test_up_loopback_serves_every_protocol_and_stops_cleanly(tmp_path: Path) -> None:
    dig, curl, tftp, logger = (require_tool(t) for t in ("dig", "curl", "tftp", "logger"))
    lab = start_lab_process(tmp_path, loopback=True)
    process = lab.process
    text = "\n".join(lab.banner)
    for endpoint in ("127.0.0.1:10053", "127.0.0.1:10069", "127.0.0.1:10080", "127.0.0.1:10443",
                     "127.0.0.1:10514"):
        assert endpoint in text
    try:
        srv = subprocess.run([dig, "@127.0.0.1", "-p", "10053", "+norec", "_ciscoprov-https._tls.lab.example",
                              "SRV"], capture_output=True, text=True, timeout=30).stdout
        assert "10 10 443 prov.lab.example." in srv and "flags: qr aa" in srv
        out = tmp_path / "model.xml"
        subprocess.run([tftp, "127.0.0.1", "10069", "-m", "binary", "-c", "get", "/8851-3PCC.xml", str(out)],
                       check=True, timeout=60, cwd=tmp_path)
        plan = build_plan(load(None))
        assert out.read_bytes() == plan.files["8851-3PCC.xml"].data
        page = subprocess.run([curl, "-s", "--cacert", str(tmp_path / "state" / "ca" / "ca.pem"),
                               "--resolve", "prov.lab.example:10443:127.0.0.1",
                               "https://prov.lab.example:10443/Cisco/CP-6841-3PCC/00562b000114.cfg"],
                              capture_output=True, timeout=60).stdout
        assert page == plan.files["Cisco/CP-6841-3PCC/00562b000114.cfg"].data
        subprocess.run([logger, "--udp", "--server", "127.0.0.1", "--port", "10514", "bench says hi"],
                       check=True, timeout=30)
        wait_for_event(lab, lambda e: e["request"] == "bench says hi")
        services = {e["service"] for e in lab.events()}
        assert {"dns", "tftp", "https", "syslog"} <= services
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGINT)  # Ctrl-C, as a person stops it
        rest = process.communicate(timeout=30)[0]
    assert process.returncode == 0, rest
    assert "Traceback" not in rest
    assert "labkit: stopped" in rest


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_up_stops_cleanly_on_every_stop_signal(tmp_path: Path, sig: signal.Signals) -> None:
    """Issue 10 item 11: a stop signal ends `labkit up` with its event log flushed and whole."""
    lab = start_lab_process(tmp_path)
    try:
        subprocess.run([require_tool("logger"), "--udp", "--server", "127.0.0.1", "--port",
                        str(lab.port("syslog")), "before the signal"], check=True, timeout=30)
        wait_for_event(lab, lambda e: e["request"] == "before the signal")
    finally:
        os.kill(lab.process.pid, sig)
        rest = lab.process.communicate(timeout=30)[0]
    assert lab.process.returncode == 0, rest
    assert "Traceback" not in rest and "labkit: stopped" in rest
    assert lab.events()[-1]["request"] == "before the signal"  # the log was flushed and closed whole


def test_up_reloads_on_sighup_and_keeps_serving(tmp_path: Path) -> None:
    """Issue 14: SIGHUP no longer ends `labkit up` (it used to stop it, issue 10 item 11): it
    reloads the inventory, and the lab goes on serving and logging."""
    logger = require_tool("logger")
    lab = start_lab_process(tmp_path)
    try:
        os.kill(lab.process.pid, signal.SIGHUP)
        reload = wait_for_event(lab, lambda e: e["action"] == "reload")
        assert reload["result"] == "ok" and reload["answer"] == "nothing changed", reload
        assert lab.process.poll() is None
        subprocess.run([logger, "--udp", "--server", "127.0.0.1", "--port", str(lab.port("syslog")),
                        "after the reload"], check=True, timeout=30)
        wait_for_event(lab, lambda e: e["request"] == "after the reload")
    finally:
        code, rest = lab.stop()
    assert code == 0, rest
    assert "Traceback" not in rest and "labkit: stopped" in rest
