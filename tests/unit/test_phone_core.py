"""The virtual phone's logic, pure: driven by a scripted world built from the plan, on a script clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from labkit.explain import MPP_PARAMETER_REQUEST_LIST, resolve_url, srv_found
from labkit.inventory.load import load
from labkit.phone.core import Phone, PhoneConfig
from labkit.phone.drive import ScriptClock, run_sync
from labkit.phone.effects import (
    DhcpOffer,
    DhcpTransmit,
    DnsAnswer,
    Fetch,
    FetchResult,
    Lease,
    Log,
    LookupA,
    LookupSrv,
)
from labkit.plan.build import build_plan

PLAN = build_plan(load(None))
MAC = "00:56:2b:00:03:3c"  # CP-8851-3PCC in the default lab


def plan_world(plan=PLAN, *, drop: set[int] = frozenset(), fetch: Callable[[Fetch], Any] | None = None,
               logs: list[str] | None = None) -> Callable[[Any], Any]:
    """Answers effects the way the lab would: options from the plan, files from the plan."""
    phone_plan = plan.phones[MAC]

    def handle(effect: Any) -> Any:
        if isinstance(effect, DhcpTransmit):
            if effect.kind == "DISCOVER":
                return DhcpOffer(str(phone_plan.phone.ip), "10.42.0.1")
            sent = phone_plan.options.for_request(list(MPP_PARAMETER_REQUEST_LIST))
            options = {p.code: p.decoded() for p in sent if p.code not in drop}
            return Lease(str(phone_plan.phone.ip), "10.42.0.1", options, 3600)
        if isinstance(effect, Fetch):
            if fetch is not None:
                scripted = fetch(effect)
                if scripted is not None:
                    return scripted
            res = resolve_url(plan, effect.url)
            if res.ok and res.file is not None:
                body = res.file.data if res.file.data is not None else res.file.disk_path.read_bytes()
                return FetchResult(200, body)
            return FetchResult(404) if "404" in res.detail or "error 1" in res.detail else FetchResult(
                None, error=res.detail)
        if isinstance(effect, LookupSrv):
            service, domain = effect.name.split(".", 2)[:2], effect.name.split(".", 2)[2]
            records = srv_found(plan, domain).get(".".join(service), [])
            return DnsAnswer("NOERROR" if records else "NXDOMAIN", tuple(records))
        if isinstance(effect, LookupA):
            return DnsAnswer("NXDOMAIN")
        if isinstance(effect, Log):
            if logs is not None:
                logs.append(effect.message)
            return None
        raise AssertionError(f"unexpected effect {effect}")

    return handle


def config(**changes: Any) -> PhoneConfig:
    return PhoneConfig(mac=MAC, model="CP-8851-3PCC", serial="FCH2203000", **changes)


def test_default_phone_provisions_through_model_and_phone_profiles_and_firmware() -> None:
    logs: list[str] = []
    outcome = run_sync(Phone(config()).run(), plan_world(logs=logs))
    assert outcome.provisioned, outcome
    assert outcome.profile_source == "http://prov.lab.example/Cisco/CP-8851-3PCC/00562b00033c.cfg"
    assert outcome.firmware == "sip88xx.12-0-1MPP-0001"
    assert outcome.params["User_ID_1_"] == "1060"
    kinds = [s.kind for s in outcome.timeline]
    assert kinds == ["dhcp", "profile", "profile", "firmware"]
    assert "tftp://10.42.0.1/8851-3PCC.xml" in outcome.timeline[1].detail
    assert logs[0] == "CP-8851-3PCC 00:56:2b:00:03:3c -- Requesting resync tftp://10.42.0.1/8851-3PCC.xml"
    assert any("Successful upgrade" in line for line in logs)


def test_srv_path_when_dhcp_gives_no_location() -> None:
    outcome = run_sync(Phone(config()).run(), plan_world(drop={66, 150, 159, 160}))
    assert outcome.provisioned
    srv_steps = [s for s in outcome.timeline if s.kind == "srv"]
    assert [s.detail.split(":")[0] for s in srv_steps] == [
        "_ciscoprov-https._tls.lab.example", "_ciscoprov-http._tcp.lab.example"]
    assert outcome.timeline[3].detail.startswith("https://prov.lab.example:443/8851-3PCC.xml")


def test_no_source_at_all_hits_the_cloud_sinkhole_and_stops() -> None:
    outcome = run_sync(Phone(config()).run(), plan_world(drop={66, 150, 159, 160, 15}))
    assert not outcome.provisioned and outcome.sinkhole_hit
    assert "no profile source" in (outcome.reason or "")
    assert [s.detail.split(":")[0] for s in outcome.timeline if s.kind == "cloud"] == [
        "activate.cisco.com", "webapps.cisco.com", "activation.webex.com"]


def test_redirect_then_auth_then_success() -> None:
    calls: list[Fetch] = []

    def script(effect: Fetch) -> FetchResult | None:
        calls.append(effect)
        if effect.url == "tftp://10.42.0.1/8851-3PCC.xml":
            return FetchResult(302, headers={"Location": "http://prov.lab.example/moved.xml"})
        if effect.url == "http://prov.lab.example/moved.xml":
            if effect.uid is None:
                return FetchResult(401)
            return FetchResult(200, PLAN.files["8851-3PCC.xml"].data or b"")
        return None

    outcome = run_sync(Phone(config(uid="u", pwd="p")).run(), plan_world(fetch=script))
    assert outcome.provisioned
    assert [(c.url, c.uid) for c in calls[:3]] == [
        ("tftp://10.42.0.1/8851-3PCC.xml", None), ("http://prov.lab.example/moved.xml", None),
        ("http://prov.lab.example/moved.xml", "u")]


def test_401_is_retried_at_most_twice_then_failure_c_and_the_retry_delays_apply() -> None:
    attempts: list[str] = []

    def always_401(effect: Fetch) -> FetchResult:
        attempts.append(effect.url)
        return FetchResult(401)

    clock = ScriptClock()
    outcome = run_sync(Phone(config(uid="u", pwd="p", rounds=3, retry_delays=(60, 120))).run(),
                       plan_world(fetch=always_401), clock)
    assert not outcome.provisioned and outcome.last_error == "C: 401 credentials refused"
    # per round: option 66 (bare address: 3 schemes x 2 tails) + 160 (no path: 2 tails) + 150 (6)
    candidates = 6 + 2 + 6
    assert attempts[:3] == ["tftp://10.42.0.1/8851-3PCC.xml"] * 3
    assert clock.now == 60 + 120  # two waits between three rounds
    waits = [s.detail for s in outcome.timeline if s.kind == "wait"]
    assert waits == ["Resync_Error_Retry_Delay 60 s", "Resync_Error_Retry_Delay 120 s"]
    assert len(attempts) == 3 * 3 * candidates


def test_404_is_failure_b_and_the_next_candidate_is_tried() -> None:
    def model_file_missing(effect: Fetch) -> FetchResult | None:
        return FetchResult(404) if effect.url.endswith("8851-3PCC.xml") else None

    outcome = run_sync(Phone(config()).run(), plan_world(fetch=model_file_missing))
    failed = [s for s in outcome.timeline if not s.ok]
    assert failed[0].detail == "tftp://10.42.0.1/8851-3PCC.xml: failure B (404 not found)"
    # the next tail, the phone's own file, works: provisioned from it directly
    assert outcome.provisioned
    assert outcome.timeline[2].detail.startswith("tftp://10.42.0.1/Cisco/CP-8851-3PCC/00562b00033c.cfg")


def test_running_load_is_not_downloaded_again() -> None:
    outcome = run_sync(Phone(config(load="sip88xx.12-0-1MPP-0001")).run(), plan_world())
    assert outcome.provisioned
    assert outcome.timeline[-1].detail == "sip88xx.12-0-1MPP-0001 already running"
