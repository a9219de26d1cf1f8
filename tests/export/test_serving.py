"""The exports really serve: engines started from the exported files in network namespaces we
create (never on this machine's interfaces), asked the way a phone asks.

DHCP: a phone's DISCOVER/REQUEST to the exported Kea and dnsmasq; the ACK's options must equal
the plan's for that phone, byte for byte per option (a diff is printed when not). DNS: dig asks
the exported Knot/NSD/BIND primary and its secondary (after the transfer) for the SRV record.
HTTP(S): curl fetches a per-phone profile from the exported nginx; TFTP: tftp from tftpd-hpa.
"""

from __future__ import annotations

import functools
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labkit.export import export
from labkit.plan.build import Plan
from tests.conftest import require_tool
from tests.export.compare import expected_options, option_diff
from tests.export.dhcp_probe import PHONE_PRL
from tests.export.labs import default_plan, rich_plan
from tests.interop import netns

SERVER = "10.42.0.1"


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Plan]:
    return {"default": default_plan(), "rich": rich_plan(tmp_path_factory.mktemp("rich"))}


@pytest.fixture
def seg() -> Iterator[netns.Segment]:
    with netns.segment(server_address=f"{SERVER}/24", client_address="10.42.0.254/24") as built:
        yield built


def start(seg: netns.Segment, args: list[str], log: Path, ready: str) -> None:
    """Start an engine in the server namespace (stopped by PID at segment close); wait for `ready`."""
    process = seg.start(seg.server, args, log)

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"{args[0]} exited {process.returncode}:\n{log.read_text()}")
        return ready in log.read_text(errors="replace")

    netns.wait_for(up, 60, f"{args[0]} to start ({ready!r} in {log})")


def sample_phones(plan: Plan) -> list[str]:
    """One phone per model (the overlay differs by model), every phone of a small lab."""
    by_model: dict[str, str] = {}
    for mac, phone_plan in plan.phones.items():
        by_model.setdefault(phone_plan.phone.model, mac)
    return list(by_model.values())


def check_phone(seg: netns.Segment, plan: Plan, mac: str, *, nul_ended: frozenset[int] = frozenset()) -> None:
    phone_plan = plan.phones[mac]
    done = seg.client.run(netns.PYTHON, "-m", "tests.export.dhcp_probe",
                          json.dumps({"iface": seg.client_if, "mac": mac, "vendor": phone_plan.vendor_class}),
                          cwd=netns.REPO, timeout=60)
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["ack"] is not None and result["ack"]["type"] == "ack", f"{mac}: no ACK: {result}"
    if phone_plan.phone.ip is not None:
        assert result["ack"]["ip"] == str(phone_plan.phone.ip)
    got = dict(result["ack"]["options"])
    for code in nul_ended:  # dnsmasq ends these with a NUL byte (reported by its export)
        if str(code) in got and got[str(code)].endswith("00"):
            print(f"{mac}: option {code} came NUL-ended, as the dnsmasq export reports")
            got[str(code)] = got[str(code)][:-2]
    diff = option_diff(expected_options(phone_plan.options, PHONE_PRL), got)
    assert not diff, f"{mac} ({phone_plan.phone.model}): the reply differs from the plan:\n" + "\n".join(diff)


@pytest.mark.parametrize("lab", ["default", "rich"])
def test_kea_answers_each_phone_with_the_planned_bytes(plans: dict[str, Plan], lab: str,
                                                       seg: netns.Segment, tmp_path: Path) -> None:
    kea = require_tool("kea-dhcp4")
    report = export(plans[lab], "kea", tmp_path, interface=seg.server_if)
    assert report.complete, report.gaps
    run = tmp_path / "run"
    run.mkdir()
    start(seg, ["env", f"KEA_LOCKFILE_DIR={run}", f"KEA_PIDFILE_DIR={run}", kea, "-c",
                str(tmp_path / "kea-dhcp4.conf")], tmp_path / "kea.log", "DHCP4_STARTED")
    for mac in sample_phones(plans[lab]):
        check_phone(seg, plans[lab], mac)


def dig(seg: netns.Segment, name: str, rtype: str, *, port: int = 53) -> str:
    done = seg.client.run(require_tool("dig"), "+short", "+time=2", "+tries=1", "-p", str(port),
                          f"@{SERVER}", name, rtype, timeout=30, check=False)
    return done.stdout.strip()


def planned_srv(plan: Plan) -> tuple[str, str]:
    """(owner name, dig +short text) of the lab zone's first SRV record."""
    zone = plan.zones[plan.inventory.lab.domain]
    srv = next(r for r in zone.records if r.rtype == 33)
    d = srv.rdata
    return str(srv.rname), f"{d.priority} {d.weight} {d.port} {d.target}"


def tftp_get(seg: netns.Segment, name: str, target: Path) -> bytes:
    seg.client.run(require_tool("tftp"), "-m", "binary", SERVER, "-c", "get", name, str(target), timeout=60)
    return target.read_bytes()


@pytest.mark.parametrize("lab", ["default", "rich"])
def test_dnsmasq_answers_dhcp_dns_and_tftp(plans: dict[str, Plan], lab: str,
                                          seg: netns.Segment, tmp_path: Path) -> None:
    dnsmasq = require_tool("dnsmasq")
    plan = plans[lab]
    export(plan, "dnsmasq", tmp_path, interface=seg.server_if, allow_partial=True)
    # --user=root: the pytest folder is not readable by dnsmasq's usual `nobody`
    start(seg, [dnsmasq, "-k", "--user=root", "--log-facility=-", "-C", str(tmp_path / "dnsmasq.conf")],
          tmp_path / "dnsmasq.log", "started")
    for mac in sample_phones(plan):
        check_phone(seg, plan, mac, nul_ended=frozenset({66}))
    name, answer = planned_srv(plan)
    assert netns.wait_for(lambda: dig(seg, name, "SRV"), 30, "dnsmasq's SRV answer") == answer
    profile = next(p for p in plan.files.values() if p.kind == "phone profile")
    assert tftp_get(seg, profile.path, tmp_path / "got.cfg") == profile.data


DNS_ENGINES = {
    # target: (tools, primary command, secondary command, readiness text)
    "knot": (["knotd"], lambda d: ["knotd", "-c", str(d / "knot-primary.conf")],
             lambda d: ["knotd", "-c", str(d / "knot-secondary.conf")], "server started"),
    "nsd": (["nsd"], lambda d: ["nsd", "-d", "-c", str(d / "nsd-primary.conf")],
            lambda d: ["nsd", "-d", "-c", str(d / "nsd-secondary.conf")], "nsd started"),
    "bind": (["named"], lambda d: ["named", "-g", "-c", str(d / "named-primary.conf")],
             lambda d: ["named", "-g", "-c", str(d / "named-secondary.conf")], "running"),
}


@pytest.mark.parametrize("target", sorted(DNS_ENGINES))
def test_authoritative_dns_primary_and_secondary_answer_srv(plans: dict[str, Plan], target: str,
                                                            seg: netns.Segment, tmp_path: Path) -> None:
    tools, primary, secondary, ready = DNS_ENGINES[target]
    for tool in tools:
        require_tool(tool)
    plan = plans["default"]
    out = tmp_path.resolve()
    export(plan, target, out, primary_address=SERVER, primary_port=53,
           secondary_address=SERVER, secondary_port=5353)
    start(seg, primary(out), tmp_path / "primary.log", ready)
    start(seg, secondary(out), tmp_path / "secondary.log", ready)
    name, answer = planned_srv(plan)
    assert netns.wait_for(lambda: dig(seg, name, "SRV"), 30, f"{target} primary's SRV") == answer
    # the secondary has the zone only once the transfer is done
    assert netns.wait_for(lambda: dig(seg, name, "SRV", port=5353), 60,
                          f"{target} secondary's SRV") == answer
    status = seg.client.run("dig", "-p", "53", f"@{SERVER}", "x.activate.cisco.com", "A", check=False).stdout
    assert "status: NXDOMAIN" in status  # a sinkhole name stays unreachable


def curl(seg: netns.Segment, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return seg.client.run(require_tool("curl"), "-s", "-o", "/dev/stdout", "-w", "\n%{http_code}",
                          *args, url, check=False, timeout=30)


@pytest.mark.parametrize("lab", ["default", "rich"])
def test_nginx_serves_a_phone_profile_over_http_and_https(plans: dict[str, Plan], lab: str,
                                                          seg: netns.Segment, tmp_path: Path) -> None:
    nginx = require_tool("nginx")
    plan = plans[lab]
    out = tmp_path.resolve()
    export(plan, "nginx", out, state_dir=out / "state")
    start(seg, [nginx, "-c", str(out / "nginx.conf"), "-p", f"{out}/", "-g", "daemon off; user root;"],
          tmp_path / "nginx.log", "")
    profile = next(p for p in plan.files.values() if p.kind == "phone profile")
    host = plan.tls_names[0]
    auth = plan.inventory.services.http.auth
    creds = ["-u", f"{auth.user}:{auth.password}"] if auth else []
    agent = ["-A", f"Cisco-{profile.model}/12.0.1 ({(profile.mac or '').replace(':', '')})"]
    http = netns.wait_for(lambda: (r := curl(seg, f"http://{SERVER}/{profile.path}", *creds, *agent))
                          .stdout.endswith("200") and r, 30, "nginx over HTTP")
    assert http.stdout.rsplit("\n", 1)[0].encode() == profile.data
    https = curl(seg, f"https://{host}/{profile.path}", "--cacert", str(out / "tls" / "ca.crt"),
                 "--resolve", f"{host}:443:{SERVER}", *creds, *agent)
    assert https.stdout.rsplit("\n", 1) == [(profile.data or b"").decode(), "200"]
    if auth is not None:
        assert curl(seg, f"http://{SERVER}/{profile.path}").stdout.endswith("401")
    log = (out / "logs" / "http-access.log").read_text()
    assert f"phone={(profile.mac or '').replace(':', '')}" in log  # the phone named from its User-Agent


def test_tftpd_hpa_serves_the_tree(plans: dict[str, Plan], seg: netns.Segment, tmp_path: Path) -> None:
    require_tool("in.tftpd")
    plan = plans["default"]
    report = export(plan, "tftpd-hpa", tmp_path)
    command = (tmp_path / "run-tftpd.sh").read_text().splitlines()[-1].removeprefix("exec ").split()
    assert report.complete
    process = seg.start(seg.server, command, tmp_path / "tftpd.log")
    profile = next(p for p in plan.files.values() if p.kind == "model profile")

    def fetched() -> bytes:
        assert process.poll() is None, (tmp_path / "tftpd.log").read_text()
        got = tmp_path / "got"
        done = seg.client.run("tftp", "-m", "binary", SERVER, "-c", "get", profile.path, str(got),
                              check=False)
        return got.read_bytes() if done.returncode == 0 and got.exists() else b""

    assert netns.wait_for(fetched, 30, "tftpd-hpa to serve") == profile.data


POOL_CLIENTS = {"00:56:2b:aa:00:01": "CP-8851-3PCC",  # both classes: the later one wins 160
                "00:56:2b:aa:00:02": "CP-7841-3PCC",  # the first class only
                "00:56:2b:aa:00:03": "SPA-other"}  # no class: the global level


@pytest.mark.parametrize("engine", ["kea", "dnsmasq"])
def test_pool_clients_get_their_class_overlay(plans: dict[str, Plan], engine: str,
                                              seg: netns.Segment, tmp_path: Path) -> None:
    from labkit.plan.dhcp import option_set

    plan = plans["rich"]  # answer: any, two overlapping classes
    if engine == "kea":
        kea = require_tool("kea-dhcp4")
        export(plan, "kea", tmp_path, interface=seg.server_if)
        (tmp_path / "run").mkdir()
        run = tmp_path / "run"
        start(seg, ["env", f"KEA_LOCKFILE_DIR={run}", f"KEA_PIDFILE_DIR={run}", kea, "-c",
                    str(tmp_path / "kea-dhcp4.conf")], tmp_path / "kea.log", "DHCP4_STARTED")
    else:
        export(plan, "dnsmasq", tmp_path, interface=seg.server_if, allow_partial=True)
        start(seg, [require_tool("dnsmasq"), "-k", "--user=root", "--log-facility=-", "-C",
                    str(tmp_path / "dnsmasq.conf")], tmp_path / "dnsmasq.log", "started")
    for mac, vendor in POOL_CLIENTS.items():
        done = seg.client.run(netns.PYTHON, "-m", "tests.export.dhcp_probe",
                              json.dumps({"iface": seg.client_if, "mac": mac, "vendor": vendor}),
                              cwd=netns.REPO, timeout=60)
        ack = json.loads(done.stdout.splitlines()[-1])["ack"]
        assert ack is not None and ack["type"] == "ack", f"{vendor}: no ACK"
        got = dict(ack["options"])
        if engine == "dnsmasq" and got.get("66", "").endswith("00"):
            got["66"] = got["66"][:-2]  # dnsmasq's NUL after option 66, reported by its export
        planned = option_set(plan.inventory, vendor_class=vendor)
        diff = option_diff(expected_options(planned, PHONE_PRL), got)
        assert not diff, f"pool client {vendor}: the reply differs from the plan:\n" + "\n".join(diff)


def test_kea_hot_standby_pair_serves_and_fails_over(plans: dict[str, Plan], tmp_path: Path) -> None:
    from tests.export.bridge import IFACE, bridged

    kea = require_tool("kea-dhcp4")
    plan = plans["default"]
    peers = (("primary", f"http://{SERVER}:8000/"), ("standby", "http://10.42.0.2:8000/"))
    export(plan, "kea", tmp_path, interface=IFACE, ha=True, ha_peers=peers)
    for role in ("primary", "standby"):  # quicker failover than production's defaults, for the test
        path = tmp_path / f"kea-dhcp4-{role}.conf"
        conf = json.loads(path.read_text())
        ha = conf["Dhcp4"]["hooks-libraries"][-1]["parameters"]["high-availability"][0]
        ha.update({"heartbeat-delay": 1000, "max-response-delay": 3000})
        conf["Dhcp4"]["lease-database"]["name"] = str(tmp_path / f"leases-{role}.csv")
        path.write_text(json.dumps(conf))
    mac = sample_phones(plan)[0]
    with bridged({"primary": f"{SERVER}/24", "standby": "10.42.0.2/24", "phone": ""}) as net:
        servers = {}
        for role in ("primary", "standby"):
            run = tmp_path / f"run-{role}"
            run.mkdir()
            servers[role] = net.start(role, ["env", f"KEA_LOCKFILE_DIR={run}", f"KEA_PIDFILE_DIR={run}",
                                             kea, "-c", str(tmp_path / f"kea-dhcp4-{role}.conf")],
                                      tmp_path / f"{role}.log")
        def reached(role: str, state: str) -> bool:
            return f"to {state} state" in (tmp_path / f"{role}.log").read_text(errors="replace")

        for role in ("primary", "standby"):
            # "hot-standby mode" is in the start-up banner: wait for the state transition itself
            netns.wait_for(functools.partial(reached, role, "HOT-STANDBY"), 90, f"the {role} in hot-standby")

        def probe() -> dict[str, Any]:
            done = net.members["phone"].run(netns.PYTHON, "-m", "tests.export.dhcp_probe", json.dumps(
                {"iface": IFACE, "mac": mac, "vendor": plan.phones[mac].vendor_class}), cwd=netns.REPO,
                timeout=60)
            return json.loads(done.stdout.splitlines()[-1])

        served = probe()
        assert served["ack"] is not None, served
        assert served["ack"]["options"]["54"] == "0a2a0001"  # the primary answers
        planned = expected_options(plan.phones[mac].options, PHONE_PRL)
        assert not option_diff(planned, served["ack"]["options"])
        netns.stop_process(servers["primary"])
        netns.wait_for(lambda: reached("standby", "PARTNER-DOWN"), 90, "the standby to take over")
        taken = probe()
        assert taken["ack"] is not None and taken["ack"]["ip"] == str(plan.phones[mac].phone.ip)
