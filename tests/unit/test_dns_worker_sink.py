"""DNS in a worker process (`labkit up --workers N`): the service's events go to the worker's
Batcher, whose frames the main process turns back into Events (labkit.services.workers). The
compiled drain then hands the Batcher template indexes instead of Events (dns_udp._index_batch);
this holds it to the reference: the same answers byte for byte and, once through the main
process, the same events in the same order as the service logs into a plain sink, for the table
of queries of test_dns_fast_path (hits and misses, runts, responses, FORMERR, IPv4), with the
Batcher flushing inside a drain, and after a reload (the kept template indexes start again).
Each runs in three forms: the Drain's own thread reading the socket (labkit.services.dns_pump,
the default in a worker), the compiled drain on the event loop (LABKIT_DNS_THREAD=0), and the
pure drain (LABKIT_NATIVE=0).
"""

from __future__ import annotations

import asyncio
import os
import pickle
import socket
from pathlib import Path
from typing import Any

import pytest

from labkit.events import Event, EventRecorder, StaticDirectory
from labkit.native import load
from labkit.plan.zones import DnsPlan
from labkit.services import worker_main
from labkit.services.context import Endpoint, StartContext
from labkit.services.dns import start_dns
from labkit.services.filetree import FileTree
from labkit.services.worker_main import Batcher
from labkit.services.workers import WorkerPool
from tests.helpers import answers_until_quiet
from tests.unit.test_dns_fast_path import HOST, PHONE, PROV_A, TABLE, reference, with_id, zones

pytestmark = pytest.mark.skipif(load("_udp") is None, reason="labkit.native._udp is not built here")


FORMS = ("thread", "loop", "pure")


@pytest.fixture(autouse=True, params=FORMS)
def form(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which reader the worker's service gets (chosen when it binds)."""
    monkeypatch.setenv("LABKIT_DNS_THREAD", "1" if request.param == "thread" else "0")
    monkeypatch.setenv("LABKIT_NATIVE", "0" if request.param == "pure" else "1")
    return str(request.param)


class MainSide:
    """The main process's side: every frame the Batcher writes, delivered into a recorder."""

    def __init__(self) -> None:
        self.events = EventRecorder()
        ctx = StartContext(FileTree({}), self.events, StaticDirectory(), frozenset(), Path("/nonexistent"))
        self.pool = WorkerPool(2, ctx, started=0.0)
        self.frames = 0

    def write(self, data: bytes) -> None:
        kind, *columns = pickle.loads(data[4:])
        assert kind == "columns"
        self.pool.deliver_columns(*columns)
        self.frames += 1


async def _burst(queries: list[bytes], sink: Any, *,
                 reload_after: bool = False) -> tuple[dict[bytes, bytes], Any]:
    """The queries at once to a service logging into `sink`; the answers by ID (0.5 s quiet ends)."""
    ctx = StartContext(FileTree({}), sink, StaticDirectory({HOST: PHONE}), frozenset(),
                       Path("/nonexistent-state-dir"))
    plan = DnsPlan(tuple(zones()))
    service = await start_dns(plan, Endpoint("dns", HOST, 0, "udp+tcp"), ctx)
    form = "pure" if not service.native_udp else "thread" if service.pump is not None else "loop"
    native = os.environ.get("LABKIT_NATIVE", "1") != "0"
    thread = os.environ.get("LABKIT_DNS_THREAD", "1") != "0"
    assert form == ("pure" if not native else "thread" if thread and isinstance(sink, Batcher) else "loop")
    answers: dict[bytes, bytes] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        client.setblocking(False)
        for round_ in (1, 2) if reload_after else (1,):
            for query in queries:
                client.sendto(query, (HOST, service.port))
            for answer in await answers_until_quiet(client):
                answers[answer[:2] + bytes([round_])] = answer
            if reload_after and round_ == 1:
                service.reload(plan, ctx)
    await service.close()
    if isinstance(sink, Batcher):
        sink.flush()
    return answers, service


def _fields(events: list[Event]) -> list[tuple[object, ...]]:
    """Every field but the time and the client's port (two runs, two client sockets)."""
    return [(e.service, e.client.rsplit(":", 1)[0] if e.client else e.client, e.phone, e.action, e.request,
             e.answer, e.result, e.detail) for e in events]


def _compare(queries: list[bytes], *, reload_after: bool = False) -> MainSide:
    main = MainSide()
    worker_answers, worker = asyncio.run(_burst(queries, Batcher(main.write), reload_after=reload_after))
    plain = EventRecorder()
    plain_answers, alone = asyncio.run(_burst(queries, plain, reload_after=reload_after))
    assert worker_answers == plain_answers
    assert worker.counters == alone.counters
    for key, answer in worker_answers.items():
        query = next(q for q in queries if q[:2] == key[:2])
        assert answer == reference(query)[0]
    assert _fields(main.events.events) == _fields(plain.events)
    assert len(main.events.events) == len(queries) * (2 if reload_after else 1)
    assert main.pool.delivered == len(main.events.events)
    return main


def test_the_worker_form_logs_what_the_service_logs() -> None:
    """Three rounds of the table in one burst (hits and misses in each batch, the same question
    twice in a batch): the same answers, the same events in the same order."""
    queries = [with_id(query, n) for n, query in enumerate(list(TABLE.values()) * 3, 1)]
    main = _compare(queries)
    said = [(e.request, e.answer, e.result) for e in main.events.events]
    assert said == [reference(query)[1] for query in queries]
    # equal events of one batch may be one object (as the one-process drain shares them within a
    # wake-up), but two different objects never share an (empty) detail
    details = {id(e): id(e.detail) for e in main.events.events if not e.detail}
    assert len(set(details.values())) == len(details)
    assert len(details) < len(main.events.events)  # (this burst repeats questions within a batch)


def test_a_flush_inside_a_drain_starts_the_template_indexes_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Batcher flushes at 7 events, at the end of a drain's batch (of up to 64 datagrams): the
    next batch of the same drain takes new indexes, and the events are still the same, in order."""
    monkeypatch.setattr(worker_main, "BATCH_EVENTS", 7)
    queries = [with_id(query, n) for n, query in enumerate(list(TABLE.values()) * 4, 1)]
    main = _compare(queries)
    assert main.frames >= 2  # 100 events, at most 64 + 6 per frame


def test_a_reload_starts_the_template_indexes_again() -> None:
    """A reload brings a new reply table: the same query after it is logged from the new table
    (here the same zones, so the same events), never from indexes kept for the old one."""
    queries = [with_id(PROV_A, n) for n in range(1, 6)] + [with_id(TABLE["NXDOMAIN"], 6)]
    _compare(queries, reload_after=True)


def test_the_batcher_takes_indexes_and_events_in_one_order() -> None:
    """`at(when, indexes)` and `sink(event)` mixed: one frame, the events in call order."""
    main = MainSide()

    async def run() -> list[Event]:
        batcher = Batcher(main.write)
        a = Event(1.0, "dns", "10.0.0.1:5", None, "query", "A x", "NXDOMAIN", "nxdomain", {})
        b = Event(2.0, "tftp", "10.0.0.2:6", "aa", "rrq", "f", "done", "ok", {"bytes": 3})
        first = batcher.template_of(a)
        batcher.at(1.5, [first, first])
        batcher(b)
        batcher.at(2.5, [])
        batcher.at(3.0, [first])
        batcher.flush()
        return [Event(1.5, *_rest(a)), Event(1.5, *_rest(a)), b, Event(3.0, *_rest(a))]

    expected = asyncio.run(run())
    assert main.events.events == expected and main.frames == 1


def _rest(event: Event) -> tuple[Any, ...]:
    return (event.service, event.client, event.phone, event.action, event.request, event.answer, event.result,
            {})
