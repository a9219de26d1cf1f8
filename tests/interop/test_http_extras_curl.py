"""The kit's HTTP extras end to end with curl against a real `labkit up` process: the emulated
cloud (its DNS names, its lab-CA certificate, its answer per MAC), a dynamic profile from a CSV
row, and Report_Rule uploads stored and listed by `labkit reports`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from dnslib import QTYPE, DNSRecord

from labkit.formats import aes128gcm
from tests.conftest import require_tool
from tests.helpers import labkit, write_lab
from tests.interop.lab_process import LabProcess, start_lab_process, wait_for_event

UA = "Cisco-CP-8851-3PCC/11.3.1 (00562b000001)"
LAB = """\
lab: {domain: lab.example, address: 10.42.0.1/24}
services: {tftp: {enabled: false}}
models: {CP-8851-3PCC: {firmware: sip88xx.12-0-1MPP-0001.loads}}
phones:
  - {mac: "00:56:2b:00:00:01", model: CP-8851-3PCC, ip: 10.42.0.9,
     params: {IKM_HTTP_Encrypt_Content: "report-key"}}
  - {mac: "00:56:2b:00:00:02", model: CP-8851-3PCC, ip: 10.42.0.10}
cloud:
  mode: emulate
  phones: {"00:56:2b:00:00:01": "https://prov.lab.example/Cisco/$PN/$MA.cfg"}
  codes: {"2222-3333": "http://prov.lab.example/coded.cfg"}
faults:
  - {name: cloud down for one phone, match: {path: /lab/v1/activation, mac: "00:56:2b:00:00:03"},
     http: {status: 503}}
routes:
  - path: /dyn/*.cfg
    template: dynamic.xml.j2
    lookup: {file: phones.csv, column: mac}
  - path: /broken.cfg
    body: "{% raw %}{{ phone.nothing.deeper }}{% endraw %}"
"""
TEMPLATE = """\
<flat-profile>
  <Station_Name>{{ row.station }}</Station_Name>
  <Text_Logo>{{ request.form.get('status', '-') }} {{ phone.firmware }}</Text_Logo>
</flat-profile>
"""


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([require_tool("curl"), "-s", "-S", "--max-time", "30", *args], capture_output=True,
                          timeout=60)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("extras")
    (folder / "phones.csv").write_text("mac,station\n00-56-2B-00-00-01,Reception\n")
    inventory = write_lab(folder, LAB, templates={"dynamic.xml.j2": TEMPLATE})
    process = start_lab_process(folder, inventory)
    yield process
    code, output = process.stop()
    assert code == 0, output
    assert "Traceback" not in output


def _cloud(lab: LabProcess, name: str, query: str) -> subprocess.CompletedProcess[bytes]:
    port = lab.port("https")
    return curl("--resolve", f"{name}:{port}:127.0.0.1", "--cacert", str(lab.state / "ca" / "ca.pem"),
                "-w", "%{http_code}", f"https://{name}:{port}/lab/v1/activation?{query}")


def test_the_activation_names_resolve_to_the_kit(lab: LabProcess) -> None:
    for name in ("activate.cisco.com", "webapps.cisco.com", "activation.webex.com"):
        reply = DNSRecord.parse(DNSRecord.question(name).send("127.0.0.1", lab.port("dns"), timeout=10))
        assert [str(r.rdata) for r in reply.rr if r.rtype == QTYPE.A] == ["10.42.0.1"], reply


def test_the_emulated_cloud_answers_per_mac_over_verified_https(lab: LabProcess) -> None:
    known = _cloud(lab, "activate.cisco.com", "mac=00562b000001&model=CP-8851-3PCC&serial=FCH1")
    assert known.returncode == 0, known.stderr  # curl verified the lab CA's certificate for the name
    assert known.stdout == b"https://prov.lab.example/Cisco/CP-8851-3PCC/00562b000001.cfg\n200"
    coded = _cloud(lab, "activation.webex.com", "mac=00562b000002&model=CP-8851-3PCC&code=2222-3333")
    assert coded.stdout == b"http://prov.lab.example/coded.cfg\n200"
    event = wait_for_event(lab, lambda e: e["action"] == "activation" and e["phone"] == "00:56:2b:00:00:01")
    assert event["result"] == "ok" and "cloud.phones" in str(event["detail"])


def test_a_phone_the_cloud_does_not_know_gets_no_service_provider(lab: LabProcess) -> None:
    unknown = _cloud(lab, "webapps.cisco.com", "mac=00562b000002&model=CP-8851-3PCC&serial=FCH2")
    assert unknown.stdout == b"no service provider\n404"
    event = wait_for_event(lab, lambda e: e["action"] == "activation" and e["phone"] == "00:56:2b:00:00:02"
                           and e["result"] == "no-service-provider")
    assert event["service"] == "https"


def test_a_fault_rule_takes_the_cloud_down_for_one_phone(lab: LabProcess) -> None:
    down = _cloud(lab, "activate.cisco.com", "mac=00562b000003&model=CP-8851-3PCC")
    assert down.stdout.endswith(b"503"), down
    assert _cloud(lab, "activate.cisco.com", "mac=00562b000001&model=CP-8851-3PCC").stdout.endswith(b"200")
    event = wait_for_event(lab, lambda e: e["phone"] == "00:56:2b:00:00:03" and e["result"] == "fault")
    assert str(event["request"]).endswith("/lab/v1/activation")


def test_a_dynamic_profile_from_a_csv_row_with_the_post_body(lab: LabProcess) -> None:
    url = f"http://127.0.0.1:{lab.port('http')}/dyn/00562b000001.cfg"
    got = curl("-A", UA, url)
    assert b"<Station_Name>Reception</Station_Name>" in got.stdout and b"- 11.3.1" in got.stdout, got
    posted = curl("-A", UA, "--data-binary", "status=booting", url)  # the phone's `--post` body, as sent
    assert b"<Text_Logo>booting 11.3.1</Text_Logo>" in posted.stdout, posted
    head = curl("-A", UA, "-I", url)
    assert f"Content-Length: {len(got.stdout)}".encode() in head.stdout, head  # HEAD: the GET's length
    other = curl("-A", "Cisco-CP-8851-3PCC/11.3.1 (00562b000002)", "-w", "%{http_code}", url)
    assert other.stdout.endswith(b"404")


def test_a_render_error_is_a_500_and_an_event(lab: LabProcess) -> None:
    got = curl("-w", "%{http_code}", f"http://127.0.0.1:{lab.port('http')}/broken.cfg")
    assert got.stdout.endswith(b"500") and b"Traceback" not in got.stdout
    event = wait_for_event(lab, lambda e: e["request"] == "/broken.cfg")
    assert event["result"] == "error" and "UndefinedError" in str(event["answer"])


def test_report_uploads_are_stored_and_listed(lab: LabProcess, tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    report.write_text("<status>registered</status>\n")
    put = curl("-A", UA, "-T", str(report), "-w", "%{http_code}",
               f"http://127.0.0.1:{lab.port('http')}/report/00562b000001.xml")
    assert put.stdout.endswith(b"200"), put
    anywhere = curl("-A", UA, "-T", str(report), "-w", "%{http_code}",  # a path nothing serves
                    f"http://127.0.0.1:{lab.port('http')}/status-00562b000001.xml")
    assert anywhere.stdout.endswith(b"200"), anywhere
    posted = curl("-A", UA, "-H", "Content-Type: application/xml", "--data-binary", f"@{report}", "-w",
                  "%{http_code}", f"http://127.0.0.1:{lab.port('http')}/post-00562b000001.xml")
    assert posted.stdout.endswith(b"200"), posted  # a report's body, POSTed where nothing is served
    resync = curl("-A", UA, "--data-binary", "a=b", "-w", "%{http_code}",
                  f"http://127.0.0.1:{lab.port('http')}/post-00562b000001.xml")
    assert resync.stdout.endswith(b"404"), resync  # a `--post` resync body there: not found, as before
    served = curl("-A", UA, "-T", str(report), "-w", "%{http_code}",  # a served path is never written
                  f"http://127.0.0.1:{lab.port('http')}/dyn/00562b000001.cfg")
    assert served.stdout.endswith(b"405"), served
    sealed = aes128gcm.encrypt(b"<status>sealed</status>", b"report-key")
    result = subprocess.run([require_tool("curl"), "-s", "-S", "--cacert", str(lab.state / "ca" / "ca.pem"),
                             "-A", UA, "-H", "Content-Encoding: aes128gcm", "--data-binary", "@-",
                             "-w", "%{http_code}", f"https://prov.lab.example:{lab.port('https')}/reports/x.xml",
                             "--resolve", f"prov.lab.example:{lab.port('https')}:127.0.0.1"],
                            input=sealed, capture_output=True, timeout=60)  # POST, the body on stdin
    assert result.stdout.endswith(b"200"), result
    wait_for_event(lab, lambda e: e["action"] == "report" and e["service"] == "https")
    listed = labkit("reports", "00:56:2b:00:00:01", "--state", str(lab.state), "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)["reports"]
    assert [(r["method"], r["path"]) for r in rows] == [("PUT", "/report/00562b000001.xml"),
                                                        ("PUT", "/status-00562b000001.xml"),
                                                        ("POST", "/post-00562b000001.xml"),
                                                        ("POST", "/reports/x.xml")]
    assert rows[3]["encoding"] == "aes128gcm" and rows[3]["decoded"] is True
    shown = labkit("reports", "--state", str(lab.state), "--show", rows[3]["name"], "--json")
    assert json.loads(shown.stdout)["text"] == "<status>sealed</status>"
