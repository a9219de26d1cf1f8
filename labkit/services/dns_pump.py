"""A worker's DNS UDP socket read by a C thread (labkit/native/udp_pump.h), not by the event loop.

In a worker process (`labkit up --workers N`, the sink a Batcher) the compiled `Drain` can run
its own thread: it blocks in recvmmsg without the GIL, answers the known hits (the reply table's,
as the drains do) and logs them as event ids in a bounded buffer, and hands everything else (a
miss, anything unusual, a full buffer) to the loop, which logs and answers it with the drains'
reference steps (`dns_udp._index_batch`) before the thread sends the batch. No epoll, no asyncio
per batch: the loop wakes about once per Batcher flush (the eventfd), not per batch.

The events are the drains': one per query, in datagram order, each batch a run stamped with the
clock when it was answered; the loop turns the thread's ids into the Batcher's template indexes
(one per peer and question per generation, made from `pairs()` as `_index_batch` makes them) just
before the Batcher sends a frame, or before another event enters it, so the log keeps its order.
The counters (the resolver's rcode tally, send and receive errors) are added at each collect and
before the counters are read. Never while a fault rule concerns DNS (the service's reference path
then reads the socket), and not without the compiled module (LABKIT_NATIVE=0) or with
LABKIT_DNS_THREAD=0.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, cast

from labkit.events import fact_event
from labkit.services.dns_udp import SERVICE, _index_batch, _index_peers

if TYPE_CHECKING:
    from labkit.services.dns import DnsService

THREAD_VARIABLE = "LABKIT_DNS_THREAD"  # "0": a worker's DNS socket stays with the event loop
PAIRS_MAX = 16384  # (peer, question) ids the thread keeps (udp_pump.h's PUMP_PAIRS); when full, forgotten


def wanted(drain: Any, sink: Any) -> bool:
    """Whether a worker's DNS socket gets the thread: a Batcher sink, a Drain that has one."""
    return (drain is not None and hasattr(drain, "start") and getattr(sink, "template_of", None) is not None
            and os.environ.get(THREAD_VARIABLE, "1").strip() != "0")


class UdpPump:
    """The running thread of `service`'s Drain, and the loop's side of it."""

    def __init__(self, service: DnsService, drain: Any, high: int) -> None:
        self.service, self.drain = service, drain
        self.sink: Any = cast(Any, service._sink)  # a worker's Batcher (labkit.services.worker_main)
        self.mapping: list[int | None] = []  # event id -> the Batcher's template index (this generation)
        self.generation: int = self.sink.generation
        assert service._udp is not None
        self.sock = service._udp
        self.sock.setblocking(True)  # the thread blocks in recvmmsg; nobody else reads it
        batch = os.environ.get(THREAD_VARIABLE, "1").strip() != "plain"
        self.pairs_max = PAIRS_MAX
        self.fd: int = drain.start(service.replies.table, len(service.replies.tally), high, batch, PAIRS_MAX)
        service._loop.add_reader(self.fd, self._woken)
        self.sink.sources.append(self.collect)  # (the Batcher asks before each frame and event)

    def collect(self, rearm: bool = True, forget: bool = False) -> None:
        """The thread's logged events into the Batcher, its counts into the service's counters;
        `forget`: then every id, and the service's (new) reply table is the thread's."""
        service, sink = self.service, self.sink
        if sink.generation != self.generation:
            self.mapping, self.generation = [], sink.generation
        table = service.replies.table if forget else None
        got = self.drain.collect(self.mapping, rearm, table)
        while got.__class__ is list:  # ids without a template index in this generation yet (the
            self._index(got)  # thread may log new ones while Python runs: bounded by PAIRS_MAX)
            got = self.drain.collect(self.mapping, rearm, table)
        if forget:
            self.mapping = []
        times, counts, which, tally, failed, errors = got
        kept = service.replies.tally
        for code, count in enumerate(tally):
            if count:
                kept[code] += count
        service.udp_send_errors += failed
        service.udp_receive_errors += errors
        if which:
            sink.add_runs(times, counts, which)

    def _index(self, ids: list[int]) -> None:
        """Template indexes for these ids, as `_index_batch` makes them for a hit."""
        pairs, mapping, service = self.drain.pairs(), self.mapping, self.service
        template_of, phone_at = self.sink.template_of, service._phone_at
        for id_ in set(ids):
            address, kept = pairs[id_]
            if len(mapping) <= id_:
                mapping.extend([None] * (id_ + 1 - len(mapping)))
            client = f"{address[0]}:{address[1]}"
            event = fact_event(SERVICE, client, phone_at(address[0]), kept[1][0], 0.0, None)
            mapping[id_] = template_of(event)

    def _woken(self) -> None:
        """The eventfd: events to collect (the Batcher's timer then sends them), or a batch handed over."""
        handed = self.drain.take()
        try:
            self.collect(rearm=False)
            if handed is not None:
                self._answer(handed)
        finally:  # whatever failed, the thread is never left waiting
            if handed is not None:
                self.drain.resume()

    def _answer(self, handed: tuple[float, list[Any], list[Any]]) -> None:
        """A handed batch, logged and answered by the reference steps (the thread sends it)."""
        when, addresses, values = handed
        service = self.service
        if len(self.drain.pairs()) >= self.pairs_max:
            self.collect(forget=True)
        _index_batch(service, self.drain, addresses, values, _index_peers(service, self.sink), when)

    def reload(self) -> None:
        """A new reply table (the service reloaded): what was logged goes first, then every id."""
        self.collect(forget=True)

    def stop(self, closing: bool) -> None:
        """End the thread (`closing`: the socket closes next, wake it at once); the socket goes back
        to the event loop, non-blocking, with everything logged and answered."""
        self.service._loop.remove_reader(self.fd)
        if self.collect in self.sink.sources:
            self.sink.sources.remove(self.collect)
        self.drain.stop(closing)
        self._finish()
        self.collect()
        self.sock.setblocking(False)

    def _finish(self) -> None:
        """A batch the thread handed over and did not send (it was stopping): answered and sent here."""
        handed = self.drain.take()
        if handed is None:
            return
        self.collect()
        try:
            self._answer(handed)
        finally:
            failed = self.drain.send()
            if failed:
                self.service.udp_send_errors += failed
