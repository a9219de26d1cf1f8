"""The DNS service's UDP drains: what runs each time the UDP socket is readable.

Two forms of the same steps, chosen once when the service binds:
- `drain_pure`: up to UDP_BATCH datagrams by `recvfrom`, each answered by `sendto`; the
  reference, and what runs without the compiled module (or with LABKIT_NATIVE=0).
- `drain_native`: labkit.native._udp's `Drain`: one `recvmmsg` reads up to NATIVE_BATCH
  datagrams and looks each up in the kept replies (`UdpReplies.table`) in C; Python logs the
  events (one per query, as the pure drain does, in datagram order), answers the misses through
  the resolver (`UdpReplies.learn`, the reference path), then one `sendmmsg` sends every reply
  of the batch in datagram order. The replies leave after their events, as in the pure drain.

Both stamp every event of a wake-up with one clock reading, work out each address's client text
and phone once per wake-up, and give one peer asking the same question again the same (frozen,
equal) Event object. In a worker process (`labkit up --workers N`) the sink is the worker's
Batcher, which takes template indexes: the compiled drain then builds no Event per query at all
(`_index_batch`: per peer and kept reply, the index of its event's template, kept until the
Batcher flushes), and the main process makes the same Events from the frames. While a fault
rule concerns DNS neither runs: the service takes its reference path (`_drain_with_faults`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from labkit.events import Event, fact_event
from labkit.native import load

if TYPE_CHECKING:
    from labkit.services.dns import DnsService

SERVICE = "dns"
UDP_BATCH = 128  # datagrams answered per wake-up before yielding to the loop's other work
UDP_RECV_SIZE = 65535  # a full datagram: a cut-off query would be misread
NATIVE_BATCH = 64  # datagrams per recvmmsg (two batches make a wake-up's UDP_BATCH)

Peers = dict[Any, tuple[str, str | None, dict[bytes, Event]]]
_MODULE = load("_udp")
_RESOLVE = _MODULE.resolve if _MODULE is not None else None  # a worker's known hits, in C


def drain_pure(service: DnsService) -> None:
    """Up to UDP_BATCH datagrams, one `recvfrom` and one `sendto` each."""
    sock = service._udp
    if sock is None:
        return
    # locals: this loop runs once per datagram, attribute look-ups add up
    recvfrom, sendto, learn = sock.recvfrom, sock.sendto, service.replies.learn
    get, tally = service.replies.table.get, service.replies.tally
    sink, phone_at, event = service._sink, service._phone_at, fact_event
    # `made` maps a kept reply's key (the query's bytes after its ID) to this peer's Event
    peers: Peers = {}
    peer: Any = None
    made: dict[bytes, Event] = {}
    client, phone, when = "", None, time.time()
    for _ in range(UDP_BATCH):
        try:
            data, address = recvfrom(UDP_RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # e.g. an ICMP error queued on the socket: note it, keep reading
            service.udp_receive_errors += 1
            continue
        if address != peer:  # a burst from one socket skips even the look-up below
            known = peers.get(address)
            if known is None:
                known = peers[address] = (f"{address[0]}:{address[1]}", phone_at(address[0]), {})
            peer, (client, phone, made) = address, known
        kept = get(data[2:])  # the reply to these exact bytes, if they were asked before
        if kept is None:
            wire, facts = learn(data)
            shared = None
        else:
            tail, facts, rcode, key = kept
            tally[rcode] += 1
            wire = data[:2] + tail
            shared = made.get(key)
            if shared is None:
                shared = made[key] = event(SERVICE, client, phone, facts[0], when, None)
        # the event goes out before the answer, so whoever holds the answer can see the event
        try:
            if shared is not None:
                sink(shared)
            else:
                for fact in facts:
                    sink(event(SERVICE, client, phone, fact, when, None))
        except Exception:  # a failing sink must not stop the answers
            service.sink_errors += 1
        if wire is not None:
            try:
                sendto(wire, address)
            except OSError:  # buffer full or peer unreachable: the client will retry
                service.udp_send_errors += 1


def drain_native(service: DnsService, drain: Any) -> None:
    """Up to UDP_BATCH datagrams in batches of NATIVE_BATCH (`drain` is a `_udp.Drain`)."""
    sink = service._sink
    indexed = getattr(sink, "template_of", None) is not None  # a worker's Batcher
    peers = _index_peers(service, sink) if indexed else {}
    when = time.time()
    for _ in range(UDP_BATCH // NATIVE_BATCH):
        try:
            addresses, values = drain.receive(service.replies.table)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # e.g. an ICMP error queued on the socket: note it, keep reading
            service.udp_receive_errors += 1
            continue
        try:
            if indexed:
                _index_batch(service, drain, addresses, values, peers, when)
            else:
                _log_batch(service, drain, addresses, values, peers, when)
        finally:  # every reply of the batch goes, even if logging failed half way
            failed = drain.send()
            if failed:
                service.udp_send_errors += failed
        if len(values) < NATIVE_BATCH:
            return  # the socket was empty: the loop wakes us when more arrive
        if indexed:
            peers = _index_peers(service, sink)  # (the sink may have flushed)


def _index_peers(service: DnsService, sink: Any) -> Peers:
    """For a sink that takes template indexes: per peer its client text, phone and template index
    per kept reply's key, kept while the sink's indexes hold (until it flushes: at most
    BATCH_EVENTS events or FLUSH_SECONDS) and the reply table is the same (a reload)."""
    kept = service.index_peers
    if kept is None or kept[0] != sink.generation or kept[1] is not service.replies:
        kept = service.index_peers = (sink.generation, service.replies, {})
    return kept[2]


def _log_batch(service: DnsService, drain: Any, addresses: list[Any], values: list[Any], peers: Peers,
               when: float) -> None:
    """One batch's events in datagram order; the misses answered by the reference path."""
    replies = service.replies
    learn, tally, reply = replies.learn, replies.tally, drain.reply
    sink, phone_at, event = service._sink, service._phone_at, fact_event
    peer: Any = None
    made: dict[bytes, Event] = {}
    client, phone = "", None
    for address, value in zip(addresses, values, strict=True):
        if address is not peer:  # the module hands out one tuple per peer: usually the same
            known = peers.get(address)
            if known is None:
                known = peers[address] = (f"{address[0]}:{address[1]}", phone_at(address[0]), {})
            peer, (client, phone, made) = address, known
        if value.__class__ is bytes:  # a miss: the resolver answers, the table may keep it
            wire, facts = learn(value)
            reply(wire)
            try:
                for fact in facts:
                    sink(event(SERVICE, client, phone, fact, when, None))
            except Exception:  # a failing sink must not stop the answers
                service.sink_errors += 1
            continue
        _, facts, rcode, key = value  # a hit: its reply is queued already
        tally[rcode] += 1
        shared = made.get(key)
        if shared is None:
            shared = made[key] = event(SERVICE, client, phone, facts[0], when, None)
        try:
            sink(shared)
        except Exception:
            service.sink_errors += 1


def _index_batch(service: DnsService, drain: Any, addresses: list[Any], values: list[Any], peers: Peers,
                 when: float) -> None:
    """`_log_batch` for a sink that takes template indexes (a worker's Batcher): the same events
    in the same order, each hit an int (its template, kept per peer and key) instead of an Event;
    the batch's events go in one `at()` call, before any reply of the batch is sent. The module's
    `resolve` logs the hits whose peer and question have an index; this loop takes the rest."""
    replies, sink, resolve = service.replies, service._sink, _RESOLVE
    indexes: list[int] = []
    if resolve is not None and resolve(addresses, values, 0, peers, replies.tally, indexes) == len(values):
        try:  # every datagram a known hit (the common case under load): nothing more in Python
            sink.at(when, indexes)  # type: ignore[attr-defined]
        except Exception:
            service.sink_errors += 1
        return
    learn, tally, reply = replies.learn, replies.tally, drain.reply
    phone_at, event, template_of = service._phone_at, fact_event, sink.template_of  # type: ignore[attr-defined]
    add = indexes.append
    peer: Any = None
    made: dict[bytes, Any] = {}  # here: a kept reply's key -> this peer's template index
    client, phone = "", None
    count, position = len(values), len(indexes)  # (resolve stopped at a datagram it could not take)
    if len(addresses) != count:
        raise ValueError("a batch's addresses and values differ in length")
    try:
        while position < count:
            if resolve is not None:
                position = resolve(addresses, values, position, peers, tally, indexes)
                if position >= count:
                    break
            address, value = addresses[position], values[position]
            position += 1
            if address is not peer:
                known = peers.get(address)
                if known is None:
                    known = peers[address] = (f"{address[0]}:{address[1]}", phone_at(address[0]), {})
                peer, (client, phone, made) = address, known
            if value.__class__ is bytes:
                wire, facts = learn(value)
                reply(wire)
                for fact in facts:
                    try:
                        add(template_of(event(SERVICE, client, phone, fact, when, None)))
                    except Exception:  # a failing sink must not stop the answers
                        service.sink_errors += 1
                continue
            _, facts, rcode, key = value
            tally[rcode] += 1
            index = made.get(key)
            if index is None:
                try:
                    index = made[key] = template_of(event(SERVICE, client, phone, facts[0], when, None))
                except Exception:
                    service.sink_errors += 1
                    continue
            add(index)
    finally:  # what was looked at is logged, whatever failed
        try:
            sink.at(when, indexes)  # type: ignore[attr-defined]
        except Exception:
            service.sink_errors += 1
