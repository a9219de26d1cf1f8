"""The worker's DNS socket read by the Drain's own thread (labkit/native/udp_pump.h, labkit.services.
dns_pump): its life cycle (started at bind, stopped at close and while a fault rule concerns DNS,
no descriptor or thread left behind) and ugly datagrams through it. test_dns_worker_sink holds its
answers, events and counters to the other forms for the table of queries.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
from pathlib import Path

import pytest

from labkit.events import Event, EventRecorder, StaticDirectory
from labkit.faults.engine import FaultEngine, Match, Rule, When
from labkit.faults.hooks import Faults
from labkit.native import load
from labkit.plan.zones import DnsPlan
from labkit.protocols.dns import AuthoritativeResolver
from labkit.protocols.dns.faults import DnsFaultAction, apply_dns_fault, negative_probe
from labkit.services.context import Endpoint, StartContext
from labkit.services.dns import DnsService, start_dns
from labkit.services.filetree import FileTree
from labkit.services.worker_main import Batcher
from tests.helpers import answers_until_quiet
from tests.unit.test_dns_fast_path import HOST, PHONE, PROV_A, TABLE, reference, with_id, zones
from tests.unit.test_dns_worker_sink import MainSide

_UDP = load("_udp")
pytestmark = pytest.mark.skipif(_UDP is None or not hasattr(_UDP.Drain, "start"),
                                reason="labkit.native._udp (with its thread) is not built here")

UGLY = [b"", b"\x00", b"\x12\x34", bytes(13), bytes(range(256)) * 3, b"\xff" * 600]


@pytest.fixture(autouse=True)
def thread_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_DNS_THREAD", "1")
    monkeypatch.setenv("LABKIT_NATIVE", "1")


def _held() -> tuple[int, int]:
    """This process's open descriptors and threads (the C thread is a task `threading` does not see)."""
    return len(os.listdir("/proc/self/fd")), len(os.listdir("/proc/self/task"))


def _ctx(sink: object, faults: Faults | None = None) -> StartContext:
    return StartContext(FileTree({}), sink, StaticDirectory({HOST: PHONE}), frozenset(),  # type: ignore[arg-type]
                        Path("/nonexistent-state-dir"), faults or Faults())


def _faults() -> Faults:
    rule = Rule("every 2nd prov", "dns", DnsFaultAction(rcode="NXDOMAIN"), Match(name="prov.lab.example"),
                When(every=2))
    return Faults.build(FaultEngine([rule], random.Random(1)), lambda event: None, {}, started=0.0)


async def _ask(service: DnsService, queries: list[bytes]) -> dict[bytes, bytes]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        client.setblocking(False)
        for query in queries:
            client.sendto(query, (HOST, service.port))
        return {answer[:2]: answer for answer in await answers_until_quiet(client)}


def test_ugly_datagrams_through_the_thread_are_answered_as_by_the_reference() -> None:
    """Runts, responses, oversized and empty datagrams among real queries: each query answered as
    the resolver answers it, the rest dropped and counted as the resolver counts them; one event
    per query as a plain sink logs them, and nothing left open afterwards."""
    # (IDs from 0x1001: no ugly datagram has one of them)
    queries = [with_id(query, n) for n, query in enumerate(list(TABLE.values()) * 2, 0x1001)]
    mixed = [datagram for pair in zip(queries, UGLY * 10, strict=False) for datagram in pair]
    mixed += queries[len(UGLY) * 10:]
    before = _held()

    async def run(sink: object) -> tuple[dict[bytes, bytes], dict[str, object], bool]:
        service = await start_dns(DnsPlan(tuple(zones())), Endpoint("dns", HOST, 0, "udp+tcp"), _ctx(sink))
        threaded = service.pump is not None
        answers = await _ask(service, mixed)
        await service.close()
        if isinstance(sink, Batcher):
            sink.flush()
        return answers, service.counters, threaded

    main = MainSide()
    answers, counters, threaded = asyncio.run(run(Batcher(main.write)))
    plain = EventRecorder()
    plain_answers, plain_counters, plain_threaded = asyncio.run(run(plain))
    assert threaded and not plain_threaded
    assert answers == plain_answers and counters == plain_counters
    for query in queries:
        expected = reference(query)[0]
        assert answers.get(query[:2]) == expected if expected is not None else query[:2] not in answers

    def said(events: list[Event]) -> list[tuple[object, ...]]:
        return [(e.client.rsplit(":", 1)[0], e.phone, e.request, e.answer, e.result, e.detail)
                for e in events]

    assert said(main.events.events) == said(plain.events)
    assert _held() == before


def test_a_dns_fault_rule_keeps_the_socket_with_the_loop_and_a_reload_moves_it() -> None:
    """With a rule concerning DNS the worker's service takes the reference path (no thread, every
    query through the fault hooks); a reload without the rule starts the thread, a reload with it
    stops it and the loop reads the (again non-blocking) socket: answers right at every step, and
    no descriptor or thread left once closed."""
    before = _held()
    queries = [with_id(PROV_A, n) for n in range(1, 5)]
    resolver = AuthoritativeResolver(zones())

    def faulted(query: bytes, n: int) -> bytes:
        plain = resolver.answer(query).send[0].data
        if n % 2:
            return plain
        probe = negative_probe(query)
        assert probe is not None
        negative = resolver.answer(probe).send[0].data
        return apply_dns_fault(query, plain, DnsFaultAction(rcode="NXDOMAIN"), negative)

    async def run() -> list[tuple[bool, dict[bytes, bytes]]]:
        main = MainSide()
        batcher = Batcher(main.write)
        plan = DnsPlan(tuple(zones()))
        service = await start_dns(plan, Endpoint("dns", HOST, 0, "udp+tcp"), _ctx(batcher, _faults()))
        steps = [(service.pump is not None, await _ask(service, queries))]
        service.reload(plan, _ctx(batcher))
        steps.append((service.pump is not None, await _ask(service, queries)))
        service.reload(plan, _ctx(batcher, _faults()))
        steps.append((service.pump is not None, await _ask(service, queries)))
        assert service._udp is not None and not service._udp.getblocking()
        await service.close()
        batcher.flush()
        assert len(main.events.events) == 3 * len(queries)
        return steps

    steps = asyncio.run(run())
    assert [threaded for threaded, _ in steps] == [False, True, False]
    for n, query in enumerate(queries, 1):
        assert steps[0][1][query[:2]] == faulted(query, n)
        assert steps[1][1][query[:2]] == reference(query)[0]
        assert steps[2][1][query[:2]] == faulted(query, n)
    assert _held() == before


def test_closing_during_a_burst_ends_the_thread() -> None:
    """The service closes while datagrams are still arriving: the thread ends (woken by the
    shutdown), whatever it received is logged, and nothing stays open."""
    before = _held()
    queries = [with_id(query, n) for n, query in enumerate(list(TABLE.values()) * 20, 1)]

    async def run() -> int:
        main = MainSide()
        batcher = Batcher(main.write)
        service = await start_dns(DnsPlan(tuple(zones())), Endpoint("dns", HOST, 0, "udp+tcp"), _ctx(batcher))
        assert service.pump is not None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.setblocking(False)
            for query in queries:
                try:
                    client.sendto(query, (HOST, service.port))
                except BlockingIOError:
                    break
            await service.close()
        batcher.flush()
        assert service.pump is None
        counted = service.counters["queries"]
        assert isinstance(counted, int)
        assert len(main.events.events) == counted  # (one event per datagram, dropped ones too)
        return counted

    assert asyncio.run(run()) <= len(queries)
    assert _held() == before


class _LoggingWhilePythonRuns:
    """A stand-in Drain whose thread logs a new (peer, question) while the loop makes the template
    indexes of the last ones: collect names missing ids twice before it hands over the buffer."""

    def __init__(self, pairs: list[tuple[object, tuple[object, ...]]]) -> None:
        self._pairs, self.calls = pairs, 0
        self.ids = [0, 1, 0]

    def pairs(self) -> list[tuple[object, tuple[object, ...]]]:
        return self._pairs

    def collect(self, mapping: list[int | None], rearm: bool, table: object = None) -> object:
        self.calls += 1
        if self.calls == 2:
            self.ids.append(2)  # (logged by the thread between the two calls)
        missing = [i for i in self.ids if i >= len(mapping) or mapping[i] is None]
        if missing:
            return missing
        return [1.5], [len(self.ids)], [mapping[i] for i in self.ids], [0, len(self.ids)], 0, 0


def test_collect_names_the_missing_ids_until_none_is_missing() -> None:
    """The loop side's collect asks again while the thread logged new ids in between, and hands the
    Batcher one template per peer and question, as `_index_batch` makes them."""
    from labkit.protocols.dns.replies import UdpReplies
    from labkit.services.dns_pump import UdpPump

    main = MainSide()

    async def run() -> None:
        batcher = Batcher(main.write)
        resolver = AuthoritativeResolver(zones())
        replies = UdpReplies(resolver)
        for n in (1, 2):
            replies.learn(with_id(PROV_A, n))
            replies.learn(with_id(TABLE["NXDOMAIN"], n))
        kept = list(replies.table.values())
        peers = [((HOST, 5001), kept[0]), ((HOST, 5002), kept[0]), ((HOST, 5001), kept[1])]
        pump = object.__new__(UdpPump)
        drain = _LoggingWhilePythonRuns(peers)  # type: ignore[arg-type]
        service = type("Service", (), {"replies": replies, "_phone_at": staticmethod(lambda ip: PHONE),
                                       "udp_send_errors": 0, "udp_receive_errors": 0})()
        pump.service, pump.drain, pump.sink, pump.mapping, pump.generation = service, drain, batcher, [], 0
        pump.collect()
        assert drain.calls == 3 and pump.mapping == [0, 1, 2]
        assert resolver.tally[1] == 4  # (the stand-in counted 4 hits of rcode 1)
        batcher.flush()

    asyncio.run(run())
    said = [(e.client, e.phone, e.request) for e in main.events.events]
    prov = "A prov.lab.example"
    one, two = f"{HOST}:5001", f"{HOST}:5002"
    assert said == [(one, PHONE, prov), (two, PHONE, prov), (one, PHONE, prov), (one, PHONE, said[3][2])]
    assert said[3][2] != said[0][2]


def test_the_thread_refuses_a_non_blocking_socket() -> None:
    """It would spin on EAGAIN instead of sleeping in recvmmsg: refused, nothing started."""
    assert _UDP is not None
    before = _held()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        sock.setblocking(False)
        drain = _UDP.Drain(sock.fileno(), 8, 512)
        with pytest.raises(ValueError):
            drain.start({}, 16, 8)
        with pytest.raises(RuntimeError):
            drain.resume()  # (no thread runs)
        del drain
    assert _held() == before


def test_a_full_id_table_is_forgotten_and_the_log_stays_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """The thread keeps 3 (peer, question) ids here: each fourth new one is handed to the loop, which
    forgets them all and goes on. Three rounds of the table: the same answers, events and counters
    as a plain sink."""
    from labkit.services import dns_pump
    from tests.unit.test_dns_worker_sink import _compare

    monkeypatch.setattr(dns_pump, "PAIRS_MAX", 3)
    _compare([with_id(query, n) for n, query in enumerate(list(TABLE.values()) * 3, 1)])
