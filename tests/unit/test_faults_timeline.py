"""Fault rules (engine, DNS and TFTP rewrites) and timelines, pure."""

from __future__ import annotations

import random

import pytest

from labkit.events import Event
from labkit.faults import FaultEngine, FaultError, FaultRule, Request, TftpFault, parse_cli_rule
from labkit.inventory.load import load
from labkit.plan.build import build_plan
from labkit.protocols.tftp.packets import encode_data, encode_oack
from labkit.services.tftp import _SendFilter
from labkit.timeline import story

MAC = "00:56:2b:00:00:01"


def rule(**data: object) -> FaultRule:
    return FaultRule.model_validate(data)


def fire_pattern(when: dict[str, object], n: int = 8, **engine: object) -> list[bool]:
    e = FaultEngine([rule(http={"status": 500}, when=when)], **engine)  # type: ignore[arg-type]
    return [bool(e.decide(Request("http", path="/x"), now=float(i))) for i in range(n)]


def test_when_first_every_window_probability() -> None:
    assert fire_pattern({"first": 2}) == [True, True] + [False] * 6
    assert fire_pattern({"every": 3}) == [False, False, True, False, False, True, False, False]
    window = fire_pattern({"after": 2, "until": 5})
    assert window == [False, False, True, True, True, False, False, False]
    seeded = fire_pattern({"probability": 0.5}, n=200, seed=7)
    assert 60 < sum(seeded) < 140 and seeded == fire_pattern({"probability": 0.5}, n=200, seed=7)


def test_match_by_mac_model_group_path_and_name() -> None:
    engine = FaultEngine([
        rule(match={"mac": MAC}, http={"status": 404}),
        rule(match={"model": "CP-78*", "path": "/Cisco/*"}, http={"status": 500}),
        rule(match={"name": "_ciscoprov-*.lab.example"}, dns={"rcode": "SERVFAIL"}),
        rule(match={"group": "bench-b"}, tftp={"error": 2}),
    ])
    assert [f.label for f in engine.decide(Request("http", mac=MAC, path="/a"), 0)] == ["fault 1 (http)"]
    hits = engine.decide(Request("http", model="CP-7841-3PCC", path="/Cisco/x.cfg"), 0)
    assert hits[0].action.status == 500
    assert engine.decide(Request("http", model="CP-8851-3PCC", path="/Cisco/x.cfg"), 0) == []
    assert engine.decide(Request("dns", name="_ciscoprov-http._tcp.LAB.example."), 0)
    assert engine.decide(Request("tftp", group="bench-b"), 0) and not engine.decide(Request("tftp"), 0)
    assert engine.wants("dns") and not engine.wants("dhcp")


def test_rules_are_validated() -> None:
    with pytest.raises(ValueError, match="exactly one of"):
        rule(http={"status": 500}, dns={"drop": True})
    with pytest.raises(FaultError, match="status"):
        parse_cli_rule("{http: {status: 999}}")
    parsed = parse_cli_rule('{match: {path: "/Cisco/*"}, http: {status: 404}, when: {first: 2}}')
    assert parsed.when.first == 2 and parsed.http is not None and parsed.http.status == 404


def test_tftp_send_filter_drops_duplicates_and_stalls() -> None:
    blocks = [encode_data(n, b"x" * 512) for n in (1, 2, 3, 4)]
    drop = _SendFilter(TftpFault(drop_block=2))
    assert [len(drop(b)) for b in [*blocks, blocks[1]]] == [1, 0, 1, 1, 1]  # only the first copy
    dup = _SendFilter(TftpFault(duplicate_block=3))
    assert [len(dup(b)) for b in blocks] == [1, 1, 2, 1]
    stall = _SendFilter(TftpFault(stall_after=2))
    assert [len(stall(b)) for b in [*blocks, blocks[2]]] == [1, 1, 0, 0, 0]
    oack = encode_oack((("blksize", "1468"),))
    first = _SendFilter(TftpFault(drop_oack=True))
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
    assert "2 fault(s) hit it" in told.diagnosis()
    random.seed(0)
