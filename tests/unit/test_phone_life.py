"""The virtual phone's whole provisioning life (issue 11), on the scripted driver and a script clock:
factory names per firmware generation, remote customization and its states, the rule sequence,
scheduled resyncs, error retries, upgrades, 301s remembered."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

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
from labkit.phone.traits import GENERATIONS

MAC = "00:56:2b:00:03:3c"
PHONE_URL = "http://prov.lab.example/Cisco/CP-8851-3PCC/00562b00033c.cfg"
BOOT_URL = "http://prov.lab.example/8851-3PCC.xml"

Answer = bytes | FetchResult | Callable[[float], "bytes | FetchResult"]


def profile(**params: Any) -> bytes:
    body = "".join(f"<{name}>{value}</{name}>" for name, value in params.items())
    return f"<flat-profile>{body}</flat-profile>".encode()


class World:
    """A lab in a dictionary: `files` maps URL -> bytes, a FetchResult, or a function of the clock;
    anything else is 404. `names` maps DNS names to addresses (else NXDOMAIN)."""

    def __init__(self, clock: ScriptClock, files: dict[str, Answer], *,
                 options: dict[int, Any] | None = None, names: dict[str, str] | None = None) -> None:
        self.clock, self.files, self.names = clock, files, names or {}
        self.options = {66: "http://prov.lab.example", 15: "lab.example"} if options is None else options
        self.fetches: list[tuple[float, Fetch]] = []
        self.dhcp = 0

    def __call__(self, effect: Any) -> Any:
        if isinstance(effect, DhcpTransmit):
            self.dhcp += 1
            if effect.kind == "DISCOVER":
                return DhcpOffer("10.42.0.60", "10.42.0.1")
            return Lease("10.42.0.60", "10.42.0.1", dict(self.options), 0)
        if isinstance(effect, Fetch):
            self.fetches.append((self.clock.now, effect))
            answer = self.files.get(effect.url, FetchResult(404))
            if callable(answer):
                answer = answer(self.clock.now)
            return FetchResult(200, answer) if isinstance(answer, bytes) else answer
        if isinstance(effect, LookupA):
            address = self.names.get(effect.name)
            return DnsAnswer("NOERROR", addresses=(address,)) if address else DnsAnswer("NXDOMAIN")
        if isinstance(effect, LookupSrv):
            return DnsAnswer("NXDOMAIN")
        if isinstance(effect, Log):
            return None
        raise AssertionError(f"unexpected effect {effect}")

    def urls(self) -> list[str]:
        return [f.url for _, f in self.fetches]

    def times(self, url: str) -> list[float]:
        return [t for t, f in self.fetches if f.url == url]


def config(**changes: Any) -> PhoneConfig:
    return PhoneConfig(**{"mac": MAC, "model": "CP-8851-3PCC", "serial": "FCH2203000",
                          "retry_delays": (60, 120, 240), **changes})


def boot_files(**phone_params: Any) -> dict[str, Answer]:
    return {BOOT_URL: profile(Profile_Rule=PHONE_URL),
            PHONE_URL: profile(Profile_Rule=PHONE_URL, **phone_params)}


def live(world_files: dict[str, Answer], clock: ScriptClock | None = None,
         **changes: Any) -> tuple[Any, World]:
    clock = clock or ScriptClock()
    world = World(clock, world_files)
    return run_sync(Phone(config(**changes)).run(), world, clock), world


# -- factory names per firmware generation ------------------------------------------------------

EXPECTED_ORDER = {
    "mpp-11": ["/8851-3PCC.xml", "/Cisco/CP-8851-3PCC/00562b00033c.cfg"],
    "mpp-12": ["/8851-3PCC.xml", "/Cisco/CP-8851-3PCC/00562b00033c.cfg"],
    "pn-cfg": ["/CP-8851-3PCC.cfg"],
    "cisco-ma": ["/8851-3PCC.xml", "/Cisco/00562b00033c.cfg"],
}


@pytest.mark.parametrize("generation", sorted(GENERATIONS))
def test_each_generation_requests_its_factory_names_in_its_order(generation: str) -> None:
    clock = ScriptClock()
    world = World(clock, {}, options={66: "10.42.0.1"})  # bare address: TFTP, HTTP, HTTPS in turn
    run_sync(Phone(config(generation=generation, rounds=1, remote_customization=False)).run(), world, clock)
    tails = EXPECTED_ORDER[generation]
    assert world.urls() == [f"{scheme}://10.42.0.1{tail}" for scheme in ("tftp", "http", "https")
                            for tail in tails]


def test_the_random_delay_unit_is_the_generation_s() -> None:
    assert GENERATIONS["mpp-11"].random_delay_unit == 1.0  # S4 (2017): seconds
    assert GENERATIONS["mpp-12"].random_delay_unit == 20.0  # S5, S27: units of 20 s


# -- remote customization ------------------------------------------------------------------------

ACTIVATION = "https://activate.cisco.com/lab/v1/activation?mac=00562b00033c&model=CP-8851-3PCC&serial=FCH2203000"
CLOUD_URL = "https://prov.lab.example/cloud/00562b00033c.cfg"


def test_dhcp_server_down_then_the_cloud_gives_a_url_and_the_phone_acquires_it() -> None:
    clock = ScriptClock()
    down = FetchResult(None, error="connection refused")
    files: dict[str, Answer] = {BOOT_URL: down, PHONE_URL: down, ACTIVATION: CLOUD_URL.encode() + b"\n",
                                CLOUD_URL: profile(Profile_Rule=CLOUD_URL, GPP_A="cloud")}
    world = World(clock, files, names={"activate.cisco.com": "10.42.0.1"})
    outcome = run_sync(Phone(config()).run(), world, clock)
    assert outcome.provisioned and outcome.customization == "Acquired"
    states = [s.detail.split(":")[0] for s in outcome.timeline if s.kind == "customization"]
    assert states == ["Custom-Pending", "Acquired"]
    query = parse_qs(urlsplit(world.urls()[2]).query)
    assert query == {"mac": ["00562b00033c"], "model": ["CP-8851-3PCC"], "serial": ["FCH2203000"]}
    assert outcome.params["GPP_A"] == "cloud"


def test_sinkholed_cloud_is_pending_and_the_phone_starts_again_from_dhcp_with_growing_delays() -> None:
    clock = ScriptClock()
    down = FetchResult(None, error="connection refused")
    world = World(clock, {BOOT_URL: down, PHONE_URL: down})
    outcome = run_sync(Phone(config(rounds=3)).run(), world, clock)
    assert not outcome.provisioned and outcome.customization == "Pending"
    assert outcome.last_error == "C: connection refused"  # the DHCP-supplied server's failure
    kinds = [s.kind for s in outcome.timeline]
    assert kinds.count("dhcp") == 3 and kinds.count("cloud") == 9
    assert [s.detail for s in outcome.timeline if s.kind == "wait"] == [
        "Resync_Error_Retry_Delay 60 s", "Resync_Error_Retry_Delay 120 s"]
    assert clock.now == 180


def test_no_service_provider_is_unavailable_and_the_cloud_is_not_asked_again() -> None:
    clock = ScriptClock()
    down = FetchResult(None, error="connection refused")
    files: dict[str, Answer] = {BOOT_URL: down, PHONE_URL: down,
                                ACTIVATION: FetchResult(404, b"no service provider")}
    world = World(clock, files, names={"activate.cisco.com": "10.42.0.1"})
    outcome = run_sync(Phone(config(rounds=3)).run(), world, clock)
    assert outcome.customization == "Unavailable" and not outcome.provisioned
    assert world.urls().count(ACTIVATION) == 1
    assert [s.kind for s in outcome.timeline].count("dhcp") == 3


def test_an_activation_code_asks_activation_webex_com_with_the_code() -> None:
    clock = ScriptClock()
    down = FetchResult(None, error="connection refused")
    gds = ("https://activation.webex.com/lab/v1/activation?mac=00562b00033c&model=CP-8851-3PCC"
           "&serial=FCH2203000&code=ABC123")
    world = World(clock, {BOOT_URL: down, PHONE_URL: down, gds: CLOUD_URL.encode(),
                          CLOUD_URL: profile(GPP_B="x")}, names={"activation.webex.com": "10.42.0.1"})
    outcome = run_sync(Phone(config(activation_code="ABC123")).run(), world, clock)
    assert outcome.customization == "Acquired" and gds in world.urls()
    assert not any("activate.cisco.com" in u for u in world.urls())


def test_a_gds_rule_in_a_profile_goes_the_same_path() -> None:
    gds = ("https://activation.webex.com/lab/v1/activation?mac=00562b00033c&model=CP-8851-3PCC"
           "&serial=FCH2203000&code=XYZ")
    clock = ScriptClock()
    files: dict[str, Answer] = {BOOT_URL: profile(Profile_Rule="gds://XYZ"), gds: CLOUD_URL.encode(),
                                CLOUD_URL: profile(Profile_Rule=CLOUD_URL)}
    world = World(clock, files, names={"activation.webex.com": "10.42.0.1"})
    outcome = run_sync(Phone(config()).run(), world, clock)
    assert outcome.provisioned and outcome.profile_source == CLOUD_URL
    assert outcome.customization == "Acquired"


# -- the status table and the rule's server -----------------------------------------------------

def test_a_corrupt_profile_is_category_b() -> None:
    outcome, _ = live({BOOT_URL: profile(Profile_Rule=PHONE_URL), PHONE_URL: b"<flat-profile><A>"},
                      rounds=1)
    failed = [s.detail for s in outcome.timeline if not s.ok]
    assert failed[0].startswith(f"{PHONE_URL}: failure B (profile unreadable")
    assert outcome.last_error is not None and outcome.last_error.startswith("B: profile unreadable")


def test_a_rule_without_server_uses_the_host_the_phone_last_talked_to() -> None:
    _, world = live({BOOT_URL: profile(Profile_Rule="/Cisco/$MA.cfg")}, rounds=1)
    # option 66 held a URL: the host is prov.lab.example, never `tftp://http://...`
    assert "tftp://prov.lab.example/Cisco/00562b00033c.cfg" in world.urls()
    assert not any("tftp://http" in u for u in world.urls())


def test_srv_fetches_carry_the_dhcp_domain_for_the_certificate_check_unless_switched_off() -> None:
    from tests.unit.test_phone_core import plan_world

    fetches: list[Fetch] = []

    def record(effect: Fetch) -> None:
        fetches.append(effect)

    run_sync(Phone(config()).run(), plan_world(drop={66, 150, 159, 160}, fetch=record))
    https = [f for f in fetches if f.url.startswith("https://prov.lab.example:443/")]
    assert https and all(f.cert_domain == "lab.example" and f.check_cert_address for f in https)
    fetches.clear()
    run_sync(Phone(config(check_cert_names=False)).run(), plan_world(drop={66, 150, 159, 160}, fetch=record))
    assert all(f.cert_domain is None and not f.check_cert_address for f in fetches)


# -- life after provisioning ---------------------------------------------------------------------

def test_periodic_resync_picks_up_a_changed_profile() -> None:
    def changing(now: float) -> bytes:
        value = "before" if now < 2000 else "after"
        return profile(Profile_Rule=PHONE_URL, Resync_Periodic=600, Resync_Random_Delay=0, GPP_A=value)

    outcome, world = live({BOOT_URL: profile(Profile_Rule=PHONE_URL), PHONE_URL: changing},
                          duration=3700)
    assert outcome.params["GPP_A"] == "after"
    assert outcome.resyncs == 6  # every 600 s for 3700 s
    times = world.times(PHONE_URL)
    assert [b - a for a, b in itertools.pairwise(times[1:])] == [600] * 5


def test_random_delay_spreads_100_phones_resyncs() -> None:
    firsts: list[float] = []
    for n in range(100):
        mac = f"00:56:2b:00:10:{n:02x}"
        url = f"http://prov.lab.example/Cisco/CP-8851-3PCC/00562b0010{n:02x}.cfg"
        own = profile(Profile_Rule=url, Resync_Periodic=3600, Resync_Random_Delay=30)
        files: dict[str, Answer] = {BOOT_URL: profile(Profile_Rule=url), url: own}
        clock = ScriptClock()
        world = World(clock, files)
        run_sync(Phone(config(mac=mac, duration=4300)).run(), world, clock)
        firsts.append(world.times(url)[1])
    # 30 units of 20 s (mpp-12): each phone's first periodic resync in [3600, 4200]
    assert all(3600 <= t <= 4200 for t in firsts)
    assert len(set(firsts)) == 100 and max(firsts) - min(firsts) > 400
    assert sum(t < 3900 for t in firsts) > 20 and sum(t >= 3900 for t in firsts) > 20


def test_random_delay_in_seconds_for_the_older_generation() -> None:
    files = boot_files(Resync_Periodic=3600, Resync_Random_Delay=30)
    _, world = live(files, duration=4300, generation="mpp-11")
    assert 3600 <= world.times(PHONE_URL)[1] <= 3630


def test_404_with_resync_fails_on_fnf_no_is_a_successful_resync() -> None:
    extra = "http://prov.lab.example/extra.cfg"
    outcome, world = live(boot_files(Profile_Rule_B=extra, Resync_Fails_On_FNF="No"), rounds=1)
    assert outcome.provisioned and extra in world.urls()
    assert any(s.kind == "resync" and "file not found accepted" in s.detail for s in outcome.timeline)
    outcome, _ = live(boot_files(Profile_Rule_B=extra), rounds=1)
    assert not outcome.provisioned and outcome.last_error == "B: 404 not found"


def test_rules_run_in_sequence_and_a_failure_restarts_the_sequence_after_the_error_delay() -> None:
    b, c, d = (f"http://prov.lab.example/{x}.cfg" for x in "bcd")
    c_answers = iter([FetchResult(500), FetchResult(200, profile(GPP_C="c"))])
    files = boot_files(Profile_Rule_B=b, Profile_Rule_C=c, Profile_Rule_D=d,
                       Resync_Error_Retry_Delay="30,90")
    files |= {b: profile(GPP_B="b"), c: lambda now: next(c_answers), d: profile(GPP_D="d")}
    clock = ScriptClock()
    outcome, world = live(files, clock, rounds=2)
    assert outcome.provisioned
    order = [u.rsplit("/", 1)[-1] for u in world.urls()]
    assert order == ["8851-3PCC.xml", "00562b00033c.cfg", "b.cfg", "c.cfg",  # C fails: D is not asked
                     "00562b00033c.cfg", "b.cfg", "c.cfg", "d.cfg"]
    assert world.times(PHONE_URL)[1] == 30  # the profile's own Resync_Error_Retry_Delay
    assert outcome.params["GPP_D"] == "d"


def test_a_301_is_remembered_for_the_next_resync() -> None:
    new = "http://prov.lab.example/moved/00562b00033c.cfg"
    moved = iter([FetchResult(301, headers={"Location": "/moved/00562b00033c.cfg"})])
    files: dict[str, Answer] = boot_files(Resync_Periodic=1000, Resync_Random_Delay=0)
    first = files[PHONE_URL]
    files[PHONE_URL] = lambda now: next(moved) if now > 0 else first  # type: ignore[assignment,return-value]
    files[new] = profile(Profile_Rule=PHONE_URL, Resync_Periodic=1000, Resync_Random_Delay=0)
    outcome, world = live(files, duration=3500)
    assert world.times(PHONE_URL) == [0, 1000]  # after the 301, never again
    assert world.times(new) == [1000, 2000, 3000]
    assert outcome.moved == {PHONE_URL: new}
    assert any("moved permanently (301): asking " + new in s.detail for s in outcome.timeline)


def test_user_agent_name_and_resync_at() -> None:
    files = boot_files(HTTP_User_Agent_Name="Lab-$PN ($MA)", Resync_At="0130", Resync_At_Random_Delay=0)
    _, world = live(files, duration=86400 + 7200)
    agents = [f.user_agent for _, f in world.fetches]
    assert agents[0] == "Cisco-CP-8851-3PCC/11.3.1 (00562b00033c)"
    assert agents[-1] == "Lab-CP-8851-3PCC (00562b00033c)"
    assert world.times(PHONE_URL)[1:] == [5400, 86400 + 5400]  # 01:30 each day, not every hour


FIRMWARE = "http://prov.lab.example/sip88xx.12-0-1MPP-0001.loads"


def test_a_failed_upgrade_is_retried_after_upgrade_error_retry_delay() -> None:
    answers = iter([FetchResult(500), FetchResult(200, b"load")])
    files = boot_files(Upgrade_Rule=FIRMWARE, Upgrade_Error_Retry_Delay=1800, Resync_Periodic=0)
    files[FIRMWARE] = lambda now: next(answers)
    outcome, world = live(files, duration=5000)
    assert world.times(FIRMWARE) == [0, 1800]
    assert outcome.firmware == "sip88xx.12-0-1MPP-0001" and outcome.upgrades == 1 and outcome.provisioned
    waits = [s.detail for s in outcome.timeline if s.kind == "wait"]
    assert waits == ["Upgrade_Error_Retry_Delay 1800 s"]
    # Resync_On_Reset (default Yes): the reboot that ends the upgrade is followed by a resync
    assert 1800 in world.times(PHONE_URL)
    assert any(s.kind == "resync" and s.detail.startswith("Resync_On_Reset") and s.time == 1800
               for s in outcome.timeline)


def test_resync_on_reset_no_waits_for_the_schedule_after_the_upgrade_reboot() -> None:
    files = boot_files(Upgrade_Rule=FIRMWARE, Resync_On_Reset="No", Resync_Periodic=0)
    files[FIRMWARE] = b"load"
    outcome, world = live(files, duration=5000)
    assert outcome.upgrades == 1 and world.times(PHONE_URL) == [0]
    assert [s.kind for s in outcome.timeline][-1] == "reboot"


def test_upgrade_enable_no_never_fetches_the_load() -> None:
    files = boot_files(Upgrade_Rule=FIRMWARE, Upgrade_Enable="No")
    outcome, world = live(files, rounds=1)
    assert outcome.provisioned and FIRMWARE not in world.urls()


def test_resync_failures_retry_with_the_error_delays_during_life() -> None:
    answers = iter([FetchResult(500), FetchResult(500)])
    good = profile(Profile_Rule=PHONE_URL, Resync_Periodic=1000, Resync_Random_Delay=0,
                   Resync_Error_Retry_Delay="100,200")
    files: dict[str, Answer] = {BOOT_URL: profile(Profile_Rule=PHONE_URL),
                                PHONE_URL: lambda now: good if now in (0, 1300) or now > 1400
                                else next(answers, FetchResult(200, good))}
    outcome, world = live(files, duration=1350)
    assert world.times(PHONE_URL) == [0, 1000, 1100, 1300]
    assert outcome.resync_failures == 2 and outcome.resyncs == 1


def test_the_summary_counts_resyncs_per_phone_and_time_to_provisioned_ignores_the_life() -> None:
    from labkit.phone.swarm import Summary, outcome_json, time_to_provisioned

    outcomes = []
    for mac, periodic in (("00:56:2b:00:03:3c", 1000), ("00:56:2b:00:03:3d", 2000)):
        outcome, _ = live(boot_files(Resync_Periodic=periodic, Resync_Random_Delay=0), duration=6000,
                          mac=mac)
        outcomes.append(outcome)
    summary = Summary.of(outcomes)
    # resyncs at 1000 .. 5000, and at 2000 and 4000 (the life ends at 6000)
    assert summary.resyncs == {"00:56:2b:00:03:3c": 5, "00:56:2b:00:03:3d": 2}
    assert summary.resync_spread == (2, 3.5, 5)
    assert summary.customization == {"Aborted": 2}
    assert time_to_provisioned(outcomes[0]) == 0  # provisioned at boot; the life after doesn't count
    shown = outcome_json(outcomes[0])
    assert (shown["customization"], shown["resyncs"], shown["resync_failures"]) == ("Aborted", 5, 0)


def test_simulate_reads_durations_and_generations() -> None:
    import typer

    from labkit.cli.phones import parse_duration, parse_generations

    assert [parse_duration(t) for t in ("6h", "90m", "45s", "2d", "3600")] == [21600, 5400, 45, 172800, 3600]
    with pytest.raises(typer.BadParameter):
        parse_duration("soon")
    assert parse_generations(["pn-cfg", "CP-7841-3PCC=mpp-11"]) == {"*": "pn-cfg", "CP-7841-3PCC": "mpp-11"}
    with pytest.raises(typer.BadParameter):
        parse_generations(["mpp-99"])
