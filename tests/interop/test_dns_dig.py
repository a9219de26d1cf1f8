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
from collections.abc import Callable, Iterator
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
# the field's clients: dig (text output) and kdig (+json, RFC 8427), read into one shape


@dataclass
class Answer:
    text: str
    status: str
    flags: set[str]  # lowercase header flags: aa, tc, rd, ra, ...
    sections: dict[str, list[list[str]]] = field(default_factory=dict)  # ANSWER/AUTHORITY/ADDITIONAL
    transport: str = ""  # UDP or TCP, when the client says
    edns: tuple[int, str, int] | None = None  # version, flags, udp size (dig only)
    size: int = 0  # bytes received

    def records(self, section: str, rtype: str | None = None) -> list[list[str]]:
        """[name, ttl, class, type, rdata] of the section's records, of one type if given."""
        return [r for r in self.sections.get(section, []) if rtype is None or r[3] == rtype]


def parse_dig(text: str) -> Answer:
    status = re.search(r"status: (\w+)", text)
    flags = re.search(r";; flags:([^;]*);", text)
    assert status and flags, text
    answer = Answer(text, status.group(1), set(flags.group(1).split()))
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
    size = re.search(r"MSG SIZE\s+rcvd: (\d+)", text)
    answer.size = int(size.group(1)) if size else 0
    return answer


RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def parse_kdig(text: str) -> Answer:
    reply = json.loads(text)
    flags = {flag.lower() for flag in ("AA", "TC", "RD", "RA", "AD", "CD") if reply[flag]}
    answer = Answer(text, RCODES[reply["RCODE"]], flags, size=reply["msgLength"])
    for section in ("answer", "authority", "additional"):
        answer.sections[section.upper()] = [
            [rr["NAME"], str(rr["TTL"]), rr["CLASSname"], rtype, rr.get("rdata" + rtype, "")]
            for rr in reply.get(f"{section}RRs", []) if (rtype := rr["TYPEname"]) != "OPT"]
    return answer


@dataclass(frozen=True)
class Client:
    name: str  # the tool
    options: tuple[str, ...]  # always given: the server's port is added, a bounded wait, no retries
    parse: Callable[[str], Answer]
    badvers: tuple[str, ...]  # how to ask with EDNS version 1 (and see the raw BADVERS)
    tcp_mark: str  # how its text output marks an answer received over TCP


CLIENTS = [
    Client("dig", ("+tries=1", "+time=10"), parse_dig, ("+edns=1", "+noednsnegotiation"), "(TCP)"),
    Client("kdig", ("+json", "+timeout=10", "+retry=0"), parse_kdig, ("+edns=1",), "(TCP)"),
]


def run(client: Client, served: Served, *args: str, options: tuple[str, ...] | None = None) -> str:
    tool = require_tool(client.name)
    result = subprocess.run([tool, f"@{HOST}", "-p", str(served.port), *(client.options if options is None
                                                                         else options), *args],
                            capture_output=True, text=True, timeout=WAIT * 2)
    assert result.returncode == 0 or "BADVERS" in result.stdout, result.stdout + result.stderr
    return result.stdout


def ask(client: Client, served: Served, *args: str) -> Answer:
    return client.parse(run(client, served, *args))


def dig(served: Served, *args: str) -> Answer:
    return ask(CLIENTS[0], served, *args)


@pytest.fixture(params=CLIENTS, ids=lambda client: client.name)
def client(request: pytest.FixtureRequest) -> Client:
    return request.param  # type: ignore[no-any-return]


def test_srv_with_additional_a(served: Served, client: Client) -> None:
    for name, port in ((SRV_HTTPS, "443"), (SRV_HTTP, "80")):
        answer = ask(client, served, name, "SRV")
        assert answer.status == "NOERROR"
        assert "aa" in answer.flags and "ra" not in answer.flags
        (srv,) = answer.records("ANSWER", "SRV")
        assert srv[0] == name + "." and srv[4].split()[2] == port and srv[4].endswith("prov.lab.example.")
        assert answer.records("ADDITIONAL", "A") == [["prov.lab.example.", "300", "IN", "A", "10.42.0.1"]]


def test_query_becomes_an_event(served: Served, client: Client) -> None:
    ask(client, served, SRV_HTTPS, "SRV")
    event = served.events.events[-1]  # emitted before the answer left, so it is there already
    assert isinstance(event, Event)
    assert (event.service, event.action, event.phone) == ("dns", "query", PHONE)
    assert event.request == f"SRV {SRV_HTTPS}"
    assert (event.answer, event.result) == ("NOERROR 1 SRV + 1 A", "ok")
    assert event.client is not None and event.client.startswith(f"{HOST}:")
    assert json.loads(event.to_json())["request"] == event.request


def test_nodata_and_nxdomain_carry_the_soa(served: Served, client: Client) -> None:
    nodata = ask(client, served, "prov.lab.example", "AAAA")
    assert nodata.status == "NOERROR" and nodata.records("ANSWER") == [] and "aa" in nodata.flags
    assert [r[3] for r in nodata.records("AUTHORITY")] == ["SOA"]
    assert nodata.records("AUTHORITY")[0][:2] == ["lab.example.", "300"]
    ent = ask(client, served, "_tls.lab.example", "A")  # empty non-terminal
    assert ent.status == "NOERROR" and [r[3] for r in ent.records("AUTHORITY")] == ["SOA"]
    missing = ask(client, served, "nope.lab.example", "SRV")
    assert missing.status == "NXDOMAIN" and "aa" in missing.flags
    assert [r[3] for r in missing.records("AUTHORITY")] == ["SOA"]
    assert served.events.events[-1].result == "nxdomain"


def test_refused_outside_the_lab(served: Served, client: Client) -> None:
    for name in ("www.example.com", "example.net"):
        answer = ask(client, served, name, "A")
        assert answer.status == "REFUSED" and "aa" not in answer.flags and "ra" not in answer.flags
        assert served.events.events[-1].result == "refused"


def test_sinkholes(served: Served, client: Client) -> None:
    for name in ("activate.cisco.com", "eu.activate.cisco.com", "x.webapps.cisco.com",
                 "x.activation.webex.com"):
        answer = ask(client, served, name, "A")
        assert answer.status == "NXDOMAIN" and "aa" in answer.flags, name
        (soa,) = answer.records("AUTHORITY", "SOA")
        assert name.endswith(soa[0].rstrip("."))
    for name in ("cloud.example", "a.b.cloud.example"):
        answer = ask(client, served, name, "A")
        assert answer.status == "NOERROR"
        assert answer.records("ANSWER", "A") == [[name + ".", "300", "IN", "A", "10.42.0.9"]]
        answer = ask(client, served, name, "AAAA")
        assert answer.status == "NOERROR" and answer.records("ANSWER") == []


def test_several_queries_on_one_tcp_connection(served: Served, client: Client) -> None:
    before = served.service.tcp_connections
    text = run(client, served, "+tcp", "+keepopen", SRV_HTTPS, "SRV", "prov.lab.example", "A",
               "nope.lab.example", "A", options=tuple(o for o in client.options if o != "+json"))
    assert re.findall(r"status: (\w+)", text) == ["NOERROR", "NOERROR", "NXDOMAIN"]
    assert all("aa" in flags.split() for flags in re.findall(r"(?i);; flags: ([^;]*);", text))
    assert text.count(client.tcp_mark) == 3
    assert served.service.tcp_connections - before == 1
    assert served.events.events[-1].detail == {"transport": "tcp"}


def test_truncation_without_edns(served: Served, client: Client) -> None:
    answer = ask(client, served, "+noedns", "+ignore", "big.test.example", "A")
    assert "tc" in answer.flags and "aa" in answer.flags
    assert answer.records("ANSWER") == [] and answer.records("ADDITIONAL") == [] and answer.edns is None
    assert "TC" in served.events.events[-1].answer


def test_bufsize_and_tcp(served: Served, client: Client) -> None:
    roomy = ask(client, served, "+bufsize=4096", "big.test.example", "A")  # 700 bytes fit in UDP
    assert "tc" not in roomy.flags and len(roomy.records("ANSWER")) == 40
    tight = ask(client, served, "+bufsize=600", "+ignore", "big.test.example", "A")
    assert "tc" in tight.flags and tight.records("ANSWER") == [] and tight.size <= 600
    capped = ask(client, served, "+bufsize=4096", "+ignore", "huge.test.example", "A")  # 1,660 > our 1232 cap
    assert "tc" in capped.flags and capped.size <= 1232
    tcp = ask(client, served, "+tcp", "huge.test.example", "A")
    assert "tc" not in tcp.flags and len(tcp.records("ANSWER", "A")) == 100


def test_badvers(served: Served, client: Client) -> None:
    text = run(client, served, *client.badvers, "prov.lab.example",
               options=tuple(o for o in client.options if o != "+json"))
    assert "status: BADVERS" in text
    assert served.events.events[-1].result == "badvers"


# dig only: what kdig's JSON does not show (EDNS, the transport) or where dig decides (fallback)


def test_dig_falls_back_to_tcp_on_truncation(served: Served) -> None:
    retried = dig(served, "+noedns", "big.test.example", "A")
    assert retried.transport == "TCP" and len(retried.records("ANSWER", "A")) == 40
    full = dig(served, "+bufsize=4096", "huge.test.example", "A")
    assert full.transport == "TCP" and len(full.records("ANSWER", "A")) == 100


def test_dig_edns_echo(served: Served) -> None:
    assert dig(served, "+bufsize=4096", "big.test.example", "A").edns == (0, "", 1232)
    assert dig(served, "+bufsize=600", "+ignore", "big.test.example", "A").edns is not None
    assert dig(served, "+dnssec", "prov.lab.example", "A").edns == (0, "do", 1232)
    badvers = dig(served, "+edns=1", "+noednsnegotiation", "prov.lab.example", "A")
    assert badvers.status == "BADVERS" and badvers.records("ANSWER") == []
    assert badvers.edns is not None and badvers.edns[0] == 0  # our OPT says version 0


def test_dig_any_and_letter_case(served: Served) -> None:
    answer = dig(served, SRV_HTTPS, "ANY")
    assert [r[3] for r in answer.records("ANSWER")] == ["SRV"]
    mixed = "_CiscoProv-HTTPS._TLS.lab.EXAMPLE"
    answer = dig(served, mixed, "SRV")
    assert answer.status == "NOERROR" and answer.records("ANSWER", "SRV")[0][0] == mixed + "."


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
