"""labkit.native._udp.resolve: a worker's known DNS hits logged in C (labkit.services.dns_udp.
_index_batch). Held to a Python statement of its contract for arbitrary batches (hypothesis),
and, through the running service on loopback, the worker form with it and without it (the
reference loop alone) logs the same events in the same order and counts the same answers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labkit.native import load
from labkit.services import dns_udp
from labkit.services.worker_main import Batcher
from tests.unit.test_dns_fast_path import TABLE, with_id
from tests.unit.test_dns_worker_sink import MainSide, _burst

udp = load("_udp")
pytestmark = pytest.mark.skipif(udp is None, reason="labkit.native._udp is not built here")

ADDRESSES = [("127.0.0.1", 1000 + k) for k in range(3)]
KEYS = [b"a", b"b", b"c"]


def reference(addresses: list[Any], values: list[Any], start: int, peers: dict[Any, Any], tally: list[Any],
              indexes: list[Any]) -> int:
    """What resolve does, in Python: log hits while the peer and key have an index, stop at the
    first datagram the service's own loop must take."""
    position = max(start, 0)
    while position < len(values):
        value, known = values[position], peers.get(addresses[position])
        if type(value) is not tuple or len(value) != 4 or type(value[3]) is not bytes:
            break
        if type(known) is not tuple or len(known) != 3 or type(known[2]) is not dict:
            break
        index, rcode = known[2].get(value[3]), value[2]
        if index is None or type(rcode) is not int or not 0 <= rcode < len(tally):
            break
        if type(tally[rcode]) is not int or tally[rcode] < 0:
            break
        indexes.append(index)
        tally[rcode] += 1
        position += 1
    return position


value_st = st.one_of(st.binary(max_size=3),  # a miss
                     st.tuples(st.just(b"tail"), st.just(()), st.sampled_from([0, 3, 5, -1, 99, "x"]),
                               st.sampled_from([*KEYS, "a"])))
peers_st = st.dictionaries(st.sampled_from(ADDRESSES),
                           st.one_of(st.tuples(st.just("c"), st.none(),
                                               st.dictionaries(st.sampled_from(KEYS),
                                                               st.one_of(st.integers(0, 9), st.none()))),
                                     st.just(None)))


@given(batch=st.lists(st.tuples(st.sampled_from(ADDRESSES), value_st), max_size=12), peers=peers_st,
       start=st.integers(-2, 14), tally=st.lists(st.one_of(st.integers(0, 5), st.just("n")), max_size=6))
def test_resolve_logs_what_its_contract_says(batch: list[tuple[Any, Any]], peers: dict[Any, Any], start: int,
                                             tally: list[Any]) -> None:
    addresses, values = [a for a, _ in batch], [v for _, v in batch]
    expected_tally, expected_indexes = list(tally), ["before"]
    expected = reference(addresses, values, start, peers, expected_tally, expected_indexes)
    got_tally, got_indexes = list(tally), ["before"]
    assert udp.resolve(addresses, values, start, peers, got_tally, got_indexes) == expected  # type: ignore[union-attr]
    assert (got_tally, got_indexes) == (expected_tally, expected_indexes)


def test_resolve_refuses_columns_of_unequal_length() -> None:
    with pytest.raises(ValueError):
        udp.resolve([ADDRESSES[0]], [], 0, {}, [0], [])  # type: ignore[union-attr]


def test_the_worker_form_logs_the_same_with_and_without_resolve(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_DNS_THREAD", "0")  # (the loop's drain: resolve is its step)
    """Four rounds of the table in one burst (most hits known after the first round): the same
    answers, the same events from the main process and the same answer counters, with resolve
    and with the reference loop alone."""
    queries = [with_id(query, n) for n, query in enumerate(list(TABLE.values()) * 4, 1)]
    runs = []
    for compiled in (True, False):
        if not compiled:
            monkeypatch.setattr(dns_udp, "_RESOLVE", None)
        main = MainSide()
        answers, service = asyncio.run(_burst(queries, Batcher(main.write)))
        runs.append((answers, [(e.client.rsplit(":", 1)[0] if e.client else e.client, e.phone, e.request,
                                e.answer, e.result, e.detail) for e in main.events.events],
                     service.resolver.counters))
    assert runs[0] == runs[1]
    assert len(runs[0][1]) == len(queries)
