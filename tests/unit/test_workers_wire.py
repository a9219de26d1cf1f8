"""What travels between the main process and its workers (labkit.services.workers): frames of
pickles, and Events as tuples that come back as equal Events; no processes here."""

from __future__ import annotations

import asyncio
import pickle
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labkit.events import Event, EventRecorder, StaticDirectory
from labkit.native import load
from labkit.services.context import StartContext
from labkit.services.filetree import FileTree
from labkit.services.worker_main import Batcher
from labkit.services.workers import EVENT_OF, WorkerPool, frame, read_frame, row_of
from labkit.services.workers_wire import _deliver_factory

texts = st.text(max_size=40)
events = st.builds(Event, st.floats(0, 2e9), texts, st.none() | texts, st.none() | texts, texts, texts, texts,
                   texts, st.dictionaries(texts, st.integers() | texts, max_size=3))


@given(event=events)
def test_an_event_comes_back_equal(event: Event) -> None:
    assert EVENT_OF(row_of(event), event.phone) == event


def test_frames_come_back_in_order_and_end_cleanly() -> None:
    async def main() -> list[object]:
        reader = asyncio.StreamReader()
        messages = [("events", [row_of(Event(1.0, "dns", "1.2.3.4:5", None, "query", "A x", "NXDOMAIN",
                                                 "nxdomain", {}))]), ("started", "dns", 53), ("stop",)]
        for message in messages:
            reader.feed_data(frame(message))
        reader.feed_data(frame("cut")[:-1])  # a worker that died mid-frame
        reader.feed_eof()
        out = []
        while (message := await read_frame(reader)) is not None:
            out.append(message)
        return out

    out = asyncio.run(main())
    assert out == [("events", [(1.0, "dns", "1.2.3.4:5", None, "query", "A x", "NXDOMAIN", "nxdomain", {})]),
                   ("started", "dns", 53), ("stop",)]


def test_the_main_process_names_the_phone_a_worker_did_not_know() -> None:
    recorder = EventRecorder()
    directory = StaticDirectory({"10.0.0.9": "00:11:22:33:44:55"})
    ctx = StartContext(FileTree({}), recorder, directory, frozenset(), Path("/nonexistent"))
    pool = WorkerPool(2, ctx, started=0.0)
    known = Event(2.0, "dns", "10.0.0.9:1024", None, "query", "A x", "NOERROR 1 A", "ok", {})
    stranger = Event(3.0, "tftp", "10.0.0.8:1024", None, "rrq", "f", "done", "ok", {"bytes": 1})
    named = Event(4.0, "dns", "10.0.0.8:1", "aa:bb:cc:dd:ee:ff", "query", "A y", "NXDOMAIN", "nxdomain", {})
    pool.deliver([row_of(known), row_of(stranger), row_of(named)])
    assert recorder.events == [Event(2.0, "dns", "10.0.0.9:1024", "00:11:22:33:44:55", "query", "A x",
                                     "NOERROR 1 A", "ok", {}), stranger, named]
    assert pool.delivered == 3


def test_the_batcher_sends_at_its_size_and_on_flush() -> None:
    sent: list[bytes] = []

    async def main() -> None:
        batcher = Batcher(sent.append)
        event = Event(1.0, "dns", None, None, "query", "A x", "REFUSED", "refused", {})
        for _ in range(3):
            batcher(event)
        assert sent == []  # waiting for more, or for its timer
        batcher.flush()
        assert len(sent) == 1
        batcher.flush()
        assert len(sent) == 1  # nothing pending: nothing sent

    asyncio.run(main())
    template = ("dns", None, None, "query", "A x", "REFUSED", "refused", {})
    assert pickle.loads(sent[0][4:]) == ("columns", [template], [1.0], [3], [0] * 3)  # the time as a run


@given(batch=st.lists(st.tuples(st.sampled_from([1.0, 2.5]), events), max_size=12), repeat=st.integers(0, 3))
def test_events_come_back_equal_and_in_order_through_the_columns(batch: list[tuple[float, Event]],
                                                                 repeat: int) -> None:
    """Worker side (Batcher) to main side (deliver_columns): the same events in the same order,
    an Event sent twice and events differing only in time included; each with its own detail."""
    sent: list[bytes] = []
    originals = [replace(event, time=when) for when, event in batch]
    originals += originals[:repeat]  # the same Event objects again (the DNS drains share them)

    async def main() -> None:
        batcher = Batcher(sent.append)
        for event in originals:
            batcher(event)
        batcher.flush()

    asyncio.run(main())
    recorder = EventRecorder()
    ctx = StartContext(FileTree({}), recorder, StaticDirectory(), frozenset(), Path("/nonexistent"))
    pool = WorkerPool(2, ctx, started=0.0)
    for data in sent:
        kind, *columns = pickle.loads(data[4:])
        assert kind == "columns"
        pool.deliver_columns(*columns)
    assert recorder.events == originals and pool.delivered == len(originals)
    # equal events in a row at one time come back as one object (one template, one run), as the
    # one-process DNS drain logs them; any other two events never share an empty detail dict
    shared = {id(event): id(event.detail) for event in recorder.events if not event.detail}
    assert len(set(shared.values())) == len(shared)


def test_read_only_mappings_travel_as_such() -> None:
    """Plans hold MappingProxyType (HTTP redirects, phones), which pickle alone refuses."""
    from types import MappingProxyType

    from labkit.plan.http import HttpPlan, HttpRedirectPlan

    plan = HttpPlan("http", redirects=MappingProxyType({"/old": HttpRedirectPlan("/new", 301)}))
    back = pickle.loads(frame(("start", "http", plan))[4:])[2]
    assert back == plan and isinstance(back.redirects, MappingProxyType)


def test_an_http_event_named_by_the_main_process_says_by_address() -> None:
    """A worker named no phone (not its User-Agent, no fixed address); the main process names it
    by its leased address, as the main process's own HTTP service would have said."""
    recorder = EventRecorder()
    directory = StaticDirectory({"10.0.0.9": "00:11:22:33:44:55"})
    ctx = StartContext(FileTree({}), recorder, directory, frozenset(), Path("/nonexistent"))
    pool = WorkerPool(2, ctx, started=0.0)
    leased = Event(2.0, "http", "10.0.0.9:40000", None, "get", "/a.cfg", "200 3 bytes", "ok",
                   {"identified_by": "unknown"})
    stranger = Event(3.0, "http", "10.0.0.8:40000", None, "get", "/a.cfg", "200 3 bytes", "ok",
                     {"identified_by": "unknown"})
    pool.deliver([row_of(leased), row_of(stranger)])
    assert recorder.events[0].phone == "00:11:22:33:44:55"
    assert recorder.events[0].detail == {"identified_by": "address"}
    assert recorder.events[1] == stranger


def test_an_http_event_in_columns_named_by_the_main_process_says_by_address() -> None:
    """The same naming when the worker's batch travels as columns (the Batcher's format)."""
    sent: list[bytes] = []
    leased = Event(2.0, "http", "10.0.0.9:40000", None, "get", "/a.cfg", "200 3 bytes", "ok",
                   {"identified_by": "unknown"})
    stranger = Event(3.0, "http", "10.0.0.8:40000", None, "get", "/a.cfg", "200 3 bytes", "ok",
                     {"identified_by": "unknown"})

    async def main() -> None:
        batcher = Batcher(sent.append)
        batcher(leased)
        batcher(stranger)
        batcher.flush()

    asyncio.run(main())
    recorder = EventRecorder()
    directory = StaticDirectory({"10.0.0.9": "00:11:22:33:44:55"})
    ctx = StartContext(FileTree({}), recorder, directory, frozenset(), Path("/nonexistent"))
    pool = WorkerPool(2, ctx, started=0.0)
    kind, *columns = pickle.loads(sent[0][4:])
    assert kind == "columns"
    pool.deliver_columns(*columns)
    assert recorder.events[0].phone == "00:11:22:33:44:55"
    assert recorder.events[0].detail == {"identified_by": "address"}
    assert recorder.events[1] == stranger


# ---------------------------------------------------------------------------------------------
# the main process's loop: labkit.native._udp.deliver against the Python reference


def _delivered(deliver: Any, columns: tuple[Any, ...]) -> tuple[list[Event], int | str]:
    recorder = EventRecorder()
    try:
        count: int | str = deliver(recorder, *columns)
    except (IndexError, ValueError, TypeError) as exc:
        count = type(exc).__name__
    return recorder.events, count


bases_st = st.lists(st.builds(lambda e: {**e.__dict__, "time": 0.0}, events), min_size=1, max_size=4)


@given(bases=bases_st, runs=st.lists(st.tuples(st.floats(0, 2e9), st.lists(st.integers(-5, 5), max_size=5)),
                                     max_size=4), short=st.sampled_from(["", "times", "counts"]))
def test_the_compiled_delivery_makes_the_reference_events(bases: list[dict[str, Any]],
                                                          runs: list[tuple[float, list[int]]],
                                                          short: str) -> None:
    """The same Events (every field, in order), one object per run and template (each with its
    own dict and its own empty detail), the same count, and the same error for an index out of
    range or columns of unequal length (after the events both could deliver), as the Python loop."""
    if load("_udp") is None:
        pytest.skip("labkit.native._udp is not built here")
    empty = [not base["detail"] for base in bases]
    times, counts = [when for when, _ in runs], [len(which) for _, which in runs]
    if short and runs:
        (times if short == "times" else counts).pop()
    columns = (bases, empty, times, counts, [index for _, which in runs for index in which])
    pure, native = _deliver_factory(native=False), _deliver_factory()
    assert native is not pure
    expected, got = _delivered(pure, columns), _delivered(native, columns)
    assert got == expected
    assert [type(e) for e in got[0]] == [Event] * len(got[0])
    for event, twin in zip(got[0], expected[0], strict=True):
        assert repr(event) == repr(twin) and event.to_json() == twin.to_json()
    keys = [(k, index % len(bases)) for k, (_, which) in enumerate(runs) for index in which]
    for events in (got[0], expected[0]):  # the same object exactly where run and template are
        for a, (event, key) in enumerate(zip(events, keys, strict=False)):  # (events stop at an error)
            assert all((event is other) == (key == keys[b]) for b, other in enumerate(events[:a]))
    fresh = {id(e): id(e.detail) for e in got[0] if not e.detail}
    assert len(set(fresh.values())) == len(fresh)  # no two objects share an empty detail
    assert all(e.__dict__ is not base for e in got[0] for base in bases)  # copies, never the template


def test_the_compiled_delivery_stops_where_the_bus_raises() -> None:
    if load("_udp") is None:
        pytest.skip("labkit.native._udp is not built here")
    base = {**Event(0.0, "dns", None, None, "query", "A x", "REFUSED", "refused", {}).__dict__}
    seen: list[Event] = []

    def bus(event: Event) -> None:
        seen.append(event)
        if len(seen) == 2:
            raise RuntimeError("a broken bus")

    for deliver in (_deliver_factory(native=False), _deliver_factory()):
        seen.clear()
        with pytest.raises(RuntimeError):
            deliver(bus, [base], [True], [1.0, 2.0], [2, 1], [0, 0, 0])
        assert [e.time for e in seen] == [1.0, 1.0]
        with pytest.raises(ValueError):
            deliver(bus, [base], [True], [1.0], [-1], [0])
    with pytest.raises(TypeError):  # only what object.__new__ makes
        load("_udp").deliver(bus, int, [base], [True], [1.0], [1], [0])  # type: ignore[union-attr]
