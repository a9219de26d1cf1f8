"""The virtual phone against the real labkit services (in-process lab on loopback), branch by branch."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

from labkit.events import EventRecorder
from labkit.inventory.load import load
from labkit.phone.core import Outcome, PhoneConfig
from labkit.phone.driver import loopback_access, run_swarm
from labkit.phone.effects import Fetch, FetchResult
from labkit.plan.build import build_plan
from labkit.services.supervisor import free_port_offset, start_lab

MAC = "00:56:2b:00:00:01"
HEAD = """\
lab: {domain: lab.example, address: 10.42.0.1/24}
"""
PHONES = f"""\
models:
  CP-8851-3PCC: {{firmware: sip88xx.12-0-1MPP-0001.loads}}
phones:
  - {{mac: "{MAC}", model: CP-8851-3PCC, ip: 10.42.0.60}}
"""


def run_lab(tmp_path: Path, inventory: str, *, firmware: bool = True,
            **phone: Any) -> tuple[Outcome, list[tuple[Fetch, FetchResult]], EventRecorder]:
    """Start the lab from `inventory`, boot one phone against it, stop the lab."""
    (tmp_path / "firmware").mkdir(exist_ok=True)
    if firmware:
        (tmp_path / "firmware" / "sip88xx.12-0-1MPP-0001.loads").write_bytes(b"load" * 1000)
    path = tmp_path / "lab.yaml"
    path.write_text(textwrap.dedent(inventory))
    plan = build_plan(load(path))
    recorder = EventRecorder()
    fetches: list[tuple[Fetch, FetchResult]] = []

    async def main() -> Outcome:
        offset = free_port_offset()
        lab = await start_lab(plan, port_offset=offset, state_dir=tmp_path / "state", sinks=[recorder])
        try:
            access = loopback_access(plan.inventory, "127.0.0.1", offset, lab.ca_path)
            config = PhoneConfig(MAC, "CP-8851-3PCC", "FCH0001", rounds=phone.pop("rounds", 2),
                                 retry_delays=(1,), **phone)
            result = await run_swarm([config], access, time_scale=1000,
                                     on_step=lambda mac, step: fetches.append(step))
            return result.outcomes[0]
        finally:
            await lab.close()

    return asyncio.run(main()), fetches, recorder


def urls(fetches: list[tuple[Fetch, FetchResult]]) -> list[str]:
    return [f.url for f, _ in fetches]


def test_timeline_dhcp_profile_phone_profile_firmware_in_order(tmp_path: Path) -> None:
    outcome, fetches, recorder = run_lab(tmp_path, HEAD + PHONES + """\
dhcp: {options: {tftp_server_name: "10.42.0.1"}}
""")
    assert outcome.provisioned, outcome
    # the DHCP-supplied server worked: remote customization stops (Aborted); the upgrade reboots
    assert [s.kind for s in outcome.timeline] == ["dhcp", "profile", "customization", "profile",
                                                  "firmware", "reboot"]
    assert outcome.customization == "Aborted"
    assert urls(fetches) == ["tftp://10.42.0.1/8851-3PCC.xml",
                             "http://prov.lab.example/Cisco/CP-8851-3PCC/00562b000001.cfg",
                             "http://prov.lab.example/sip88xx.12-0-1MPP-0001.loads"]
    services = [e.service for e in recorder.events if e.service not in ("dns", "syslog")]
    assert services[:3] == ["dhcp", "dhcp", "tftp"]  # DISCOVER, REQUEST, then the profile
    http = [e for e in recorder.events if e.service == "http"]
    assert http and all(e.phone == MAC and e.detail["identified_by"] == "user-agent" for e in http)
    syslog = [e for e in recorder.events if e.service == "syslog"]
    line = "CP-8851-3PCC 00:56:2b:00:00:01 -- Requesting resync tftp://10.42.0.1/8851-3PCC.xml"
    assert line in [e.request for e in syslog]
    assert all(e.phone == MAC for e in syslog)  # named by the $MAC in the line, even on loopback


def test_option_precedence_follows_dhcp_option_to_use(tmp_path: Path) -> None:
    inventory = HEAD + PHONES + """\
dhcp:
  options:
    tftp_server_name: "10.42.0.1"
    provisioning_url: "http://prov.lab.example"
"""
    outcome, fetches, _ = run_lab(tmp_path, inventory)
    assert urls(fetches)[0].startswith("tftp://")  # 66 before 160 by default
    outcome, fetches, _ = run_lab(tmp_path, inventory, option_order=(160, 66))
    assert urls(fetches)[0] == "http://prov.lab.example/8851-3PCC.xml"
    assert outcome.provisioned


def test_multi_value_option_and_tails(tmp_path: Path) -> None:
    # the first URL has a path the lab lacks: tried as given, then with both tails, then the second URL
    outcome, fetches, _ = run_lab(tmp_path, HEAD + PHONES + """\
dhcp:
  options:
    provisioning_server: "http://prov.lab.example/nowhere;HTTP://10.42.0.1"
""")
    assert outcome.provisioned
    assert urls(fetches)[:4] == ["http://prov.lab.example/nowhere",
                                 "http://prov.lab.example/nowhere/8851-3PCC.xml",
                                 "http://prov.lab.example/nowhere/Cisco/CP-8851-3PCC/00562b000001.cfg",
                                 "http://10.42.0.1/8851-3PCC.xml"]
    assert [r.status for _, r in fetches[:4]] == [404, 404, 404, 200]
    steps = [s.detail for s in outcome.timeline if not s.ok]
    assert steps[0] == "http://prov.lab.example/nowhere: failure B (404 not found)"


def test_srv_ordering_priority_then_weight(tmp_path: Path) -> None:
    outcome, fetches, _ = run_lab(tmp_path, HEAD + PHONES + """\
dns:
  records: {a: 10.42.0.1, b: 10.42.0.1, c: 10.42.0.1}
  srv:
    - {service: _ciscoprov-http._tcp, target: c.lab.example, port: 80, priority: 20, weight: 1}
    - {service: _ciscoprov-http._tcp, target: b.lab.example, port: 80, priority: 10, weight: 50}
    - {service: _ciscoprov-http._tcp, target: a.lab.example, port: 80, priority: 10, weight: 5}
""")
    srv = [s.detail for s in outcome.timeline if s.kind == "srv"]
    assert srv == ["_ciscoprov-https._tls.lab.example: NXDOMAIN, 0 records",
                   "_ciscoprov-http._tcp.lab.example: NOERROR, 3 records"]
    # priority 10 before 20; within it, Cisco's "lower weight first"
    assert urls(fetches)[0] == "http://a.lab.example:80/8851-3PCC.xml"
    assert outcome.provisioned
    outcome, fetches, _ = run_lab(tmp_path, HEAD + PHONES + """\
dns:
  records: {a: 10.42.0.1, b: 10.42.0.1}
  srv:
    - {service: _ciscoprov-http._tcp, target: b.lab.example, port: 80, priority: 10, weight: 50}
    - {service: _ciscoprov-http._tcp, target: a.lab.example, port: 80, priority: 10, weight: 5}
""", weight_order="rfc2782")
    assert urls(fetches)[0] == "http://b.lab.example:80/8851-3PCC.xml"


def test_no_source_hits_the_sinkhole_and_is_not_provisioned(tmp_path: Path) -> None:
    outcome, fetches, recorder = run_lab(tmp_path, HEAD + PHONES)
    assert not outcome.provisioned and outcome.sinkhole_hit and fetches == []
    cloud = [s.detail for s in outcome.timeline if s.kind == "cloud"]
    # each of the two rounds: the activation names, then DHCP again (remote customization, Pending)
    assert cloud == ["activate.cisco.com: NXDOMAIN", "webapps.cisco.com: NXDOMAIN",
                     "activation.webex.com: NXDOMAIN"] * 2
    assert outcome.customization == "Pending"
    assert any(e.service == "dns" and e.result == "nxdomain" and "activate.cisco.com" in e.request
               for e in recorder.events)


def test_redirects_are_followed_at_once(tmp_path: Path) -> None:
    outcome, fetches, _ = run_lab(tmp_path, HEAD + PHONES + """\
services:
  http:
    redirects:
      /8851-3PCC.xml: {to: /moved/8851-3PCC.xml, status: 301}
      /moved/8851-3PCC.xml: {to: "http://prov.lab.example/Cisco/CP-8851-3PCC/00562b000001.cfg"}
dhcp: {options: {provisioning_url: "http://prov.lab.example"}}
""")
    assert outcome.provisioned
    assert [r.status for _, r in fetches[:3]] == [301, 302, 200]
    assert outcome.profile_source is not None


def test_401_retried_with_credentials_basic_and_digest(tmp_path: Path) -> None:
    for scheme in ("basic", "digest"):
        inventory = HEAD + PHONES + f"""\
services:
  http: {{auth: {{user: phone, password: "s3cret", scheme: {scheme}}}}}
dhcp: {{options: {{provisioning_url: "http://prov.lab.example"}}}}
"""
        outcome, fetches, _ = run_lab(tmp_path, inventory, uid="phone", pwd="s3cret")
        assert outcome.provisioned, (scheme, outcome)
        assert [r.status for _, r in fetches[:2]] == [401, 200]
        assert fetches[1][0].uid == "phone"
        outcome, fetches, _ = run_lab(tmp_path, inventory, uid="phone", pwd="wrong", rounds=1)
        assert not outcome.provisioned
        first = [r.status for f, r in fetches if f.url == "http://prov.lab.example/8851-3PCC.xml"]
        assert first == [401, 401, 401]  # one try and two retries with credentials, then failure C
        assert outcome.last_error == "C: 401 credentials refused"


def test_other_4xx_is_failure_c(tmp_path: Path) -> None:
    outcome, fetches, _ = run_lab(tmp_path, HEAD + PHONES + """\
dhcp: {options: {provisioning_url: "http://prov.lab.example/a%5Cb"}}
""", rounds=1)
    assert fetches[0][1].status == 403
    assert "failure C (HTTP 403)" in outcome.timeline[1].detail


def test_encrypted_and_gzipped_profiles(tmp_path: Path) -> None:
    outcome, fetches, _ = run_lab(tmp_path, HEAD + PHONES + """\
dhcp: {options: {provisioning_url: "http://prov.lab.example"}}
profiles:
  encryption: {key: "k3y", digest: sha256}
  gzip: true
""")
    assert outcome.provisioned, outcome
    body = fetches[1][1].body
    assert body.startswith(b"Salted__")
    assert outcome.params["Profile_Rule"] == "[--key k3y]http://prov.lab.example/Cisco/$PN/$MA.cfg"


def test_rfc8188_content_encoding(tmp_path: Path) -> None:
    outcome, fetches, _ = run_lab(tmp_path, HEAD + PHONES + """\
services:
  http: {encrypt: {ikm: "0123456789abcdef"}}
dhcp: {options: {provisioning_url: "http://prov.lab.example"}}
""", ikm=b"0123456789abcdef")
    assert outcome.provisioned, outcome
    assert fetches[1][1].header("Content-Encoding") == "aes128gcm"


def test_https_verified_against_the_lab_ca(tmp_path: Path) -> None:
    outcome, fetches, _ = run_lab(tmp_path, HEAD + PHONES + """\
dhcp: {options: {provisioning_url: "https://prov.lab.example"}}
profiles: {scheme: https}
""")
    assert outcome.provisioned, outcome
    assert all(f.url.startswith("https://") for f, _ in fetches)


def test_missing_firmware_means_not_provisioned(tmp_path: Path) -> None:
    outcome, _, _ = run_lab(tmp_path, HEAD + PHONES + """\
dhcp: {options: {provisioning_url: "http://prov.lab.example"}}
""", firmware=False, rounds=1)
    assert not outcome.provisioned
    firmware_url = "http://prov.lab.example/sip88xx.12-0-1MPP-0001.loads"
    assert outcome.reason == f"firmware upgrade from {firmware_url} failed"
    assert outcome.last_error == "B: 404 not found"


def test_phone_renews_at_t1_while_it_stays_up(tmp_path: Path) -> None:
    outcome, _, recorder = run_lab(tmp_path, HEAD + PHONES + """\
dhcp: {lease_time: 60, options: {provisioning_url: "http://prov.lab.example"}}
""", hold=100)
    assert outcome.provisioned
    renewals = [s.detail for s in outcome.timeline if s.kind == "renew"]
    assert renewals == ["renewed 10.42.0.60 at T1 (30 s)"] * 3
    acks = [e for e in recorder.events if e.service == "dhcp" and e.answer.startswith("ACK")]
    assert len(acks) == 4  # the first binding, then one per renewal
    assert all(e.detail.get("state") in ("selecting", "rebinding") for e in acks)


def test_rule_options_srv_and_post(tmp_path: Path) -> None:
    # GPP_A must reach the phone before the rule that posts it: the bootstrap profile carries it
    outcome, fetches, recorder = run_lab(tmp_path, HEAD + PHONES + """\
dns:
  srv: [{service: _ciscoprov-http._tcp, target: prov.lab.example, port: 80}]
dhcp: {options: {provisioning_url: "http://prov.lab.example"}}
profiles:
  params:
    Profile_Rule: "[--srv --post a] http://lab.example/Cisco/$PN/$MA.cfg"
    GPP_A: "resync=$MA"
""")
    assert outcome.provisioned, outcome
    srv = [s.detail for s in outcome.timeline if s.kind == "srv"]
    assert srv == ["_ciscoprov-http._tcp.lab.example: NOERROR, 1 records"]
    posted = [f for f, _ in fetches if f.method == "POST"]
    assert posted and posted[0].url == "http://prov.lab.example:80/Cisco/CP-8851-3PCC/00562b000001.cfg"
    assert posted[0].body == b"resync=$MA"  # $A is GPP_A; the value itself is not expanded again
    assert any(e.action == "post" and e.detail.get("post_bytes") == "10" for e in recorder.events)


def test_https_refused_when_the_certificate_name_resolves_elsewhere(tmp_path: Path) -> None:
    outcome, _, _ = run_lab(tmp_path, HEAD + PHONES + """\
dns: {records: {other: 10.42.0.99}}
tls: {names: [other.lab.example, prov.lab.example, lab.example]}
dhcp: {options: {provisioning_url: "https://prov.lab.example"}}
""", rounds=1)
    assert not outcome.provisioned
    expected = "C: TLS: certificate name other.lab.example resolves to 10.42.0.99, not 10.42.0.1"
    assert outcome.last_error == expected


def test_tftp_names_the_phone_asking_for_its_own_file(tmp_path: Path) -> None:
    outcome, _, recorder = run_lab(tmp_path, HEAD + PHONES + """\
dhcp: {options: {tftp_server_name: "10.42.0.1"}}
profiles: {scheme: tftp}
""")
    assert outcome.provisioned, outcome
    own = [e for e in recorder.events if e.service == "tftp" and e.request.endswith("00562b000001.cfg")]
    assert own and all(e.phone == MAC for e in own)  # from the path, though every phone is 127.0.0.1
