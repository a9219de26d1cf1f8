"""Fault rules (schema, plan conversion, the pure engine, typed hooks, DNS and TFTP rewrites) and
timelines, pure."""

from __future__ import annotations

import random
from pathlib import Path
from types import MappingProxyType

import pytest

from labkit.events import Event, EventRecorder
from labkit.faults.engine import FaultEngine, Match, Query, Rule, When, describe
from labkit.faults.hooks import Faults
from labkit.inventory.faults import FaultError, FaultRule, parse_cli_rule
from labkit.inventory.load import load
from labkit.plan.build import build_plan
from labkit.plan.faults import plan_faults
from labkit.protocols.dhcp.faults import DhcpFaultAction
from labkit.protocols.dns.faults import DnsFaultAction
from labkit.protocols.http_faults import HttpFaultAction
from labkit.protocols.tftp.faults import SendFilter, TftpFaultAction
from labkit.protocols.tftp.packets import encode_data, encode_oack
from labkit.timeline import story

MAC = "00:56:2b:00:00:01"


def rule(**data: object) -> FaultRule:
    return FaultRule.model_validate(data)


def engine_of(*rules: FaultRule, seed: int = 0) -> FaultEngine:
    return FaultEngine(plan_faults(rules), random.Random(seed))


def fire_pattern(when: dict[str, object], n: int = 8, seed: int = 0) -> list[bool]:
    e = engine_of(rule(http={"status": 500}, when=when), seed=seed)
    return [bool(e.decide(Query("http", path="/x"), elapsed=float(i))) for i in range(n)]


def test_when_first_every_window_probability() -> None:
    assert fire_pattern({"first": 2}) == [True, True] + [False] * 6
    assert fire_pattern({"every": 3}) == [False, False, True, False, False, True, False, False]
    window = fire_pattern({"after": 2, "until": 5})
    assert window == [False, False, True, True, True, False, False, False]
    seeded = fire_pattern({"probability": 0.5}, n=200, seed=7)
    assert 60 < sum(seeded) < 140 and seeded == fire_pattern({"probability": 0.5}, n=200, seed=7)


def test_engine_is_pure_rules_elapsed_and_random_in() -> None:
    rules = [Rule("slow", "http", HttpFaultAction(delay=2.0), Match(path="/a*"), When(after=10.0))]
    engine = FaultEngine(rules, random.Random(1))
    assert engine.decide(Query("http", path="/abc"), elapsed=9.99) == []
    fired = engine.decide(Query("http", path="/abc"), elapsed=10.0)
    assert [(f.label, f.action) for f in fired] == [("slow", HttpFaultAction(delay=2.0))]
    assert engine.counts == [2] and engine.fired == [1]
    assert engine.decide(Query("dns", name="/abc"), elapsed=99) == [] and engine.counts == [2]
    assert not FaultEngine([], random.Random(0)) and engine.wants("http") and not engine.wants("tftp")


def test_match_by_mac_model_group_path_and_name() -> None:
    engine = engine_of(
        rule(match={"mac": MAC}, http={"status": 404}),
        rule(match={"model": "CP-78*", "path": "/Cisco/*"}, http={"status": 500}),
        rule(match={"name": "_ciscoprov-*.lab.example"}, dns={"rcode": "SERVFAIL"}),
        rule(match={"group": "bench-b"}, tftp={"error": 2}),
        rule(match={"message": "REQUEST"}, dhcp={"nak": True}),
    )
    assert [f.label for f in engine.decide(Query("http", mac=MAC, path="/a"), 0)] == ["fault 1 (http)"]
    hits = engine.decide(Query("http", model="CP-7841-3PCC", path="/Cisco/x.cfg"), 0)
    assert hits[0].action.status == 500
    assert engine.decide(Query("http", model="CP-8851-3PCC", path="/Cisco/x.cfg"), 0) == []
    assert engine.decide(Query("dns", name="_ciscoprov-http._tcp.LAB.example."), 0)
    assert engine.decide(Query("tftp", group="bench-b"), 0) and not engine.decide(Query("tftp"), 0)
    assert engine.decide(Query("dhcp", message="REQUEST"), 0)
    assert not engine.decide(Query("dhcp", message="DISCOVER"), 0)
    assert engine.wants("dns") and engine.wants("dhcp")


def test_plan_converts_rules_to_the_cores_plain_actions() -> None:
    rules = plan_faults([
        rule(name="bad options", dhcp={"omit": [150], "replace": {66: "31302e392e392e39"}, "delay": 1}),
        rule(dns={"rcode": "NXDOMAIN"}, when={"first": 1}),
        rule(match={"path": "/Cisco/*"}, tftp={"drop_block": 2}),
        rule(http={"status": 302, "location": "http://x/"}, when={"probability": 0.5}),
    ], first_index=1)
    dhcp, dns, tftp, http = rules
    assert dhcp.label == "bad options" and dns.label == "fault 3 (dns)" and http.label == "fault 5 (http)"
    assert dhcp.action == DhcpFaultAction(delay=1.0, omit=(150,), replace=MappingProxyType({66: b"10.9.9.9"}))
    assert isinstance(dhcp.action.replace, MappingProxyType) and isinstance(dhcp.action.omit, tuple)
    assert dns.action == DnsFaultAction(rcode="NXDOMAIN") and dns.when == When(first=1)
    assert tftp.action == TftpFaultAction(drop_block=2) and tftp.match == Match(path="/Cisco/*")
    assert http.action == HttpFaultAction(status=302, location="http://x/") and http.service == "http"
    assert describe(dhcp.action) == "delay=1.0, omit=[150], replace={66: b'10.9.9.9'}"
    assert describe(TftpFaultAction()) == "no-op"


def test_plan_holds_inventory_rules_then_command_line_rules(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text(LAB_WITH_FAULT)
    plan = build_plan(load(tmp_path / "lab.yaml"))
    assert [r.label for r in plan.faults] == ["inventory 404"]
    more = plan.with_faults([parse_cli_rule("{dns: {drop: true}}")])
    assert [r.label for r in more.faults] == ["inventory 404", "fault 2 (dns)"] and len(plan.faults) == 1
    assert plan.fault_phones == {MAC: ("CP-8851-3PCC", "bench-a")}
    with pytest.raises(AttributeError):
        plan.faults = ()  # type: ignore[misc]  # the plan is frozen


def test_typed_hooks_emit_one_event_per_fired_rule() -> None:
    recorder = EventRecorder()
    engine = engine_of(rule(name="own 404", match={"group": "bench-a"}, http={"status": 404}))
    faults = Faults.build(engine, recorder, {MAC: ("CP-8851-3PCC", "bench-a")}, started=100.0,
                          clock=lambda: 101.5)
    assert faults.dns is None and faults.dhcp is None and faults.tftp is None and faults.http is not None
    fired = faults.http.check(mac=MAC, client="10.0.0.9:5000", request="GET /x", path="/x",
                              event_service="https")
    assert [f.action.status for f in fired] == [404]
    assert faults.http.check(mac=None, client=None, request="GET /x", path="/x") == []
    [event] = recorder.events
    assert (event.service, event.phone, event.action, event.answer, event.result, event.detail) == (
        "https", MAC, "fault", "status=404", "fault", {"rule": "own 404"})
    assert event.time == 101.5


def test_rules_are_validated() -> None:
    with pytest.raises(ValueError, match="exactly one of"):
        rule(http={"status": 500}, dns={"drop": True})
    with pytest.raises(FaultError, match="status"):
        parse_cli_rule("{http: {status: 999}}")
    parsed = parse_cli_rule('{match: {path: "/Cisco/*"}, http: {status: 404}, when: {first: 2}}')
    assert parsed.when.first == 2 and parsed.http is not None and parsed.http.status == 404


def test_tftp_send_filter_drops_duplicates_and_stalls() -> None:
    blocks = [encode_data(n, b"x" * 512) for n in (1, 2, 3, 4)]
    drop = SendFilter(TftpFaultAction(drop_block=2))
    assert [len(drop(b)) for b in [*blocks, blocks[1]]] == [1, 0, 1, 1, 1]  # only the first copy
    dup = SendFilter(TftpFaultAction(duplicate_block=3))
    assert [len(dup(b)) for b in blocks] == [1, 1, 2, 1]
    stall = SendFilter(TftpFaultAction(stall_after=2))
    assert [len(stall(b)) for b in [*blocks, blocks[2]]] == [1, 1, 0, 0, 0]
    oack = encode_oack((("blksize", "1468"),))
    first = SendFilter(TftpFaultAction(drop_oack=True))
    assert first(oack) == [] and first(oack) == [oack]


def event(t: float, service: str, action: str, request: str, answer: str, result: str,
          **detail: object) -> Event:
    return Event(t, service, "10.42.0.60:68", MAC, action, request, answer, result, dict(detail))


def test_timeline_tells_where_a_phone_stalled() -> None:
    events = [
        event(1, "dhcp", "request", "REQUEST", "ACK 10.42.0.60 until 9", "ok", ip="10.42.0.60"),
        event(2, "http", "get", "/8851-3PCC.xml", "200 700 bytes", "ok"),
        event(3, "http", "fault", "GET /Cisco/CP-8851-3PCC/00562b000001.cfg", "status=404", "fault",
              rule="own profile 404"),
        event(4, "http", "get", "/Cisco/CP-8851-3PCC/00562b000001.cfg", "404 (fault)", "fault"),
        Event(5, "tftp", "10.42.0.60:4000", None, "rrq", "/x", "error 1", "not-found", {}),
        Event(6, "dns", "10.42.0.61:53", None, "query", "A prov", "NOERROR", "ok", {}),
    ]
    told = story(events, MAC)
    assert [e.time for e in told.events] == [1, 2, 3, 4, 5]  # by MAC, then by the address it held
    text = "\n".join(told.lines())
    assert "<- fault rule own profile 404" in text
    assert told.diagnosis().startswith("stalled after a profile (.xml or .cfg); never got its own profile")
    assert "1 fault(s) hit it" in told.diagnosis()  # the rule firing and the answer it caused: one fault
    random.seed(0)


LAB_WITH_FAULT = """\
lab: {domain: t.example, address: 192.0.2.1/24}
models: {CP-8851-3PCC: {}}
phones: [{mac: "00:56:2b:00:00:01", model: CP-8851-3PCC, ip: 192.0.2.9, group: bench-a}]
faults:
  - {name: inventory 404, match: {group: bench-a}, http: {status: 404}}
"""
