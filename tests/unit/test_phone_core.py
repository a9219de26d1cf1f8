"""The virtual phone's logic, pure: driven by a scripted world built from the plan, on a script clock."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from typing import Any

from labkit.explain import MPP_PARAMETER_REQUEST_LIST, resolve_url, srv_found
from labkit.inventory.load import load
from labkit.phone import dhcp as phone_dhcp
from labkit.phone.core import Phone, PhoneConfig
from labkit.phone.drive import ScriptClock, run_sync
from labkit.phone.effects import (
    DhcpNak,
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
from labkit.protocols.result import Fact

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
    # the DHCP-supplied server worked: remote customization stops ("Aborted", S12); the
    # upgrade ends with a reboot (reference §6)
    assert kinds == ["dhcp", "profile", "customization", "profile", "firmware", "reboot"]
    assert outcome.customization == "Aborted"
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
    # each round: the activation names in order, then DHCP again (three rounds)
    assert [s.detail.split(":")[0] for s in outcome.timeline if s.kind == "cloud"] == [
        "activate.cisco.com", "webapps.cisco.com", "activation.webex.com"] * 3
    assert [s.kind for s in outcome.timeline].count("dhcp") == 3
    assert outcome.customization == "Pending"
    assert outcome.last_error == "cloud activation unreachable (sinkholed)"


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


# -- DHCP retransmission (RFC 2131 §4.1), in the phone's clock --------------------------------------

OFFER_60 = DhcpOffer("10.42.0.60", "10.42.0.1")
ACK_60 = Lease("10.42.0.60", "10.42.0.1", {}, 3600)


class DhcpWorld:
    """Records every DHCP transmission with the phone-clock time it left at; `silent(effect)`
    says which ones go unanswered. Stops the phone right after DHCP (no profile source)."""

    def __init__(self, clock: ScriptClock, silent: Callable[[DhcpTransmit, int], bool],
                 answer: Callable[[DhcpTransmit], Any] | None = None) -> None:
        self.clock, self.silent, self.answer = clock, silent, answer
        self.sent: list[tuple[float, DhcpTransmit]] = []

    def __call__(self, effect: Any) -> Any:
        if isinstance(effect, DhcpTransmit):
            self.sent.append((self.clock.now, effect))
            if self.silent(effect, len(self.sent)):
                return None
            if self.answer is not None:
                return self.answer(effect)
            return OFFER_60 if effect.kind == "DISCOVER" else ACK_60
        if isinstance(effect, LookupSrv | LookupA):
            return DnsAnswer("NXDOMAIN")
        return None  # Log

    def waits(self, kind: str) -> list[float]:
        times = [t for t, e in self.sent if e.kind == kind]
        return [b - a for a, b in itertools.pairwise(times)]


def test_discover_and_request_are_retransmitted_with_the_rfc_2131_backoff_in_phone_time() -> None:
    clock = ScriptClock(1000.0)
    # the first three DISCOVERs and the first REQUEST go unanswered
    world = DhcpWorld(clock, lambda effect, n: n <= 3 or (effect.kind == "REQUEST" and effect.attempt == 1))
    outcome = run_sync(Phone(config()).run(), world, clock)
    assert outcome.lease == ACK_60
    del world.sent[6:]  # the first acquisition; later rounds (DHCP again after the cloud) are alike
    kinds = [(e.kind, e.attempt) for _, e in world.sent]
    assert kinds == [("DISCOVER", 1), ("DISCOVER", 2), ("DISCOVER", 3), ("DISCOVER", 4),
                     ("REQUEST", 1), ("REQUEST", 2)]
    discover_waits = world.waits("DISCOVER")
    for wait, base in zip(discover_waits, (4, 8, 16), strict=True):
        assert base - 1 <= wait <= base + 1  # 4, 8, 16 s, each randomized by ±1 s
    assert len(set(discover_waits)) == 3 and discover_waits != [4.0, 8.0, 16.0]
    assert 3 <= world.waits("REQUEST")[0] <= 5  # the REQUEST's own backoff starts at 4 s again
    assert len({e.xid for _, e in world.sent}) == 1  # retransmissions keep the transaction's xid
    # `secs`: phone seconds since this acquisition began
    assert [e.secs for _, e in world.sent] == [int(t - 1000.0) for t, _ in world.sent]
    assert world.sent[4][1].offer == OFFER_60


def test_silence_after_the_64_second_retransmission_restarts_from_init_with_a_new_xid() -> None:
    clock = ScriptClock()
    world = DhcpWorld(clock, lambda effect, n: n <= 5)  # the whole first cycle goes unanswered
    outcome = run_sync(Phone(config(rounds=2)).run(), world, clock)
    assert outcome.lease == ACK_60
    first, second = world.sent[:5], world.sent[5:]
    assert [e.kind for _, e in first] == ["DISCOVER"] * 5 and [e.attempt for _, e in first] == [1, 2, 3, 4, 5]
    assert len({e.xid for _, e in first}) == 1 and second[0][1].xid != first[0][1].xid
    assert second[0][1].kind == "DISCOVER" and second[0][1].attempt == 1 and second[0][1].secs == 0
    waits = [b - a for (a, _), (b, _) in itertools.pairwise(world.sent[:6])]
    for wait, base in zip(waits, (4, 8, 16, 32, 64), strict=True):
        assert base - 1 <= wait <= base + 1
    assert 124 - 5 <= second[0][0] <= 124 + 5


def test_a_phone_that_never_hears_an_offer_gives_up_after_its_rounds() -> None:
    clock = ScriptClock()
    world = DhcpWorld(clock, lambda effect, n: True)
    outcome = run_sync(Phone(config(rounds=3)).run(), world, clock)
    assert not outcome.provisioned and outcome.reason == "no DHCP lease" and outcome.last_error == "no OFFER"
    assert len(world.sent) == 3 * 5 and len({e.xid for _, e in world.sent}) == 3
    assert 3 * (124 - 5) <= clock.now <= 3 * (124 + 5)


def test_no_ack_and_nak_send_the_phone_back_to_init() -> None:
    answers = iter([DhcpNak("10.42.0.1")])

    def answer(effect: DhcpTransmit) -> Any:
        if effect.kind == "DISCOVER":
            return OFFER_60
        return next(answers, ACK_60)

    clock = ScriptClock()
    world = DhcpWorld(clock, lambda effect, n: False, answer)
    outcome = run_sync(Phone(config()).run(), world, clock)
    assert outcome.lease == ACK_60
    assert [e.kind for _, e in world.sent][:4] == ["DISCOVER", "REQUEST", "DISCOVER", "REQUEST"]
    assert world.sent[0][1].xid != world.sent[2][1].xid
    # a REQUEST never answered: after its 5 transmissions, INIT again; with one round, no ACK
    clock = ScriptClock()
    world = DhcpWorld(clock, lambda effect, n: effect.kind == "REQUEST")
    outcome = run_sync(Phone(config(rounds=1)).run(), world, clock)
    assert outcome.last_error == "no ACK"
    assert [e.kind for _, e in world.sent] == ["DISCOVER"] + ["REQUEST"] * 5


def test_the_backoff_follows_the_seed() -> None:
    def schedule(seed: int) -> list[float]:
        clock = ScriptClock()
        world = DhcpWorld(clock, lambda effect, n: True)
        run_sync(Phone(config(rounds=1, seed=seed)).run(), world, clock)
        return [t for t, _ in world.sent]

    assert schedule(7) == schedule(7) and schedule(7) != schedule(8)


def test_renewing_retransmits_after_half_the_time_left_until_t2_never_below_60_s() -> None:
    lease = Lease("10.42.0.60", "10.42.0.1", {58: 1800, 59: 3150}, 3600)
    clock = ScriptClock()
    answers = iter([None, None, ACK_60])
    sent: list[tuple[float, DhcpTransmit]] = []

    def handle(effect: Any) -> Any:
        sent.append((clock.now, effect))
        return next(answers)

    def flow() -> Any:
        renewed = yield from phone_dhcp.renew(lease, random.Random(1), 1800)
        return renewed

    result = run_sync(flow(), handle, clock)
    assert result == ACK_60
    assert [e.kind for _, e in sent] == ["RENEW"] * 3 and all(e.lease == lease for _, e in sent)
    # T1 = 1800, T2 = 3150: wait (3150 - 1800) / 2 = 675 s, then (3150 - 2475) / 2 = 337.5 s
    assert [t for t, _ in sent] == [0, 675, 675 + 337.5]


def test_the_timeline_is_made_of_facts_of_the_shared_vocabulary() -> None:
    def model_file_missing(effect: Fetch) -> FetchResult | None:
        return FetchResult(404) if effect.url.endswith("8851-3PCC.xml") else None

    outcome = run_sync(Phone(config()).run(), plan_world(fetch=model_file_missing))
    facts = outcome.facts
    assert all(isinstance(f, Fact) and f.phone == MAC for f in facts)
    assert [(f.action, f.result) for f in facts][:3] == [
        ("dhcp", "ok"), ("fetch", "failed"), ("profile", "ok")]
    assert facts[1].answer == "tftp://10.42.0.1/8851-3PCC.xml: failure B (404 not found)"
    step = outcome.timeline[1]
    assert (step.kind, step.detail, step.ok) == ("fetch", facts[1].answer, False)
