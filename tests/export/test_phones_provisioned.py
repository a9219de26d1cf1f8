"""The default lab's virtual phones, all of them, provisioned by exported engines only.

(a) the exported dnsmasq (DHCP, DNS, TFTP) with the exported nginx for HTTP(S);
(b) the exported Kea + Knot + nginx + tftpd-hpa.
`labkit simulate --against 10.42.0.1 --interface IF` boots the phones from the client namespace
of a veth pair we create; the pass criteria are the ones it applies to `labkit up`: every phone
provisioned (exit 0), from its own per-phone profile, on its model's firmware.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from labkit.export import export
from labkit.plan.build import Plan
from labkit.plan.profiles import firmware_version
from tests.conftest import require_tool
from tests.export.labs import default_plan
from tests.export.test_serving import SERVER, start
from tests.interop import netns


def _nginx(seg: netns.Segment, plan: Plan, out: Path) -> None:
    export(plan, "nginx", out / "nginx", state_dir=out / "state")
    n = out / "nginx"
    start(seg, [require_tool("nginx"), "-c", str(n / "nginx.conf"), "-p", f"{n}/", "-g",
                "daemon off; user root;"], out / "nginx.log", "")


def dnsmasq_stack(seg: netns.Segment, plan: Plan, out: Path) -> None:
    dnsmasq = require_tool("dnsmasq")
    export(plan, "dnsmasq", out / "dnsmasq", interface=seg.server_if)
    conf = out / "dnsmasq" / "dnsmasq.conf"
    start(seg, [dnsmasq, "-k", "--user=root", "--log-facility=-", "-C", str(conf)], out / "dnsmasq.log",
          "started")
    _nginx(seg, plan, out)


def kea_stack(seg: netns.Segment, plan: Plan, out: Path) -> None:
    kea, knotd = require_tool("kea-dhcp4"), require_tool("knotd")
    require_tool("in.tftpd")
    export(plan, "kea", out / "kea", interface=seg.server_if)
    run = out / "run"
    run.mkdir()
    start(seg, ["env", f"KEA_LOCKFILE_DIR={run}", f"KEA_PIDFILE_DIR={run}", kea, "-c",
                str(out / "kea" / "kea-dhcp4.conf")], out / "kea.log", "DHCP4_STARTED")
    export(plan, "knot", out / "knot", primary_address=SERVER, primary_port=53)
    start(seg, [knotd, "-c", str(out / "knot" / "knot-primary.conf")], out / "knot.log", "server started")
    export(plan, "tftpd-hpa", out / "tftpd")
    command = (out / "tftpd" / "run-tftpd.sh").read_text().splitlines()[-1].removeprefix("exec ").split()
    seg.start(seg.server, command, out / "tftpd.log")
    _nginx(seg, plan, out)


STACKS: dict[str, Callable[[netns.Segment, Plan, Path], None]] = {
    "dnsmasq+nginx": dnsmasq_stack, "kea+knot+nginx+tftpd-hpa": kea_stack}


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_every_default_lab_phone_is_provisioned_by_the_exports(stack: str, tmp_path: Path) -> None:
    plan = default_plan()
    out = tmp_path.resolve()
    with netns.segment(server_address=f"{SERVER}/24") as seg:
        STACKS[stack](seg, plan, out)
        done = seg.client.run(netns.PYTHON, "-m", "labkit", "simulate", "--against", SERVER,
                              "--interface", seg.client_if, "--ca", str(out / "nginx" / "tls" / "ca.crt"),
                              "--time-scale", "60", "--json", timeout=300, check=False, cwd=netns.REPO)
    tail = done.stdout[-3000:] + done.stderr[-3000:]
    assert done.returncode == 0, f"simulate exited {done.returncode}:\n{tail}"
    outcomes = {o["mac"]: o for o in json.loads(done.stdout)["outcomes"]}
    assert sorted(outcomes) == sorted(plan.phones)
    for mac, phone_plan in plan.phones.items():
        outcome, phone = outcomes[mac], phone_plan.phone
        assert outcome["provisioned"], outcome
        assert outcome["ip"] == str(phone.ip)
        assert outcome["profile_source"].endswith(f"/Cisco/{phone.model}/{mac.replace(':', '')}.cfg")
        assert outcome["firmware"] == firmware_version(plan.inventory, phone.model)
