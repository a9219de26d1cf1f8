"""labkit.native._udp.Drain on its own: a UDP socket pair on loopback, no event loop.

What the service relies on: a hit is answered with the query's ID and the kept tail, a miss is
handed over whole and answered with what `reply` was given, in datagram order; addresses come
as Python's socket module gives them; a reply that cannot be sent is counted, never lost
silently; hostile input (any bytes) never crashes. The drain against the resolver for arbitrary
bytes is here too (hypothesis), both forms of the service are in test_dns_fast_path.py.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.native import load
from labkit.protocols.dns import AuthoritativeResolver
from labkit.protocols.dns.replies import KEY_MAX, UdpReplies
from tests.unit.test_dns_fast_path import TABLE, reference, with_id, zones

udp = load("_udp")
pytestmark = pytest.mark.skipif(udp is None, reason="labkit.native._udp is not built here")


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    client.bind(("127.0.0.1", 0))
    for sock in (server, client):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.setblocking(False)
    yield server, client
    server.close()
    client.close()


def answer_batch(drain: Any, replies: UdpReplies) -> tuple[list[Any], list[Any], int]:
    """What the service's native drain does, without the events: misses through the resolver."""
    addresses, values = drain.receive(replies.table)
    for value in values:
        if isinstance(value, bytes):
            drain.reply(replies.learn(value)[0])
    return addresses, values, drain.send()


def collect(client: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(client.recv(65535))
        except BlockingIOError:
            return out


def test_hits_and_misses_are_answered_as_the_resolver_answers(
        pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    assert udp is not None
    drain, replies = udp.Drain(server.fileno(), 16, KEY_MAX), UdpReplies(AuthoritativeResolver(zones()))
    queries = [with_id(query, n) for n, query in enumerate(list(TABLE.values()) * 3, 1)]
    batches = []
    for start, end in ((0, 25), (25, 75)):  # the first round fills the table, 2 x 25 then hit it
        for query in queries[start:end]:
            client.sendto(query, server.getsockname())
        while sum(len(b[1]) for b in batches) < end:
            batches.append(answer_batch(drain, replies))
    assert [len(b[1]) for b in batches] == [16, 9, 16, 16, 16, 2] and {b[2] for b in batches} == {0}
    addresses = [a for b in batches for a in b[0]]
    assert set(addresses) == {client.getsockname()} and addresses[0] is addresses[1]  # one peer, one tuple
    later = [v for b in batches[2:] for v in b[1]]
    kept = [v for v in later if not isinstance(v, bytes)]
    assert len(kept) == 2 * len(replies.table) and all(v is replies.table[v[3]] for v in kept)
    expected = [reference(q)[0] for q in queries]
    assert collect(client) == [wire for wire in expected if wire is not None]  # datagram order
    with pytest.raises(BlockingIOError):
        drain.receive(replies.table)


def test_a_reply_that_cannot_be_sent_is_counted(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    assert udp is not None
    drain, replies = udp.Drain(server.fileno(), 8), UdpReplies(AuthoritativeResolver(zones()))
    query = TABLE["A"]
    replies.answer(query)  # kept: the next ones are hits
    for ident in range(5):
        client.sendto(with_id(query, ident), server.getsockname())
    client.sendto(TABLE["NXDOMAIN"], server.getsockname())  # a miss
    with pytest.raises(OSError):
        server.shutdown(socket.SHUT_WR)  # (unconnected UDP: ENOTCONN, but sends now fail: EPIPE)
    _, values, failed = answer_batch(drain, replies)
    assert len(values) == 6 and failed == 6 and collect(client) == []


def test_misuse_raises_instead_of_crashing(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    assert udp is not None
    for bad in ((-1,), (server.fileno(), 0), (server.fileno(), 1000), (server.fileno(), 64, -1)):
        with pytest.raises(ValueError):
            udp.Drain(*bad)
    drain = udp.Drain(server.fileno(), 4)
    with pytest.raises(TypeError):
        drain.receive([])  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        drain.reply(b"x")  # no miss to answer
    client.sendto(TABLE["A"], server.getsockname())
    with pytest.raises(TypeError):
        drain.receive({TABLE["A"][2:]: "not a kept reply"})
    assert drain.send() == 1  # the datagram of the failed batch: counted as not answered
    client.sendto(TABLE["A"], server.getsockname())
    _, values = drain.receive({})
    with pytest.raises(TypeError):
        drain.reply(42)  # type: ignore[arg-type]
    drain.reply(None)  # no reply for it after all
    assert values == [TABLE["A"]] and drain.send() == 0 and collect(client) == []
    closed = udp.Drain(server.fileno())
    server.close()
    with pytest.raises(OSError):
        closed.receive({})


def test_ipv6_addresses_as_recvfrom_gives_them() -> None:
    assert udp is not None
    try:
        server = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        server.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with server, socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as client:
        client.bind(("::1", 0))
        client.setblocking(False)
        server.setblocking(False)
        replies = UdpReplies(AuthoritativeResolver(zones()))
        drain = udp.Drain(server.fileno())
        for ident in (1, 2):
            client.sendto(with_id(TABLE["SRV https"], ident), server.getsockname()[:2])
            addresses, _, failed = answer_batch(drain, replies)
            assert addresses == [client.getsockname()] and failed == 0
        assert collect(client) == [reference(with_id(TABLE["SRV https"], i))[0] for i in (1, 2)]


RESOLVER_ZONES = zones()


@settings(max_examples=100, deadline=None)
@given(raws=st.lists(st.binary(max_size=600), min_size=1, max_size=5), ident=st.integers(0, 0xFFFF))
def test_arbitrary_bytes_get_the_resolvers_answer(raws: list[bytes], ident: int) -> None:
    assert udp is not None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        server.bind(("127.0.0.1", 0))
        client.setblocking(False)
        server.setblocking(False)
        replies = UdpReplies(AuthoritativeResolver(RESOLVER_ZONES))
        drain = udp.Drain(server.fileno(), 4)
        queries = [q for raw in raws for q in (raw, with_id(raw, ident))]
        for query in queries:
            client.sendto(query, server.getsockname())
        sent = 0
        while sent < len(queries):
            sent += len(answer_batch(drain, replies)[1])
        expected = [AuthoritativeResolver(RESOLVER_ZONES).answer(q).send for q in queries]
        assert collect(client) == [s[0].data for s in expected if s]
