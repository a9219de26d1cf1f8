"""The compiled fold (labkit.native._fold, LabOps.fold) leaves the lab exactly as the pure path
(LabStatus.apply and Timeline.append_event) does: the same status (every phone's record, the
counters, leases, unknown clients), the same snapshot, the same timelines byte for byte and the
same timeline_bytes, for a table of ugly events and for random sequences of them."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit import native
from labkit.events import Event
from labkit.services import ops as ops_module
from labkit.services.ops import LabOps
from labkit.services.status import LabStatus

compiled = native.load("_fold")
pytestmark = pytest.mark.skipif(compiled is None, reason="labkit.native._fold is not built here")

A, B, C = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c"
INVENTORY = [(A, "desk", "CP-8851-3PCC", None), (B, "lobby", "CP-7841-3PCC", "10.0.0.7")]


def _event(service: str, action: str, request: str = "", answer: str = "", result: str = "ok", *,
           phone: str | None = None, client: str | None = "10.0.0.9:5060", when: float = 100.0,
           **detail: Any) -> Event:
    return Event(when, service, client, phone, action, request, answer, result, detail)


TABLE = [
    _event("dhcp", "discover", f"DISCOVER {A}", "OFFER 10.0.1.1 to 10.0.0.2:67", phone=A, ip="10.0.1.1"),
    _event("dhcp", "request", f"REQUEST {A}", "ACK 10.0.1.1 until 9", phone=A, ip="10.0.1.1", when=100.5),
    _event("dhcp", "request", f"REQUEST {C}", "ACK 10.0.1.3 until 9", phone=C, ip="10.0.1.3"),  # new phone
    _event("dhcp", "request", "REQUEST again", "ACK 10.0.1.1 until 9", phone=A, ip=""),  # an empty ip
    _event("dhcp", "request", "REQUEST odd", "NAK", "nak", phone=A, ip="10.0.1.1"),
    _event("tftp", "rrq", "/SEP.cnf.xml", "302 bytes", client="10.0.1.1:1024"),  # by its lease
    _event("tftp", "rrq", "/SEP.cnf.xml", "302 bytes", client="10.0.0.7:1024"),  # by its fixed address
    _event("http", "get", f"/Cisco/{A}.cfg", "200 10 bytes", client="10.0.1.1:40000", when=101.0),
    _event("http", "get", "/sip88xx.12-0-1MPP.loads", "404", "not-found", phone=A),
    _event("http", "get", "/fw/sip88xx.12-0-1MPP.loads", "200 4096 bytes", phone=A, when=102.0),
    _event("https", "get", "/x.cfg", "200", phone=B),
    _event("dns", "query", "A prov.lab.example", "NOERROR 1 A", client="127.0.0.1:40001"),  # loopback
    _event("dns", "query", "A prov.lab.example", "NXDOMAIN", "nxdomain", client="10.9.9.9:53"),  # unknown
    _event("dns", "query", "bad", "", "malformed", client="10.9.9.9:53"),
    _event("dns", "query", "A x", "", "formerr", client=None),
    _event("dns", "query", "A x", "", "ok", client=""),
    _event("syslog", "log", "caf\u00e9 \ud800 \x00 line", "", "ok", phone=A, client="10.0.1.1:5"),
    _event("syslog", "log", "x" * 300, "\u00e9" * 300, "ok", phone=A),  # the long string forms
    _event("tftp", "rrq", "/a.cfg", "", "timeout", phone=B, when=math.inf),
    _event("dhcp", "fault", "DISCOVER", "dropped", "fault", phone=A, rule="drop-offers"),
    _event("dns", "kernel-drops", "", "", "ok", total=12),
    _event("dns", "suppressed", "malformed input", "", "suppressed", count=3),
    _event("dhcp", "request", "REQUEST", "ACK 10.0.1.9 until 9", phone=B, ip=object()),  # not a str: Python's
    Event(7, "tftp", None, A, "rrq", "/b.xml", "", "ok", {}),  # an int time: Python's  # type: ignore[arg-type]
    Event(8.0, "tftp", "10.0.1.1:9", A, "rrq", "/b.xml", "", "ok", None),  # type: ignore[arg-type]
    _event("tftp", "rrq", "/8851-3PCC.xml", "302 bytes", phone=A, when=103.0),  # provisioned now
    _event("tftp", "rrq", "/8851-3PCC.xml", "302 bytes", phone=A, when=104.0),  # a repeated step
]


def _state(lab: LabOps) -> tuple[str, str, dict[str, tuple[int, bytes]], int, dict[str, Any]]:
    status = lab.status
    shown = {mac: lab.phone(mac) for mac in status.phones}
    return (repr(status), repr(status.snapshot(0.0)),
            {mac: (t.rows, bytes(t.data)) for mac, t in lab.timelines.items()}, lab.timeline_bytes, shown)


def _both(events: list[Event], inventory: list[tuple[str, str, str, str | None]] = INVENTORY) -> list[Any]:
    states = []
    for pure in (False, True):
        lab = LabOps(LabStatus.of_phones(inventory))
        assert lab.fold is not None
        if pure:
            lab.fold = None
        for event in events:
            lab(event)
        states.append(_state(lab))
    return states


@pytest.mark.parametrize("upto", range(1, len(TABLE) + 1))
def test_the_table_folds_the_same_compiled_or_pure(upto: int) -> None:
    compiled_state, pure_state = _both(TABLE[:upto])
    assert compiled_state == pure_state


def test_the_table_twice_and_shuffled_folds_the_same() -> None:
    events = TABLE + TABLE[::-1] + TABLE[1::2]
    compiled_state, pure_state = _both(events)
    assert compiled_state == pure_state
    status = LabOps(LabStatus.of_phones(INVENTORY))
    for event in events:
        status(event)
    assert status.status.phones[A].stage == "provisioned"  # the table walks a phone through every stage


def test_the_fold_leaves_its_python_cases_untouched() -> None:
    lab = LabOps(LabStatus.of_phones(INVENTORY))
    assert lab.fold is not None
    before = _state(lab)
    for event in (TABLE[19], TABLE[20], TABLE[21], TABLE[23], TABLE[24]):  # reports and odd shapes
        assert lab.fold(event) is NotImplemented
        assert _state(lab) == before
    first = _event("kit", "start", "lab", "", phone=A)  # a service's first event: made in Python
    assert lab.fold(first) is NotImplemented and _state(lab) == before


def test_a_status_subclass_keeps_its_own_apply() -> None:
    class Counting(LabStatus):
        """A subclass as a plugin would write it: its apply may differ, so the fold stays off."""

    assert LabOps(Counting()).fold is None


def test_a_replaced_status_is_left_to_the_python_path() -> None:
    lab = LabOps(LabStatus.of_phones(INVENTORY))
    lab.status = LabStatus.of_phones(INVENTORY)
    lab(TABLE[0])
    assert lab.status.phones[A].stage == "dhcp" and lab.status.events == 1


def test_the_timelines_bounds_hold_through_the_fold(monkeypatch: Any) -> None:
    monkeypatch.setattr(ops_module, "TIMELINE_BYTES", 20_000)
    macs = [f"02:00:00:00:01:{n:02x}" for n in range(40)]
    events = [_event("syslog", "log", f"line {n}", phone=macs[n % 40], when=1000.0 + n) for n in range(2000)]
    inventory = [(mac, "", "CP-8851-3PCC", None) for mac in macs]
    compiled_state, pure_state = _both(events, inventory)
    assert compiled_state == pure_state
    assert compiled_state[3] <= 20_000
    assert compiled_state[3] == sum(len(data) for _, data in compiled_state[2].values())


def test_counters_count_exactly() -> None:
    lab = LabOps(LabStatus.of_phones(INVENTORY))
    for event in TABLE:
        lab(event)
    dns = lab.status.services["dns"]
    assert (dns.requests, dns.malformed, dns.errors) == (5, 2, 1)
    assert dns.errors_by_reason == Counter({"nxdomain": 1}) and dns.kernel_drops == 12
    assert lab.status.unknown_clients == Counter({"10.9.9.9": 2, "127.0.0.1": 1})
    leases = {ip: mac for ip, mac in lab.status.leases.items() if ip.startswith("10.")}
    assert leases == {"10.0.1.1": A, "10.0.1.3": C}
    assert len(lab.status.leases) == 3  # and the object's str, as the Python path keeps it


events_strategy = st.builds(
    _event,
    st.sampled_from(["dhcp", "tftp", "http", "dns", "syslog"]),
    st.sampled_from(["discover", "request", "rrq", "get", "query", "log", "fault"]),
    st.sampled_from(["/a.xml", f"/Cisco/{A}.cfg", "/f.loads", "x/y", "", "\u00e9/\ud800"]),
    st.sampled_from(["ACK 10.0.1.1", "OFFER", "200", "", "\u00e9"]),
    st.sampled_from(["ok", "nxdomain", "malformed", "fault", "ignored"]),
    phone=st.sampled_from([None, A, B, C]),
    client=st.sampled_from([None, "", "10.0.1.1:68", "10.0.0.7:5", "127.0.0.1:9", "10.9.9.9:1", "nocolon"]),
    when=st.floats(allow_nan=False),
    ip=st.sampled_from(["10.0.1.1", "10.0.0.7", "", None]),
)


@settings(deadline=None, max_examples=150)  # no timing: a loaded machine is slow, not wrong
@given(st.lists(events_strategy, max_size=25))
def test_any_sequence_folds_the_same(events: list[Event]) -> None:
    compiled_state, pure_state = _both(events)
    assert compiled_state == pure_state


def test_a_bus_calls_the_compiled_deliver_with_the_same_results_and_messages() -> None:
    from labkit.services.journal import EventBus

    told, states = [], []
    for pure in (False, True):
        lab = LabOps(LabStatus.of_phones(INVENTORY))
        if pure:
            lab.fold = None
        bus = EventBus()
        bus.sinks.append(lab)
        with lab.subscribe() as queue:
            for event in TABLE:
                bus(event)
            told.append([queue.get_nowait() for _ in range(queue.qsize())])
        states.append(_state(lab))
        assert bus._calls == ((lab, lab.direct),)  # (with the fold off, deliver calls lab itself)
    assert states[0] == states[1]
    assert told[0] == told[1] and len(told[0]) > 10  # every change a dashboard hears of, in order


def test_a_fold_turned_off_after_the_bus_saw_it_takes_the_pure_path() -> None:
    from labkit.services.journal import EventBus

    lab = LabOps(LabStatus.of_phones(INVENTORY))
    bus = EventBus()
    bus.sinks.append(lab)
    bus(TABLE[0])
    lab.fold = None  # deliver, kept by the bus, now calls lab(event): the pure path
    for event in TABLE[1:]:
        bus(event)
    compiled_state, pure_state = _both(TABLE)
    assert _state(lab) == pure_state == compiled_state
