"""The DNS service (labkit.services.dns) on 127.0.0.1, checked by the field's own clients.

dig (Debian dnsutils) and kdig (Debian knot-dnsutils) ask the real asyncio service, running
in a background thread with its own event loop on a free high port. Nothing here measures
time: waits are bounded only so that a broken server fails the test instead of hanging it.
A few raw-socket checks (TCP framing and pipelining, idle timeout, garbage) need no tool.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import struct
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from dnslib import RR, DNSRecord

from labkit.events import Event, EventRecorder, StaticDirectory, events_from, fact_event
from labkit.inventory.load import load
from labkit.plan.build import build_plan
from labkit.plan.zones import DnsPlan
from labkit.protocols.dns import AuthoritativeResolver, DnsZone
from labkit.services.context import Endpoint, StartContext
from labkit.services.dns import DnsService, DnsServiceError, TcpLimits, start_dns
from labkit.services.filetree import FileTree
from tests.conftest import require_tool

HOST = "127.0.0.1"
PHONE = "00:11:22:33:44:55"
SRV_HTTPS = "_ciscoprov-https._tls.lab.example"
SRV_HTTP = "_ciscoprov-http._tcp.lab.example"
WAIT = 30  # seconds: an upper bound on any single exchange, never an expectation


def make_zone(name: str, body: str, *, sinkhole: bool = False, address: str | None = None) -> DnsZone:
    text = (f"$ORIGIN {name}.\n$TTL 300\n"
            "@ IN SOA ns.lab.example. hostmaster.lab.example. 1 3600 600 86400 60\n"
            f"@ IN NS ns.lab.example.\n{body}")
    return DnsZone(name, tuple(RR.fromZone(text)), sinkhole, IPv4Address(address) if address else None)


def lab_zones() -> dict[str, DnsZone]:
    zones = {name: zone.for_dns() for name, zone in build_plan(load(None)).zones.items()}
    big = "\n".join(f"big IN A 10.1.0.{i + 1}" for i in range(40))  # ~700 bytes: over 512, under 1232
    huge = "\n".join(f"huge IN A 10.2.{i // 250}.{i % 250 + 1}" for i in range(100))  # ~1,660 bytes
    zones["test.example"] = make_zone("test.example", f"{big}\n{huge}\n")
    zones["cloud.example"] = make_zone("cloud.example", "@ IN A 10.42.0.9\n* IN A 10.42.0.9\n", sinkhole=True,
                                       address="10.42.0.9")
    return zones


def context(events: EventRecorder, directory: StaticDirectory) -> StartContext:
    return StartContext(FileTree({}), events, directory, frozenset(), Path("/nonexistent-state-dir"))


class Served:
    """The DNS service in a background thread with its own event loop."""

    def __init__(self, zones: dict[str, DnsZone], *, limits: TcpLimits | None = None) -> None:
        self.events = EventRecorder()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="dns-test-loop", daemon=True)
        self.thread.start()
        self.plan = DnsPlan(tuple(zones.values()))
        self.ctx = context(self.events, StaticDirectory({HOST: PHONE}))
        endpoint = Endpoint("dns", HOST, 0, "udp+tcp")
        limits = limits or TcpLimits()
        self.service: DnsService = self.call(start_dns(self.plan, endpoint, self.ctx, limits=limits))
        self.port = self.service.port

    def call(self, coroutine):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=WAIT)

    def close(self) -> None:
        self.call(self.service.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=WAIT)
        self.loop.close()


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    server = Served(lab_zones())
    yield server
    server.close()


# ---------------------------------------------------------------------------------------------
# dig


@dataclass
class DigAnswer:
    text: str
    status: str
    flags: set[str]
    sections: dict[str, list[list[str]]] = field(default_factory=dict)
    transport: str = ""
    edns: tuple[int, str, int] | None = None  # version, flags, udp size

    def records(self, section: str, rtype: str | None = None) -> list[list[str]]:
        return [r for r in self.sections.get(section, []) if rtype is None or r[3] == rtype]


def parse_dig(text: str) -> DigAnswer:
    status = re.search(r"status: (\w+)", text)
    flags = re.search(r";; flags:([^;]*);", text)
    assert status and flags, text
    answer = DigAnswer(text, status.group(1), set(flags.group(1).split()))
    section = None
    for line in text.splitlines():
        heading = re.match(r";; (\w+) SECTION:", line)
        if heading:
            section = heading.group(1)
            answer.sections.setdefault(section, [])
        elif not line.strip():
            section = None
        elif section and section != "QUESTION" and not line.startswith(";"):
            name, ttl, klass, rtype, *rdata = line.split()
            answer.sections[section].append([name, ttl, klass, rtype, " ".join(rdata)])
    server = re.search(r";; SERVER: .*\((UDP|TCP)\)", text)
    answer.transport = server.group(1) if server else ""
    opt = re.search(r"; EDNS: version: (\d+), flags:([^;]*); udp: (\d+)", text)
    if opt:
        answer.edns = (int(opt.group(1)), opt.group(2).strip(), int(opt.group(3)))
    return answer


def dig(served: Served, *args: str) -> DigAnswer:
    tool = require_tool("dig")
    result = subprocess.run([tool, f"@{HOST}", "-p", str(served.port), "+tries=1", "+time=10", *args],
                            capture_output=True, text=True, timeout=WAIT * 2)
    assert result.returncode == 0, result.stdout + result.stderr
    return parse_dig(result.stdout)


def test_dig_srv_with_additional_a(served: Served) -> None:
    for name, port in ((SRV_HTTPS, "443"), (SRV_HTTP, "80")):
        answer = dig(served, name, "SRV")
        assert answer.status == "NOERROR"
        assert "aa" in answer.flags and "ra" not in answer.flags
        (srv,) = answer.records("ANSWER", "SRV")
        assert srv[0] == name + "." and srv[4].split()[2] == port and srv[4].endswith("prov.lab.example.")
        assert answer.records("ADDITIONAL", "A") == [["prov.lab.example.", "300", "IN", "A", "10.42.0.1"]]


def test_dig_query_becomes_an_event(served: Served) -> None:
    dig(served, SRV_HTTPS, "SRV")
    event = served.events.events[-1]  # emitted before the answer left, so it is there already
    assert isinstance(event, Event)
    assert (event.service, event.action, event.phone) == ("dns", "query", PHONE)
    assert event.request == f"SRV {SRV_HTTPS}"
    assert (event.answer, event.result) == ("NOERROR 1 SRV + 1 A", "ok")
    assert event.client is not None and event.client.startswith(f"{HOST}:")
    assert json.loads(event.to_json())["request"] == event.request


def test_dig_nodata_and_nxdomain_carry_the_soa(served: Served) -> None:
    nodata = dig(served, "prov.lab.example", "AAAA")
    assert nodata.status == "NOERROR" and nodata.records("ANSWER") == []
    assert [r[3] for r in nodata.records("AUTHORITY")] == ["SOA"]
    assert nodata.records("AUTHORITY")[0][:2] == ["lab.example.", "300"]
    ent = dig(served, "_tls.lab.example", "A")  # empty non-terminal
    assert ent.status == "NOERROR" and [r[3] for r in ent.records("AUTHORITY")] == ["SOA"]
    missing = dig(served, "nope.lab.example", "SRV")
    assert missing.status == "NXDOMAIN" and "aa" in missing.flags
    assert [r[3] for r in missing.records("AUTHORITY")] == ["SOA"]
    assert served.events.events[-1].result == "nxdomain"


def test_dig_refused_outside_the_lab(served: Served) -> None:
    answer = dig(served, "www.example.com", "A")
    assert answer.status == "REFUSED" and "aa" not in answer.flags and "ra" not in answer.flags
    assert served.events.events[-1].result == "refused"


def test_dig_sinkholes(served: Served) -> None:
    for name in ("activate.cisco.com", "eu.activate.cisco.com", "x.webapps.cisco.com"):
        answer = dig(served, name, "A")
        assert answer.status == "NXDOMAIN" and "aa" in answer.flags, name
        (soa,) = answer.records("AUTHORITY", "SOA")
        assert name.endswith(soa[0].rstrip("."))
    for name in ("cloud.example", "a.b.cloud.example"):
        answer = dig(served, name, "A")
        assert answer.status == "NOERROR"
        assert answer.records("ANSWER", "A") == [[name + ".", "300", "IN", "A", "10.42.0.9"]]
        answer = dig(served, name, "AAAA")
        assert answer.status == "NOERROR" and answer.records("ANSWER") == []


def test_dig_tcp_several_queries_on_one_connection(served: Served) -> None:
    before = served.service.tcp_connections
    tool = require_tool("dig")
    result = subprocess.run([tool, f"@{HOST}", "-p", str(served.port), "+tcp", "+keepopen", "+time=10",
                             "+tries=1", SRV_HTTPS, "SRV", "prov.lab.example", "A", "nope.lab.example", "A"],
                            capture_output=True, text=True, timeout=WAIT * 2)
    assert result.returncode == 0, result.stderr
    blocks = result.stdout.split(";; Got answer:")[1:]
    answers = [parse_dig(";; Got answer:" + block) for block in blocks]
    assert [a.status for a in answers] == ["NOERROR", "NOERROR", "NXDOMAIN"]
    assert all(a.transport == "TCP" and "aa" in a.flags for a in answers)
    assert len(answers[0].records("ADDITIONAL", "A")) == 1
    assert served.service.tcp_connections - before == 1
    assert served.events.events[-1].detail == {"transport": "tcp"}


def test_dig_truncation_without_edns(served: Served) -> None:
    answer = dig(served, "+noedns", "+ignore", "big.test.example", "A")
    assert "tc" in answer.flags and "aa" in answer.flags
    assert answer.records("ANSWER") == [] and answer.edns is None
    assert "TC" in served.events.events[-1].answer
    retried = dig(served, "+noedns", "big.test.example", "A")  # dig falls back to TCP by itself
    assert retried.transport == "TCP" and len(retried.records("ANSWER", "A")) == 40


def test_dig_bufsize(served: Served) -> None:
    answer = dig(served, "+bufsize=4096", "big.test.example", "A")  # 700 bytes fit in UDP
    assert answer.transport == "UDP" and "tc" not in answer.flags and len(answer.records("ANSWER")) == 40
    assert answer.edns == (0, "", 1232)
    small = dig(served, "+bufsize=600", "+ignore", "big.test.example", "A")
    assert "tc" in small.flags and small.records("ANSWER") == [] and small.edns is not None
    capped = dig(served, "+bufsize=4096", "+ignore", "huge.test.example", "A")  # 1,660 > our 1232 cap
    assert "tc" in capped.flags
    full = dig(served, "+bufsize=4096", "huge.test.example", "A")
    assert full.transport == "TCP" and len(full.records("ANSWER", "A")) == 100


def test_dig_edns_echo_and_badvers(served: Served) -> None:
    answer = dig(served, "+dnssec", "prov.lab.example", "A")
    assert answer.edns == (0, "do", 1232)
    badvers = dig(served, "+edns=1", "+noednsnegotiation", "prov.lab.example", "A")
    assert badvers.status == "BADVERS" and badvers.records("ANSWER") == []
    assert served.events.events[-1].result == "badvers"


def test_dig_any_and_letter_case(served: Served) -> None:
    answer = dig(served, SRV_HTTPS, "ANY")
    assert [r[3] for r in answer.records("ANSWER")] == ["SRV"]
    mixed = "_CiscoProv-HTTPS._TLS.lab.EXAMPLE"
    answer = dig(served, mixed, "SRV")
    assert answer.status == "NOERROR" and answer.records("ANSWER", "SRV")[0][0] == mixed + "."


# ---------------------------------------------------------------------------------------------
# kdig (+json: RFC 8427 output, parsed as data)


def kdig(served: Served, *args: str) -> dict:
    tool = require_tool("kdig")
    result = subprocess.run([tool, f"@{HOST}", "-p", str(served.port), "+json", "+timeout=10", "+retry=0",
                             *args], capture_output=True, text=True, timeout=WAIT * 2)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_kdig_srv_and_flags(served: Served) -> None:
    reply = kdig(served, SRV_HTTPS, "SRV")
    assert (reply["AA"], reply["RA"], reply["RCODE"]) == (1, 0, 0)
    assert [rr["TYPEname"] for rr in reply["answerRRs"]] == ["SRV"]
    assert [(rr["NAME"], rr["rdataA"]) for rr in reply["additionalRRs"] if rr["TYPEname"] == "A"] == [
        ("prov.lab.example.", "10.42.0.1")]


def test_kdig_negative_answers(served: Served) -> None:
    nodata = kdig(served, "prov.lab.example", "AAAA")
    assert (nodata["RCODE"], nodata["ANCOUNT"], nodata["AA"]) == (0, 0, 1)
    assert [rr["TYPEname"] for rr in nodata["authorityRRs"]] == ["SOA"]
    missing = kdig(served, "nope.lab.example", "A")
    assert (missing["RCODE"], missing["AA"]) == (3, 1)
    assert [rr["TYPEname"] for rr in missing["authorityRRs"]] == ["SOA"]
    sinkhole = kdig(served, "x.activation.webex.com", "A")
    assert sinkhole["RCODE"] == 3 and sinkhole["authorityRRs"][0]["NAME"] == "activation.webex.com."
    refused = kdig(served, "example.net", "A")
    assert (refused["RCODE"], refused["AA"], refused["RA"]) == (5, 0, 0)


def test_kdig_tcp_truncation_and_bufsize(served: Served) -> None:
    tcp = kdig(served, "+tcp", "huge.test.example", "A")
    assert tcp["TC"] == 0 and tcp["ANCOUNT"] == 100
    truncated = kdig(served, "+noedns", "+ignore", "big.test.example", "A")
    assert (truncated["TC"], truncated["ANCOUNT"], truncated["AA"]) == (1, 0, 1)
    assert "additionalRRs" not in truncated
    roomy = kdig(served, "+bufsize=4096", "big.test.example", "A")
    assert (roomy["TC"], roomy["ANCOUNT"]) == (0, 40)
    tight = kdig(served, "+bufsize=600", "+ignore", "big.test.example", "A")
    assert tight["TC"] == 1 and tight["msgLength"] <= 600


def test_kdig_badvers(served: Served) -> None:
    tool = require_tool("kdig")
    result = subprocess.run([tool, f"@{HOST}", "-p", str(served.port), "+edns=1", "+timeout=10", "+retry=0",
                             "prov.lab.example"], capture_output=True, text=True, timeout=WAIT * 2)
    assert "status: BADVERS" in result.stdout and "Version: 0" in result.stdout


def test_kdig_keepopen_tcp(served: Served) -> None:
    tool = require_tool("kdig")
    before = served.service.tcp_connections
    result = subprocess.run([tool, f"@{HOST}", "-p", str(served.port), "+tcp", "+keepopen", "+timeout=10",
                             "+retry=0", "prov.lab.example", "ns.lab.example", "_tls.lab.example"],
                            capture_output=True, text=True, timeout=WAIT * 2)
    assert result.stdout.count("(TCP)") == 3 and result.stdout.count("status: NOERROR") == 3
    assert served.service.tcp_connections - before == 1


# ---------------------------------------------------------------------------------------------
# raw sockets: framing, pipelining, garbage, idle timeout, close


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def test_tcp_pipelined_queries_and_a_runt(served: Served) -> None:
    queries = [DNSRecord.question(name, qtype) for name, qtype in
               ((SRV_HTTPS, "SRV"), ("nope.lab.example", "A"), ("example.org", "A"))]
    with socket.create_connection((HOST, served.port), timeout=WAIT) as sock:
        runt = b"\x00\x05abcde"  # a 5-byte message: no header, dropped, the connection lives on
        framed = [struct.pack("!H", len(p)) + p for p in (bytes(q.pack()) for q in queries)]
        sock.sendall(runt + b"".join(framed))
        replies = []
        for _ in queries:
            length = struct.unpack("!H", _recv_exactly(sock, 2))[0]
            replies.append(DNSRecord.parse(_recv_exactly(sock, length)))
    assert [r.header.id for r in replies] == [q.header.id for q in queries]
    assert [r.header.rcode for r in replies] == [0, 3, 5]


def test_udp_garbage_does_not_stop_the_service(served: Served) -> None:
    dropped, formerr = served.service.resolver.dropped, served.service.resolver.counters["formerr"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(WAIT)
        sock.sendto(b"\x01", (HOST, served.port))  # no header: dropped silently
        sock.sendto(b"\xbe\xef\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x04pro", (HOST, served.port))
        reply = DNSRecord.parse(sock.recv(512))
        assert (reply.header.id, reply.header.rcode) == (0xBEEF, 1)  # FORMERR, ID echoed
        sock.sendto(bytes(DNSRecord.question("prov.lab.example").pack()), (HOST, served.port))
        assert DNSRecord.parse(sock.recv(512)).header.rcode == 0
    assert served.service.resolver.dropped == dropped + 1
    assert served.service.resolver.counters["formerr"] == formerr + 1  # type: ignore[operator]


def test_tcp_idle_connection_is_closed_and_close_releases_the_port() -> None:
    server = Served(lab_zones(), limits=TcpLimits(idle_timeout=0.5, partial_timeout=0.5))
    try:
        with socket.create_connection((HOST, server.port), timeout=WAIT) as sock:
            assert sock.recv(1) == b""  # the server hangs up on a silent client (bounded by WAIT)
        with socket.create_connection((HOST, server.port), timeout=WAIT) as sock:
            sock.sendall(b"\x00")  # half a length prefix, then silence
            assert sock.recv(1) == b""
    finally:
        port = server.port
        server.close()
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):  # both sockets are gone
        with socket.socket(socket.AF_INET, kind) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((HOST, port))


# ---------------------------------------------------------------------------------------------
# TCP under hostile clients (issue 10): idle half-open connections must not lock others out

HOSTILE = "127.0.0.2"  # loopback is all of 127/8 on Linux: a second client address


def _query_over_tcp(sock: socket.socket, name: str = "prov.lab.example") -> DNSRecord:
    packet = bytes(DNSRecord.question(name, "A").pack())
    sock.sendall(struct.pack("!H", len(packet)) + packet)
    return DNSRecord.parse(_recv_exactly(sock, struct.unpack("!H", _recv_exactly(sock, 2))[0]))


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""  # bounded by the socket's timeout (WAIT)
    except ConnectionResetError:
        return True


def test_256_one_byte_connections_from_one_address_do_not_lock_out_others() -> None:
    server = Served(lab_zones())  # the default limits
    held: list[socket.socket] = []
    try:
        rejected = server.service.tcp_rejected
        for _ in range(256):
            sock = socket.create_connection((HOST, server.port), timeout=WAIT, source_address=(HOSTILE, 0))
            sock.sendall(b"\x00")  # one byte of a length prefix, then nothing
            held.append(sock)
        with socket.create_connection((HOST, server.port), timeout=WAIT) as fresh:
            assert _query_over_tcp(fresh).header.rcode == 0  # served while all 256 are held
        # connections are taken in order: the hostile address kept its quota, the rest was closed
        limit = server.service.limits.max_per_client
        assert server.service.tcp_rejected - rejected == 256 - limit
        assert all(_closed_by_server(sock) for sock in held[limit:])
    finally:
        for sock in held:
            sock.close()
        server.close()


def test_a_client_over_its_limit_is_closed_and_keeps_what_it_holds() -> None:
    server = Served(lab_zones(), limits=TcpLimits(max_per_client=2, max_connections=4))
    try:
        first, second, third = (socket.create_connection((HOST, server.port), timeout=WAIT,
                                                         source_address=(HOSTILE, 0)) for _ in range(3))
        with first, second, third:
            assert _query_over_tcp(first).header.rcode == 0  # taken in order: first and second are in
            assert _closed_by_server(third)
            assert _query_over_tcp(second).header.rcode == 0
            others = [socket.create_connection((HOST, server.port), timeout=WAIT) for _ in range(3)]
            try:  # two more from another address fill the table; the one after them is refused
                assert [_query_over_tcp(s).header.rcode for s in others[:2]] == [0, 0]
                assert _closed_by_server(others[2])
            finally:
                for sock in others:
                    sock.close()
    finally:
        server.close()


def test_an_unfinished_message_times_out_sooner_than_an_idle_connection() -> None:
    server = Served(lab_zones(), limits=TcpLimits(idle_timeout=600, partial_timeout=0.2))
    try:
        with socket.create_connection((HOST, server.port), timeout=WAIT) as idle:
            assert _query_over_tcp(idle).header.rcode == 0  # a complete query, then silence
            packet = bytes(DNSRecord.question("prov.lab.example", "A").pack())
            for partial in (b"\x00", struct.pack("!H", len(packet)) + packet[:5]):
                with socket.create_connection((HOST, server.port), timeout=WAIT) as slow:
                    slow.sendall(partial)
                    assert _closed_by_server(slow)  # after the partial timeout, long before 600 s
            # the idle connection has been silent longer than the partial timeout by now
            assert _query_over_tcp(idle, SRV_HTTPS.replace("_tls", "_TLS")).header.rcode == 0
    finally:
        server.close()


def test_port_in_use_is_a_clear_error(served: Served) -> None:
    with pytest.raises(DnsServiceError, match="cannot bind"):
        served.call(start_dns(served.plan, Endpoint("dns", HOST, served.port, "udp+tcp"),
                              context(EventRecorder(), StaticDirectory())))


def test_quick_event_is_the_same_event() -> None:
    resolver = AuthoritativeResolver(lab_zones())
    (fact,) = resolver.answer(bytes(DNSRecord.question(SRV_HTTPS, "SRV").pack())).facts
    quick = fact_event("dns", "10.0.0.7:5060", PHONE, fact, 1.5, {"transport": "tcp"})
    plain = Event(1.5, "dns", "10.0.0.7:5060", PHONE, "query", f"SRV {SRV_HTTPS}", "NOERROR 1 SRV + 1 A",
                  "ok", {"transport": "tcp"})
    assert type(quick) is Event and quick == plain and repr(quick) == repr(plain)
    assert quick.to_json() == plain.to_json()
    (generic,) = events_from("dns", "10.0.0.7:5060", (fact,), 1.5)  # the one mapping, for every service
    assert fact_event("dns", "10.0.0.7:5060", None, fact, 1.5, None) == generic
