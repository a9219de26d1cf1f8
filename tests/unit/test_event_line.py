"""The journal's compiled line (labkit.native._events.line) is the reference's text byte for byte:
`Event.to_json() + "\\n"` (itself `json.dumps` of the plain dict, tests/unit/test_event_json.py),
or None for a shape it leaves to to_json; and a journal written through it is the same file as one
written by the pure path."""

from __future__ import annotations

import enum
import io
import json
import marshal
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit import native
from labkit.events import Event, _detail_json, _quote
from labkit.services.journal import JsonLinesLog
from tests.unit.test_event_json import CASES, reference

events = native.load("_events")
needs_native = pytest.mark.skipif(events is None, reason="labkit.native._events is not built here")


class Word(str):
    """A str subclass: json.dumps writes it as a string, and so must the compiled line."""


class Level(enum.IntEnum):
    HIGH = 3


COMMON = [  # shapes the compiled line must write itself (not hand back with None)
    Event(1764524000.123456, "dhcp", "198.18.0.2:67", "00:0c:00:00:00:01", "request",
          "REQUEST 00:0c:00:00:00:01 wants 198.18.1.0 via relay 198.18.0.2",
          "ACK 198.18.1.0 until 1764527600", "ok", {"state": "selecting", "ip": "198.18.1.0"}),
    Event(2.0, "dns", "127.0.0.1:5353", None, "query", "SRV _x._tcp.lab.example", "NOERROR 1 SRV", "ok", {}),
    Event(-0.0, "kit", None, None, "x", "negative zero", "", "ok", {"n": -12, "big": 10**30, "f": -1.5e-7}),
    Event(3.0, "dhcp", None, None, "discover", "DISCOVER 00:0c:00:00:00:02 vendor 'Cisco \"8851\"\\\\'",
          "é \x7f \x1f \u2028", "ok", {"quote\"key": "tab\t", "t": (1, "two", None, False), "l": []}),
    Event(4.0, "kit", None, None, "x", "", "", "ok", {"nan": math.nan, "inf": [math.inf]}),  # via detail_json
    Event(5.0, "kit", None, None, "x", "", "", "ok", {1: "int key", "nested": {"a": 1}, "sub": Word("w")}),
    Event(6.0, "kit", None, None, "x", "", "", "ok", {"enum": Level.HIGH, "ints": [Level.HIGH]}),
    Event(7.0, "kit", None, None, "x", "\ud800", "surrogate", "ok", {"set": {1}}),
]
LEFT_TO_TO_JSON = [  # shapes answered with None (to_json decides)
    *(e for e in CASES if type(e.time) is not float or not math.isfinite(e.time)
      or not isinstance(e.detail, dict) or not isinstance(e.client, str | None)),
    Event(8.0, Word("kit"), None, None, "x", "a str subclass", "", "ok", {}),
    Event(9.0, "kit", None, 7, "x", "a phone that is not a str", "", "ok", {}),  # type: ignore[arg-type]
]


def compiled(event: Event) -> str | None:
    assert events is not None
    return events.line(event, _quote, _detail_json)


@needs_native
@pytest.mark.parametrize("event", COMMON + CASES, ids=range(len(COMMON + CASES)))
def test_the_compiled_line_is_the_reference_text(event: Event) -> None:
    line = compiled(event)
    if event in LEFT_TO_TO_JSON:
        assert line is None
        return
    assert line is not None
    if "object" in (event.detail or {}):  # an object's str carries its address: compare parsed
        assert json.loads(line) == json.loads(event.to_json())
    else:
        assert line == event.to_json() + "\n" == reference(event) + "\n"


@needs_native
@pytest.mark.parametrize("event", LEFT_TO_TO_JSON, ids=range(len(LEFT_TO_TO_JSON)))
def test_other_shapes_are_left_to_to_json(event: Event) -> None:
    assert compiled(event) is None


@needs_native
def test_events_sharing_a_time_and_then_another() -> None:
    batch = [Event(t, "dhcp", None, None, "a", "r", "x", "ok", {}) for t in (5.5, 5.5, 7.25, 5.5, 0.0, -0.0)]
    assert [compiled(e) for e in batch] == [reference(e) + "\n" for e in batch]


texts = st.text(max_size=40)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), texts)
details = st.dictionaries(st.one_of(st.text(max_size=8), st.integers()),
                          st.one_of(scalars, st.lists(scalars, max_size=4), st.tuples(scalars, scalars),
                                    st.dictionaries(st.text(max_size=3), scalars, max_size=2)), max_size=4)


@needs_native
@settings(deadline=None)  # no timing: a loaded machine is slow, not wrong
@given(st.floats(allow_nan=False, allow_infinity=False), texts, st.one_of(st.none(), texts),
       st.one_of(st.none(), texts), texts, texts, texts, details)
def test_any_fields_give_the_reference_text(when: float, service: str, client: str | None, phone: str | None,
                                            request: str, answer: str, result: str,
                                            detail: dict[Any, Any]) -> None:
    event = Event(when, service, client, phone, "act", request, answer, result, detail)
    assert compiled(event) == reference(event) + "\n"


def test_a_journal_written_compiled_or_pure_is_the_same_file(tmp_path: Path) -> None:
    written = []
    for name, pure in (("compiled", False), ("pure", True)):
        journal = JsonLinesLog(tmp_path / f"{name}.jsonl")
        if pure:
            journal.native = journal.lines = None  # the pure path
        for event in [*COMMON, *CASES[:2], *LEFT_TO_TO_JSON[:3]]:
            journal(event)
        journal.close()
        written.append((tmp_path / f"{name}.jsonl").read_bytes())
    assert written[0] == written[1]
    assert len(written[0].splitlines()) == len(COMMON) + 5


ROWS = [*COMMON, *CASES,
        Event(1.0, "tftp", None, None, "rrq", "x" * 300, "é" * 300, "ok", {}),  # the long forms: 'a' and 'u'
        Event(1.0, "dhcp", "198.18.0.2:67", None, "fault", "DISCOVER", "dropped", "fault",
              {"rule": ("any",)})]


@needs_native
@pytest.mark.parametrize("event", ROWS, ids=range(len(ROWS)))
def test_the_compiled_timeline_row_reads_back_as_the_reference_row(event: Event) -> None:
    from labkit.services.ops import timeline_row

    assert events is not None
    encoded = events.row(event)
    simple = (type(event.time) is float and event.action != "fault"
              and all(type(v) is str for v in (event.service, event.request, event.answer, event.result))
              and type(event.client) in (str, type(None)))
    data = bytearray(b"kept")
    added = events.append_row(data, event)  # what LabOps uses: the same bytes, into the bytearray
    if not simple:
        assert encoded is None and added == 0 and data == b"kept"
        return
    assert encoded is not None
    assert added == len(encoded) and data == b"kept" + encoded
    assert repr(marshal.loads(encoded)) == repr(timeline_row(event))  # repr: nan == nan
    stream = io.BytesIO(encoded * 2)  # rows back to back, as a Timeline keeps them
    assert repr([marshal.load(stream), marshal.load(stream)]) == repr([timeline_row(event)] * 2)


@needs_native
@settings(deadline=None)  # no timing: a loaded machine is slow, not wrong
@given(st.floats(), texts, st.one_of(st.none(), texts), texts, texts, texts)
def test_any_row_reads_back(when: float, service: str, client: str | None, request: str, answer: str,
                            result: str) -> None:
    from labkit.services.ops import timeline_row

    assert events is not None
    event = Event(when, service, client, None, "act", request, answer, result, {})
    encoded = events.row(event)
    assert encoded is not None
    assert repr(marshal.loads(encoded)) == repr(timeline_row(event))  # repr: nan == nan


def test_phone_timelines_are_the_same_compiled_or_pure() -> None:
    from labkit.services.ops import LabOps
    from labkit.services.status import LabStatus

    shown = []
    for pure in (False, True):
        ops = LabOps(LabStatus())
        if pure:
            ops.native = ops.fold = None  # the compiled row and the compiled fold (test_fold_native.py) off
        for event in ROWS:
            ops(Event(event.time, event.service, event.client, "00:0c:00:00:00:09", event.action,
                      event.request, event.answer, event.result, event.detail))
        shown.append(repr(ops.phone("00:0c:00:00:00:09")["events"]))  # type: ignore[index]
    assert shown[0] == shown[1]
    assert shown[0].count("'service'") == len(ROWS)


@needs_native
@pytest.mark.parametrize("event", COMMON + CASES, ids=range(len(COMMON + CASES)))
def test_append_line_adds_the_compiled_line_to_the_journal_buffer(event: Event) -> None:
    assert events is not None
    data = bytearray(b"before\n")
    added = events.append_line(data, event, _quote, _detail_json)  # what JsonLinesLog uses
    line = compiled(event)
    if line is None:
        assert added == 0 and data == b"before\n"
    elif "object" in (event.detail or {}):  # an object's str carries its address
        assert added == len(line) and data.startswith(b"before\n{")
    else:
        assert added == len(line) and data == b"before\n" + line.encode("ascii")


def test_a_journal_rotates_at_the_same_lines_compiled_or_pure(tmp_path: Path) -> None:
    written = []
    for name, pure in (("compiled", False), ("pure", True)):
        folder = tmp_path / name
        journal = JsonLinesLog(folder / "events.jsonl", max_bytes=700, backups=2)
        if pure:
            journal.native = journal.lines = None  # the pure path
        for event in [*COMMON, *CASES[:2], *LEFT_TO_TO_JSON[:3]] * 3:
            journal(event)
        journal.close()
        written.append([(p.name, p.read_bytes()) for p in sorted(folder.iterdir())])
    assert written[0] == written[1]
    assert [name for name, _ in written[0]] == ["events.jsonl", "events.jsonl.1", "events.jsonl.2"]
    assert all(len(data) <= 700 for _, data in written[0])


@needs_native
@settings(deadline=None)  # no timing: a loaded machine is slow, not wrong
@given(st.one_of(st.floats(min_value=1.0, max_value=2.0**53), st.floats(min_value=1.7e9, max_value=1.9e9),
                 st.floats()))
def test_the_compiled_time_text_is_repr_or_left_to_it(when: float) -> None:
    assert events is not None
    text = events.time_text(when)  # what the compiled line writes for the time, when not None
    assert text is None or text == repr(when)


@needs_native
def test_the_compiled_time_text_writes_nearly_every_clock_time() -> None:
    import random
    import struct

    assert events is not None
    chosen = random.Random(15)
    clock = [1.7e9 + chosen.random() * 2e8 for _ in range(20000)]
    odd = [struct.unpack("<d", struct.pack("<Q", chosen.getrandbits(64)))[0] for _ in range(5000)]
    edges = [1.0, 1.5, 2.0**52 + 0.5, 2.0**53 - 1, 4503599627370495.5, 9.999999999999998, 1.9999999999999998,
             2126132177966055.8, 0.5, -1.5, math.nan, math.inf]
    texts = [(when, events.time_text(when)) for when in clock + odd + edges]
    assert all(text is None or text == repr(when) for when, text in texts)
    assert sum(text is None for _, text in texts[:len(clock)]) < 20  # the exact ties are left to repr
    assert [events.time_text(when) for when in (0.5, -1.5, math.nan, math.inf, 2.0**53)] == [None] * 5


def test_a_bus_with_a_limited_journal_writes_the_same_file_compiled_or_pure(tmp_path: Path) -> None:
    from labkit.services.journal import EventBus, MalformedLimiter

    flood = [Event(100.0 + n / 50, "dns", "10.0.0.9:53", None, "query", f"bad {n}", "", "malformed", {})
             for n in range(120)]  # 50 a second: the limiter passes 20 of each second
    events = [*COMMON, *flood[:60], *CASES[:2], *flood[60:], *LEFT_TO_TO_JSON[:3], *COMMON]
    written, suppressed = [], []
    for name, pure in (("compiled", False), ("pure", True)):
        journal = JsonLinesLog(tmp_path / f"{name}.jsonl", max_bytes=5000, backups=1)
        if pure:
            journal.native = journal.lines = None
        limiter = MalformedLimiter(journal)
        bus = EventBus()
        bus.sinks.append(limiter)
        for event in events:
            bus(event)
        limiter.flush()
        journal.close()
        assert bus._calls == ((limiter, limiter.direct),)
        assert (limiter.direct is limiter) == pure
        written.append([p.read_bytes() for p in sorted(tmp_path.glob(f"{name}.jsonl*"))])
        suppressed.append(limiter.total_suppressed)
    assert written[0] == written[1]
    assert suppressed[0] == suppressed[1] > 0
    assert b'"result":"suppressed"' in b"".join(written[0])
