"""The kit's HTTP extras without a network: the emulated cloud's answers and zones, dynamic
routes (sandbox, bounds, lookups), report storage and bounds, and their `labkit check` errors."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from cryptography import x509
from hypothesis import given
from hypothesis import strategies as st

from labkit.formats import aes128gcm
from labkit.inventory.load import load
from labkit.inventory.source import InventoryError
from labkit.plan.build import build_plan
from labkit.plan.cloud import activation
from labkit.plan.http import ReportsPlan, glob_regex
from labkit.services.http_dynamic import DynamicRoutes, RequestFacts, form_fields
from labkit.services.reports import ReportStore, Upload, UploadRefused, find_report, list_reports
from labkit.tls import ensure_cloud_certificate
from tests.helpers import write_lab

MAC1, MAC2, MAC3 = "00:56:2b:00:00:01", "00:56:2b:00:00:02", "00:56:2b:00:00:03"
UA1 = "Cisco-CP-8851-3PCC/11.3.1 (00562b000001)"

CLOUD_LAB = """\
lab: {domain: t.example, address: 192.0.2.1/24}
models: {CP-8851-3PCC: {}, CP-7841-3PCC: {}}
phones:
  - {mac: "00:56:2b:00:00:01", model: CP-8851-3PCC, ip: 192.0.2.9, serial: FCH1}
  - {mac: "00:56:2b:00:00:02", model: CP-7841-3PCC, ip: 192.0.2.10, group: lobby}
  - {mac: "00:56:2b:00:00:03", model: CP-8851-3PCC, ip: 192.0.2.11}
cloud:
  mode: emulate
  phones: {"00:56:2b:00:00:01": "https://prov.t.example/Cisco/$PN/$MA.cfg?sn=$SN"}
  groups: {lobby: "http://prov.t.example/lobby/$MA.cfg"}
  models: {CP-7841-3PCC: "http://prov.t.example/$PSN.xml"}
  codes:
    "1111-2222": "https://prov.t.example/coded.cfg"
    "3333": {phones: ["00:56:2b:00:00:03"], url: "https://prov.t.example/three.cfg"}
    "4444": {phones: ["00:56:2b:00:00:01"]}
"""


@pytest.fixture(scope="module")
def cloud_plan(tmp_path_factory: pytest.TempPathFactory):
    return build_plan(load(write_lab(tmp_path_factory.mktemp("cloud"), CLOUD_LAB)))


def test_the_cloud_answers_per_phone_group_model_then_no_service_provider(cloud_plan) -> None:
    cloud = cloud_plan.https.cloud
    assert cloud is not None and cloud is cloud_plan.https.cloud
    first = activation(cloud, {"mac": "00562b000001", "model": "CP-8851-3PCC"})
    assert (first.status, first.body) == (200, "https://prov.t.example/Cisco/CP-8851-3PCC/00562b000001.cfg?sn=FCH1")
    group = activation(cloud, {"mac": "00562B000002", "model": "CP-7841-3PCC"})
    assert group.body == "http://prov.t.example/lobby/00562b000002.cfg" and "groups[lobby]" in group.why
    stranger = activation(cloud, {"mac": "00562b0000aa", "model": "CP-7841-3PCC"})
    assert stranger.body == "http://prov.t.example/7841-3PCC.xml"  # by the model it says it is
    nobody = activation(cloud, {"mac": "00562b000003", "model": "CP-8851-3PCC"})
    assert (nobody.status, nobody.body) == (404, "no service provider")
    assert activation(cloud, {"model": "CP-8851-3PCC"}).status == 400


def test_activation_codes_name_a_url_or_the_phones_that_may_redeem_them(cloud_plan) -> None:
    cloud = cloud_plan.https.cloud
    assert activation(cloud, {"mac": "00562b0000aa", "code": "1111-2222"}).body == "https://prov.t.example/coded.cfg"
    assert activation(cloud, {"mac": "00562b000003", "code": "3333"}).body == "https://prov.t.example/three.cfg"
    refused = activation(cloud, {"mac": "00562b000001", "code": "3333"})
    assert (refused.status, refused.body) == (404, "no service provider") and "not for" in refused.why
    own = activation(cloud, {"mac": "00562b000001", "code": "4444"})  # no URL: the phone's own
    assert own.status == 200 and own.body.startswith("https://prov.t.example/Cisco/CP-8851-3PCC/")
    assert "unknown activation code" in activation(cloud, {"mac": "00562b000001", "code": "9"}).why


def test_emulated_names_resolve_to_the_kit_and_sinkholed_ones_do_not(cloud_plan, tmp_path: Path) -> None:
    zone = cloud_plan.zones["activate.cisco.com"]
    assert zone.sinkhole_address is not None and str(zone.sinkhole_address) == "192.0.2.1"
    assert any(r.rtype == 1 and str(r.rdata) == "192.0.2.1" for r in zone.records)
    plain = build_plan(load(write_lab(tmp_path, CLOUD_LAB.replace("mode: emulate", "mode: sinkhole"))))
    assert plain.zones["activate.cisco.com"].sinkhole_address is None and plain.https.cloud is None


def test_the_cloud_certificate_names_the_cloud_names(tmp_path: Path) -> None:
    names = ("activate.cisco.com", "webapps.cisco.com", "activation.webex.com")
    credentials = ensure_cloud_certificate(tmp_path, "lab", names)
    cert = x509.load_pem_x509_certificate(credentials.cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == list(names)
    assert credentials.ca_path is not None and credentials.ca_path.is_file()
    ca = x509.load_pem_x509_certificate(credentials.ca_path.read_bytes())
    assert cert.issuer == ca.subject


# -- dynamic routes -----------------------------------------------------------------------------

ROUTES_LAB = """\
lab: {domain: t.example, address: 192.0.2.1/24}
models: {CP-8851-3PCC: {}}
phones: [{mac: "00:56:2b:00:00:01", model: CP-8851-3PCC, ip: 192.0.2.9, name: desk}]
routes:
  - path: /csv/*.cfg
    template: row.xml.j2
    lookup: {file: phones.csv, column: mac}
  - path: /db/**
    template: row.xml.j2
    lookup: {file: phones.db, table: phones, column: hw, missing: render}
  - path: /by-field
    template: field.j2
    lookup: {file: phones.csv, column: station, key: form.station}
  - path: /escape
    template: escape.j2
  - path: /big
    template: big.j2
    max_bytes: 100
  - path: /undefined
    template: undefined.j2
"""
TEMPLATES = {
    "row.xml.j2": "<flat-profile><Station_Name>{{ row.station if row else 'none' }}</Station_Name>"
                  "<!-- {{ phone.firmware }} {{ phone.name }} {{ request.query.get('x', '') }} -->"
                  "</flat-profile>\n",
    "field.j2": "{{ row.mac }} {{ request.form.station }}",
    "escape.j2": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "big.j2": "{% for i in range(1000) %}xxxxxxxxxx{% endfor %}",
    "undefined.j2": "{{ request.form.absent }}",
}


@pytest.fixture(scope="module")
def routes_plan(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("routes")
    (folder / "phones.csv").write_text("mac,station\n00562B000001,Reception\n00:56:2b:00:00:02,Lobby\n")
    db = sqlite3.connect(folder / "phones.db")
    db.execute("CREATE TABLE phones (hw TEXT, station TEXT)")
    db.execute("INSERT INTO phones VALUES ('00-56-2b-00-00-01', 'FromSQLite')")
    db.commit()
    db.close()
    return build_plan(load(write_lab(folder, ROUTES_LAB, templates=TEMPLATES)))


def _render(plan, path: str, **facts) -> tuple[int, str, str]:
    routes = DynamicRoutes(plan.http.routes, plan.http.phones)
    route = routes.match(path, facts.get("method", "GET"))
    assert route is not None, path
    rendered = routes.render(route, RequestFacts(path=path, **facts))
    return rendered.status, rendered.body.decode(), rendered.answer


def test_a_csv_row_by_the_user_agent_mac_in_any_notation(routes_plan) -> None:
    status, body, _ = _render(routes_plan, "/csv/a.cfg", mac=MAC1, firmware="11.3.1", query={"x": "q"})
    assert status == 200 and "<Station_Name>Reception</Station_Name>" in body and "11.3.1 desk q" in body
    status, _, answer = _render(routes_plan, "/csv/a.cfg", mac=MAC3)
    assert status == 404 and "no row in phones.csv" in answer


def test_a_sqlite_row_and_missing_render(routes_plan) -> None:
    assert "FromSQLite" in _render(routes_plan, "/db/deep/x.cfg", mac=MAC1)[1]
    status, body, _ = _render(routes_plan, "/db/x", mac=MAC2)
    assert status == 200 and "<Station_Name>none</Station_Name>" in body


def test_a_lookup_by_a_post_field(routes_plan) -> None:
    form = form_fields(b"station=Lobby&x=1", "")  # the phone's --post body, without a form type
    status, body, _ = _render(routes_plan, "/by-field", method="POST", form=form)
    assert status == 200 and body == "00:56:2b:00:00:02 Lobby"


@pytest.mark.parametrize(("path", "says"), [("/escape", "SecurityError"), ("/big", "passes 100 bytes"),
                                            ("/undefined", "UndefinedError")])
def test_what_a_template_may_not_do_is_a_500_with_why(routes_plan, path: str, says: str) -> None:
    status, body, answer = _render(routes_plan, path)
    assert status == 500 and says in answer and "Traceback" not in body


@given(st.text(alphabet=st.characters(blacklist_characters="*", blacklist_categories=("Cs",)), max_size=30))
def test_a_glob_without_stars_matches_exactly_itself(text: str) -> None:
    regex = glob_regex("/" + text)
    assert regex.match("/" + text) and not regex.match("/" + text + "x")


def test_glob_stars() -> None:
    assert glob_regex("/a/*.cfg").match("/a/x.cfg") and not glob_regex("/a/*.cfg").match("/a/b/x.cfg")
    assert glob_regex("/a/**").match("/a/b/c.cfg")


@pytest.mark.parametrize(("change", "says"), [
    (("row.xml.j2", "{{ row.station"), "line 1: unexpected end of template"),
    (("field.j2", "{{ row.nope }}"), "reads row.nope, which phones.csv has no column for"),
    (("csv_column", "column: mac}"), "has no column 'macx'"),
    (("csv_file", "file: phones.csv, column: mac}"), "no such file"),
])
def test_check_names_the_route_line_and_field(tmp_path: Path, change: tuple[str, str], says: str) -> None:
    what, text = change
    (tmp_path / "phones.csv").write_text("mac,station\n00562B000001,Reception\n")
    templates = dict(TEMPLATES)
    sqlite_route = ("  - path: /db/**\n    template: row.xml.j2\n"
                    "    lookup: {file: phones.db, table: phones, column: hw, missing: render}\n")
    lab = ROUTES_LAB.replace(sqlite_route, "")
    if what.endswith(".j2"):
        templates[what] = text
    elif what == "csv_column":
        lab = lab.replace(text, "column: macx}", 1)
    else:
        lab = lab.replace(text, "file: absent.csv, column: mac}", 1)
    with pytest.raises(InventoryError) as caught:
        load(write_lab(tmp_path, lab, templates=templates))
    problem = next(p for p in caught.value.problems if says in p.message)
    assert problem.location is not None and problem.location.line > 0 and problem.field.startswith("routes[")


# -- reports ------------------------------------------------------------------------------------

def _upload(body: bytes, mac: str | None = MAC1, encoding: str = "", when: float = 1.0e9) -> Upload:
    return Upload(mac, "PUT", "/report/x.xml", "application/xml", encoding, body, "127.0.0.1:1", when)


def test_reports_are_kept_per_phone_with_their_metadata(tmp_path: Path) -> None:
    store = ReportStore(tmp_path)
    meta = store.store(ReportsPlan(), _upload(b"<report/>"))
    assert (tmp_path / "reports" / "00562b000001" / meta["name"]).read_bytes() == b"<report/>"
    saved = json.loads((tmp_path / "reports" / "00562b000001" / f"{meta['name']}.json").read_text())
    assert saved["method"] == "PUT" and saved["size"] == 9 and saved["content_type"] == "application/xml"
    assert [r["name"] for r in list_reports(tmp_path, MAC1)] == [meta["name"]]
    assert find_report(tmp_path, meta["name"])[1] == b"<report/>"  # type: ignore[index]
    store.store(ReportsPlan(), _upload(b"?", mac=None))
    assert (tmp_path / "reports" / "unidentified").is_dir()


def test_aes128gcm_is_decoded_with_the_phones_ikm_else_kept_as_received(tmp_path: Path) -> None:
    store = ReportStore(tmp_path)
    body = aes128gcm.encrypt(b"<status>ok</status>", b"phone-ikm")
    decoded = store.store(ReportsPlan(ikms={MAC1: b"phone-ikm"}), _upload(body, encoding="aes128gcm"))
    assert decoded["decoded"] and find_report(tmp_path, decoded["name"])[1] == b"<status>ok</status>"  # type: ignore[index]
    kept = store.store(ReportsPlan(), _upload(body, encoding="aes128gcm", when=2.0e9))
    assert not kept["decoded"] and "no IKM" in kept["note"] and kept["stored_size"] == len(body)
    wrong = store.store(ReportsPlan(ikms={MAC1: b"other"}), _upload(body, encoding="aes128gcm", when=3.0e9))
    assert not wrong["decoded"] and "does not decode" in wrong["note"]


def test_report_bounds(tmp_path: Path) -> None:
    store = ReportStore(tmp_path)
    plan = ReportsPlan(max_bytes=10, per_phone=2, total_bytes=2000)  # metadata counts too
    with pytest.raises(UploadRefused) as big:
        store.store(plan, _upload(b"x" * 11))
    assert big.value.status == 413
    names = [store.store(plan, _upload(b"r%d" % n, when=1.0e9 + n))["name"] for n in range(3)]
    assert [r["name"] for r in list_reports(tmp_path, MAC1)] == names[1:]  # the oldest went first
    with pytest.raises(UploadRefused) as full:
        for n in range(20):
            store.store(plan, _upload(b"y" * 10, mac=f"00:56:2b:00:01:{n:02x}"))
    assert full.value.status == 507


@given(st.binary(max_size=300), st.sampled_from(["", "text/plain", "application/x-www-form-urlencoded",
                                                 "application/xml"]))
def test_any_body_reads_as_fields_or_none(body: bytes, kind: str) -> None:
    fields = form_fields(body, kind)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items())


QUERY_VALUES = st.one_of(st.text(max_size=20), st.sampled_from(["00562b000001", "00562b0000aa", "4444"]))


@given(st.dictionaries(st.sampled_from(["mac", "model", "serial", "code", "x"]), QUERY_VALUES))
def test_any_activation_query_gets_an_answer(cloud_plan, query: dict[str, str]) -> None:
    answer = activation(cloud_plan.https.cloud, query)
    assert answer.status in (200, 400, 404) and "\n" not in answer.body


def test_explain_says_what_the_cloud_answers_each_phone(cloud_plan) -> None:
    from labkit.explain import explain_phone

    told = explain_phone(cloud_plan, MAC1)
    assert "-> 200 https://prov.t.example/Cisco/CP-8851-3PCC/00562b000001.cfg?sn=FCH1" in told
    assert "[the emulated cloud's answer]" in told and "gds://4444" in told
    nobody = explain_phone(cloud_plan, MAC3)
    assert "-> 404 no service provider" in nobody and "Unavailable" in nobody and "gds://3333" in nobody


def test_explain_renders_each_route_for_the_phone(routes_plan) -> None:
    from labkit.explain import explain_phone

    told = explain_phone(routes_plan, MAC1)
    assert "Dynamic route routes[0] /csv/*.cfg (row.xml.j2), GET http://…/csv/00562b000001.cfg" in told
    assert "| <flat-profile><Station_Name>Reception</Station_Name><!-- 11.3.1 desk  -->" in told
    assert "500 escape.j2 line 1: SecurityError" in told
