"""The UDP fast path (kept whole replies, `UdpReplies`, and the service's drain loop) answers
byte for byte what the reference path (the resolver, today's answers) answers.

Every query of the table is asked of a fresh resolver (the reference) and of the fast path,
twice each with different IDs (the first asking fills the table, the second is served from
it), in the pure form and through the running service on loopback, with both UDP drains (the
compiled one, labkit.native._udp, and the pure one it falls back to: LABKIT_NATIVE=0). Faults:
while a rule concerns DNS the service takes the reference path for every query and keeps nothing.
"""

from __future__ import annotations

import asyncio
import functools
import random
import socket
import struct
from pathlib import Path

import pytest
from dnslib import EDNS0, DNSRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.events import EventRecorder, StaticDirectory
from labkit.faults.engine import FaultEngine, Match, Rule, When
from labkit.faults.hooks import Faults
from labkit.native import load
from labkit.plan.zones import DnsPlan
from labkit.protocols.dns import AuthoritativeResolver, DnsZone
from labkit.protocols.dns.faults import DnsFaultAction, apply_dns_fault, negative_probe
from labkit.protocols.dns.replies import UdpReplies
from labkit.services.context import Endpoint, StartContext
from labkit.services.dns import start_dns
from labkit.services.filetree import FileTree
from tests.helpers import answers_until_quiet
from tests.unit.test_dns_resolver import BIG_BODY, FAT_SRV, HUGE_BODY, lab_zones, make_zone

HOST, PHONE = "127.0.0.1", "00:11:22:33:44:55"
SRV_HTTPS = "_ciscoprov-https._tls.lab.example"


def zones() -> list[DnsZone]:
    test = make_zone("test.example", "\n".join(["ns IN A 10.0.0.53", BIG_BODY, HUGE_BODY, FAT_SRV]))
    return [*lab_zones(), test]


def question(name: str, qtype: str = "A", *, rd: bool = True, cd: bool = False, edns: int | None = None,
             do: bool = False, version: int = 0) -> bytes:
    record = DNSRecord.question(name, qtype)
    record.header.rd, record.header.cd = int(rd), int(cd)
    if edns is not None:
        record.add_ar(EDNS0(udp_len=edns, flags="do" if do else "", version=version))
    return bytes(record.pack())


def _raw_header(flags: int, qd: int = 1) -> bytes:
    return struct.pack("!HHHHHH", 0, flags, qd, 0, 0, 0)


PROV_A = question("prov.lab.example")
TABLE: dict[str, bytes] = {
    "SRV https": question(SRV_HTTPS, "SRV"),
    "SRV http, no RD": question("_ciscoprov-http._tcp.lab.example", "SRV", rd=False),
    "A": PROV_A,
    "A, CD": question("prov.lab.example", cd=True),
    "NODATA (AAAA of an A-only name)": question("prov.lab.example", "AAAA"),
    "NXDOMAIN": question("missing.lab.example"),
    "case variant SRV": question("_CiscoProv-HTTPS._TLS.Lab.Example", "SRV"),
    "case variant A": question("PROV.lab.EXAMPLE"),
    "case variant NXDOMAIN": question("MISSING.Lab.Example"),
    "EDNS SRV": question(SRV_HTTPS, "SRV", edns=1232),
    "EDNS + DO": question(SRV_HTTPS, "SRV", edns=4096, do=True),
    "EDNS NXDOMAIN": question("missing.lab.example", edns=1232),
    "truncated (no EDNS, 700 bytes)": question("big.test.example"),
    "truncated (EDNS 512)": question("huge.test.example", edns=512),
    "fits with EDNS 1232": question("big.test.example", edns=1232),
    "additional section dropped": question("_sip._udp.test.example", "SRV"),
    "REFUSED (not our zone)": question("www.example.org"),
    "sinkhole": question("activate.cisco.com"),
    "ANY": question("prov.lab.example", "ANY"),
    "BADVERS": question(SRV_HTTPS, "SRV", edns=1232, version=1),
    "NOTIMP (opcode 2)": _raw_header(0x1000) + b"\x00\x00\x01\x00\x01",
    "FORMERR (two questions)": _raw_header(0x0100, qd=2) + b"\x00\x00\x01\x00\x01" * 2,
    "FORMERR (garbage)": _raw_header(0x0100) + b"\x07garbage",
    "dropped: runt": b"\x12\x34\x01",
    "dropped: a response": _raw_header(0x8000) + b"\x00\x00\x01\x00\x01",
}


def with_id(query: bytes, ident: int) -> bytes:
    return ident.to_bytes(2, "big") + query[2:] if len(query) >= 2 else query


@functools.cache
def reference(query: bytes) -> tuple[bytes | None, tuple[str, str, str]]:
    """Today's path: a fresh resolver's UDP answer and its fact's (request, answer, result)."""
    result = AuthoritativeResolver(zones()).answer(query)
    fact = result.facts[0]
    return (result.send[0].data if result.send else None), (fact.request, fact.answer, fact.result)


def test_kept_replies_are_the_resolvers_bytes() -> None:
    replies = UdpReplies(AuthoritativeResolver(zones()))
    for label, query in TABLE.items():
        for ident in (0x1234, 0xBEEF, 0x0001):  # the first fills the table, the others read it
            wire, facts = replies.answer(with_id(query, ident))
            expected, said = reference(with_id(query, ident))
            assert wire == expected, label
            assert (facts[0].request, facts[0].answer, facts[0].result) == said, label
    kept = {key for key in replies.table}
    assert TABLE["SRV https"][2:] in kept and TABLE["case variant SRV"][2:] in kept
    assert TABLE["dropped: runt"][2:] not in kept and TABLE["dropped: a response"][2:] not in kept


def test_counters_count_hits_as_the_resolver_counts_answers() -> None:
    fast, slow = AuthoritativeResolver(zones()), AuthoritativeResolver(zones())
    replies = UdpReplies(fast)
    for query in [*TABLE.values()] * 3:
        replies.answer(query)
        slow.answer(query)
    assert fast.counters == slow.counters


def test_the_table_is_bounded() -> None:
    replies = UdpReplies(AuthoritativeResolver(zones()), limit=8)
    for i in range(50):
        replies.answer(question(f"n{i}.lab.example"))
        assert len(replies.table) <= 8
    long_query = question("prov.lab.example", edns=1232)[:-2] + struct.pack("!H", 600) + bytes(600)
    replies.answer(long_query)
    assert long_query[2:] not in replies.table  # longer than any real question: never kept


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=80), ident=st.integers(0, 0xFFFF))
def test_arbitrary_bytes_get_the_same_answer(raw: bytes, ident: int) -> None:
    replies = UdpReplies(AuthoritativeResolver(lab_zones()))
    for query in (raw, with_id(raw, ident)):
        wire, _ = replies.answer(query)
        result = AuthoritativeResolver(lab_zones()).answer(query)
        assert wire == (result.send[0].data if result.send else None)


# ---------------------------------------------------------------------------------------------
# through the service on loopback


@pytest.fixture(params=["native", "pure"])
def drain(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which UDP drain the service runs: the compiled one (skipped where it is not built) or the
    pure reference (LABKIT_NATIVE=0). The service chooses when it binds."""
    if request.param == "pure":
        monkeypatch.setenv("LABKIT_NATIVE", "0")
    elif load("_udp") is None:
        pytest.skip("labkit.native._udp is not built here")
    return str(request.param)


async def _serve(faults: Faults | None = None, host: str = HOST) -> tuple[object, EventRecorder]:
    events = EventRecorder()
    ctx = StartContext(FileTree({}), events, StaticDirectory({host: PHONE}), frozenset(),
                       Path("/nonexistent-state-dir"), faults=faults or Faults())
    service = await start_dns(DnsPlan(tuple(zones())), Endpoint("dns", host, 0, "udp+tcp"), ctx)
    return service, events


async def _ask_all(queries: list[bytes], faults: Faults | None = None) -> tuple[list[bytes | None], object]:
    service, events = await _serve(faults)
    loop = asyncio.get_running_loop()
    answers: list[bytes | None] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.setblocking(False)
        for query in queries:
            await loop.sock_sendto(client, query, (HOST, service.port))  # type: ignore[attr-defined]
            try:
                async with asyncio.timeout(0.5 if len(query) < 12 or query[2] & 0x80 else 10):
                    answers.append(await loop.sock_recv(client, 65535))
            except TimeoutError:
                answers.append(None)  # no answer is due for runts and responses
    await service.close()  # type: ignore[attr-defined]
    return answers, (events, service)


def _said(events: EventRecorder) -> list[tuple[object, ...]]:
    """Every field of every query event but the time (one clock reading per drain)."""
    return [(e.service, e.client, e.phone, e.action, e.request, e.answer, e.result, e.detail)
            for e in events.events if e.action == "query"]


def test_the_service_answers_as_the_reference_path(drain: str) -> None:
    queries = [with_id(query, ident) for ident in (7, 8) for query in TABLE.values()]
    answers, (events, service) = asyncio.run(_ask_all(queries))  # type: ignore[misc]
    assert service.native_udp == (drain == "native")  # type: ignore[attr-defined]
    for query, answer in zip(queries, answers, strict=True):
        expected, _ = reference(query)
        assert answer == expected, query
    said = [(e.request, e.answer, e.result) for e in events.events if e.action == "query"]
    assert said == [reference(query)[1] for query in queries]
    assert all(e.phone == PHONE and e.client and e.client.startswith(HOST) for e in events.events)
    assert len(service.replies.table) > 10  # type: ignore[attr-defined]  # the second round came from the table


async def _burst(queries: list[bytes], host: str = HOST) -> tuple[dict[bytes, bytes], EventRecorder, object]:
    """All the queries sent at once (more than one batch of the compiled drain), then every
    answer collected by ID until 0.5 s passes without one."""
    service, events = await _serve(host=host)
    answers: dict[bytes, bytes] = {}
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        client.setblocking(False)
        for query in queries:
            client.sendto(query, (host, service.port))  # type: ignore[attr-defined]
        for answer in await answers_until_quiet(client):
            answers[answer[:2]] = answer
    await service.close()  # type: ignore[attr-defined]
    return answers, events, service


def test_a_burst_is_answered_and_logged_as_the_reference_path(drain: str) -> None:
    """Three rounds of the table in one burst, each query with its own ID: hits and misses mixed
    in each batch, the same question asked twice in one batch, runts and responses among them."""
    queries = [with_id(query, n) for n, query in enumerate(list(TABLE.values()) * 3, 1)]
    answers, events, _ = asyncio.run(_burst(queries))
    for query in queries:
        expected, _ = reference(query)
        assert answers.get(query[:2]) == expected, query
    assert len(answers) == sum(1 for q in queries if reference(q)[0] is not None)
    said = _said(events)
    assert [s[4:7] for s in said] == [reference(query)[1] for query in queries]  # order kept
    assert {s[1] for s in said} == {said[0][1]} and all(s[2] == PHONE and s[7] == {} for s in said)


def test_both_drains_log_the_same_events(monkeypatch: pytest.MonkeyPatch) -> None:
    if load("_udp") is None:
        pytest.skip("labkit.native._udp is not built here")
    queries = [with_id(query, n) for n, query in enumerate(list(TABLE.values()) * 2, 1)]
    fast = asyncio.run(_burst(queries))
    monkeypatch.setenv("LABKIT_NATIVE", "0")
    slow = asyncio.run(_burst(queries))
    assert fast[0] == slow[0]
    strip = [s[:1] + s[2:] for s in _said(fast[1])]  # all but the client's port
    assert strip == [s[:1] + s[2:] for s in _said(slow[1])] and len(strip) == len(queries)
    assert fast[2].resolver.counters == slow[2].resolver.counters  # type: ignore[attr-defined]


def test_ipv6_peers(drain: str) -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    queries = [with_id(PROV_A, 1), with_id(PROV_A, 2), with_id(TABLE["NXDOMAIN"], 3)]
    answers, events, _ = asyncio.run(_burst(queries, host="::1"))
    assert [answers.get(q[:2]) for q in queries] == [reference(q)[0] for q in queries]
    clients = {s[1] for s in _said(events)}
    assert len(clients) == 1 and next(iter(clients)).startswith("::1:")


def test_faults_bypass_the_table(drain: str) -> None:
    action = DnsFaultAction(rcode="NXDOMAIN")
    rule = Rule("every 2nd prov", "dns", action, Match(name="prov.lab.example"), When(every=2))
    engine = FaultEngine([rule], random.Random(1))
    faults = Faults.build(engine, lambda event: None, {}, started=0.0)
    queries = [with_id(PROV_A, ident) for ident in range(1, 5)] + [TABLE["SRV https"]]
    answers, (_, service) = asyncio.run(_ask_all(queries, faults))  # type: ignore[misc]
    resolver = AuthoritativeResolver(zones())
    for n, (query, answer) in enumerate(zip(queries, answers, strict=True), 1):
        plain = resolver.answer(query).send[0].data
        if query[2:] == PROV_A[2:] and n % 2 == 0:
            probe = negative_probe(query)
            assert probe is not None
            plain = apply_dns_fault(query, plain, action, resolver.answer(probe).send[0].data)
        assert answer == plain, n
    assert service.replies.table == {}  # type: ignore[attr-defined]  # nothing kept while a rule concerns DNS
