"""The compact stores kept for the whole run (issue 15, memory): the inventory's source map and
the phones' timelines answer exactly what the plain structures they replaced answered."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from labkit.events import Event
from labkit.inventory import yaml_events
from labkit.inventory.positions import Positions
from labkit.inventory.source import InventoryError, _build, _compose, load_source, render_template
from labkit.services import ops
from labkit.services.ops import LabOps, Timeline
from labkit.services.status import LabStatus

PARTS = st.one_of(st.sampled_from(["phones", "mac", "options", "dhcp", "#", ""]),
                  st.integers(min_value=-3, max_value=40), st.sampled_from([None, 1.5, "1"]))
PATHS = st.lists(PARTS, max_size=4).map(tuple)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(PATHS, st.integers(1, 2**31), st.integers(1, 2**31)), max_size=60), st.lists(PATHS))
def test_positions_answer_as_a_dict_of_paths(writes: list[tuple[Any, int, int]], probes: list[Any]) -> None:
    compact, plain = Positions(), {}
    for path, key_line, value_line in writes:
        lines = (key_line, value_line)
        if key_line % 3 == 0:
            assert compact.setdefault(path, lines) == plain.setdefault(path, lines)
        else:
            compact[path] = plain[path] = (key_line, value_line)
    assert len(compact) == len(plain)
    for path in [*plain, *probes]:
        assert (path in compact) == (path in plain)
        if path in plain:
            assert compact[path] == plain[path]


def test_the_source_map_of_a_phone_list_names_each_line() -> None:
    text = "phones:\n" + "".join(f"  - mac: '02:00:00:00:00:{n:02x}'\n    model: CP-8851-3PCC\n"
                                  for n in range(50))
    source = load_source(text, "lab.yaml")
    assert source.positions[("phones", 49, "model")] == (101, 101)
    assert str(source.locate(("phones", 7, "mac"))) == "lab.yaml:16"
    assert str(source.locate(("phones", 7, "params", "x"), key=True)) == "lab.yaml:16"  # the nearest parent
    assert ("phones", 50) not in source.positions


def _event(n: int, **change: Any) -> Event:
    fields = {"time": 1000.0 + n, "service": "syslog", "client": f"10.0.0.5:{n}",
              "phone": "02:00:00:00:00:01", "action": "log", "request": f"line {n} \x1f\n\u00e9",
              "answer": "", "result": "ok", "detail": {}}
    return Event(**{**fields, **change})


def test_a_timeline_gives_back_its_rows_newest_last_and_trims_to_its_bound() -> None:
    lab = LabOps(LabStatus.of_phones([("02:00:00:00:00:01", "desk", "CP-8851-3PCC", None)]))
    lab(_event(0, action="fault", detail={"rule": ["odd", 1]}))
    for n in range(1, 2 * ops.TIMELINE_EVENTS + 5):
        lab(_event(n))
    shown = lab.phone("02:00:00:00:00:01")
    assert shown is not None
    events = shown["events"]
    assert len(events) == ops.TIMELINE_EVENTS
    assert events[-1] == ops.event_row(_event(2 * ops.TIMELINE_EVENTS + 4))
    assert lab.timelines["02:00:00:00:00:01"].rows < 2 * ops.TIMELINE_EVENTS


def test_a_rule_label_marshal_cannot_write_is_kept_as_text() -> None:
    timeline = Timeline()
    timeline.append((1.0, "dhcp", "fault", "DISCOVER", "", "dropped", None, object))
    assert timeline.decoded()[0][-1] == str(object)


def test_all_timelines_together_stay_under_the_global_bound(monkeypatch: Any) -> None:
    monkeypatch.setattr(ops, "TIMELINE_BYTES", 20_000)
    macs = [f"02:00:00:00:01:{n:02x}" for n in range(40)]
    lab = LabOps(LabStatus.of_phones((mac, "", "CP-8851-3PCC", None) for mac in macs))
    for n in range(2000):
        lab(_event(n, phone=macs[n % 40]))
        assert lab.timeline_bytes <= 20_000
    assert lab.timeline_bytes == sum(len(t.data) for t in lab.timelines.values())
    shown = lab.phone(macs[-1])
    assert shown is not None and shown["events"][-1]["time"] == 1000.0 + 1999  # the newest kept


def _node_way(text: str) -> tuple[Any, Positions]:
    source = render_template(text, "lab.yaml")
    node = _compose(source.rendered)
    data = {} if node is None else _build(node, (), source, yaml.SafeLoader(""), [])
    return data, source.positions


def _paths(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        out += _paths(value, (*path, key))
    return out


CLEAN = [
    "",
    "a: 1\n",
    "lab:\n  name: x\n  pool: {start: 10.0.0.1, end: 10.0.0.9}\nphones:\n  - {mac: '02:00', model: m}\n"
    "  -\n    mac: 02:01\n    lines: [{extension: 1}, {}]\n  - []\n",
    "opts: {66: tftp, 150: [1.5, true, null, ~, 0x1f, 2001-01-01, '010']}\nlist:\n- - - deep\n",
    "text: |\n  one\n  two\nfolded: >\n  x\n  y\nempty:\nbin: !!binary aGk=\n",
    "--- \n- 1\n- two\n...\n",
    "k: !!str 12\nj: !!int '7'\n",
]
NEEDS_NODES = ["a: &x {b: 1}\nc: *x\n", "a: 1\na: 2\n", "<<: {a: 1}\n", "? [a]\n: 1\n", "--- 1\n--- 2\n",
               "a: !!int nope\n", "a: !custom 1\n"]


@pytest.mark.parametrize("text", CLEAN)
def test_the_event_path_reads_what_the_node_path_reads(text: str) -> None:
    positions = Positions()
    found, data = yaml_events.read(text, positions, yaml.SafeLoader(""))
    want, want_positions = _node_way(text)
    assert (data if found else {}) == want
    assert len(positions) == len(want_positions)
    for path in _paths(want):
        assert positions.setdefault(path, (1, 1)) == want_positions.setdefault(path, (1, 1))


@pytest.mark.parametrize("text", NEEDS_NODES)
def test_what_the_node_path_must_word_falls_back_to_it(text: str) -> None:
    with pytest.raises((yaml_events.Fallback, yaml.YAMLError)):
        yaml_events.read(text, Positions(), yaml.SafeLoader(""))


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8)),
                    lambda inner: st.one_of(st.lists(inner, max_size=4),
                                            st.dictionaries(st.text(max_size=5), inner, max_size=4)),
                    max_leaves=20), st.booleans())
def test_any_dumped_document_reads_the_same_both_ways(value: Any, flow: bool) -> None:
    text = yaml.safe_dump({"top": value}, default_flow_style=flow)
    # The node path renders the text as a template first: Jinja's own delimiters are not YAML.
    assume(not any(delimiter in text for delimiter in ("{{", "{%", "{#")))
    positions = Positions()
    _, data = yaml_events.read(text, positions, yaml.SafeLoader(""))
    want, want_positions = _node_way(text)
    assert data == want
    for path in _paths(want):
        assert positions.setdefault(path, (1, 1)) == want_positions.setdefault(path, (1, 1))


def test_a_tagged_value_that_cannot_be_read_names_its_line() -> None:
    with pytest.raises(InventoryError) as raised:
        load_source("lab: {name: x}\nport: !!int nope\n", "lab.yaml")
    assert raised.value.problems[0].render().startswith("lab.yaml:2: error: port: cannot read value: ")
