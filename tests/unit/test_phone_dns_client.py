"""The phone's DNS client: its queries are dnslib's bytes, its reading of an answer is dnslib's
(kept per answer), and it still retransmits, ignores strangers and gives up as before."""

from __future__ import annotations

import asyncio
import random
import socket

import pytest
from dnslib import AAAA, QTYPE, RCODE, RR, SRV, A, DNSRecord

from labkit.phone import clients
from labkit.phone.clients import dns_query, dns_question, read_answer
from labkit.phone.discovery import SrvTarget
from labkit.phone.effects import DnsAnswer

NAMES = ["prov.lab.example", "_ciscoprov-http._tcp.lab.example", "Mixed.Case.Example.", "a",
         "with\\.dot.example", "xn--bcher-kva.example", "bücher.example", "x" * 63 + ".example"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("qtype", ["A", "SRV"])
def test_query_bytes_are_dnslibs(name: str, qtype: str) -> None:
    for _ in range(2):  # the second one comes from the kept template
        random.seed(7)
        ours = dns_question(name, qtype)
        random.seed(7)
        reference = DNSRecord.question(name, qtype)
        reference.header.rd = 0
        assert ours == reference.pack()


def _reference(data: bytes) -> DnsAnswer:
    """What the phone read from an answer before answers were kept: dnslib, every time."""
    try:
        reply = DNSRecord.parse(data)
    except Exception:
        return DnsAnswer("FORMERR")
    srv = tuple(SrvTarget(rr.rdata.priority, rr.rdata.weight, rr.rdata.port, str(rr.rdata.target))
                for rr in reply.rr if rr.rtype == QTYPE.SRV)
    rcode = RCODE.get(reply.header.rcode, str(reply.header.rcode))
    return DnsAnswer(str(rcode), srv, tuple(str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A))


def _answers() -> list[bytes]:
    q = DNSRecord.question("prov.lab.example")
    a = q.reply()
    a.add_answer(RR("prov.lab.example", rdata=A("10.42.0.1")), RR("prov.lab.example", rdata=A("10.42.0.2")))
    srv = DNSRecord.question("_ciscoprov-http._tcp.lab.example", "SRV").reply()
    name = "_ciscoprov-http._tcp.lab.example"
    srv.add_answer(RR(name, QTYPE.SRV, rdata=SRV(10, 5, 80, "prov.lab.example")),
                   RR(name, QTYPE.SRV, rdata=SRV(20, 0, 8080, "b.lab.example")))
    mixed = q.reply()
    mixed.add_answer(RR("prov.lab.example", QTYPE.AAAA, rdata=AAAA("::1")),
                     RR("prov.lab.example", rdata=A("10.42.0.9")))
    nx = q.reply()
    nx.header.rcode = 3
    odd = q.reply()
    odd.header.rcode = 11  # no name in dnslib's table
    packed = [a.pack(), srv.pack(), mixed.pack(), nx.pack(), odd.pack()]
    ugly = [b"", b"\x12", packed[0][:-3], packed[1][:20], packed[0] + b"\x00\x00",
            packed[1][:12] + b"\xc0\x0c" * 8, b"\x00" * 12, b"\xff" * 40]
    return packed + ugly


@pytest.mark.parametrize("data", _answers())
def test_reading_an_answer_is_dnslibs(data: bytes) -> None:
    clients._answers.clear()
    first = read_answer(data)
    again = read_answer(b"\xab\xcd" + data[2:])  # another id: the kept reading
    assert first == again == _reference(data)


def test_kept_answers_are_bounded() -> None:
    clients._answers.clear()
    base = _answers()[0]
    for n in range(clients.ANSWER_CACHE + 10):
        read_answer(base + n.to_bytes(4, "big"))  # trailing bytes: a distinct key each
    assert len(clients._answers) <= clients.ANSWER_CACHE


class _Server(asyncio.DatagramProtocol):
    """Answers the second transmission only, after a stranger with another id."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # 3.11: not a DatagramTransport subclass

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.seen.append(data)
        if len(self.seen) < 2:
            return
        assert self.transport is not None
        reply = DNSRecord.parse(data).reply()
        reply.add_answer(RR("prov.lab.example", rdata=A("10.42.0.7")))
        stranger = bytes([data[0] ^ 0xFF, data[1]]) + reply.pack()[2:]
        self.transport.sendto(stranger, addr)
        self.transport.sendto(reply.pack(), addr)


def test_retransmits_ignores_strangers_and_answers() -> None:
    async def go() -> tuple[DnsAnswer, list[bytes]]:
        loop = asyncio.get_running_loop()
        server = _Server()
        transport, _ = await loop.create_datagram_endpoint(lambda: server, local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        try:
            answer = await dns_query(("127.0.0.1", port), "prov.lab.example", "A", timeout=0.05)
        finally:
            transport.close()
        return answer, server.seen

    answer, seen = asyncio.run(go())
    assert answer == DnsAnswer("NOERROR", (), ("10.42.0.7",))
    assert len(seen) == 2 and seen[0] == seen[1]  # the same bytes both times


def test_silence_is_a_timeout_after_every_try() -> None:
    async def go() -> tuple[DnsAnswer, int]:
        quiet = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        quiet.bind(("127.0.0.1", 0))
        quiet.setblocking(False)
        try:
            answer = await dns_query(quiet.getsockname(), "prov.lab.example", "SRV", timeout=0.01, tries=3)
            count = 0
            while True:
                try:
                    quiet.recv(512)
                except BlockingIOError:
                    break
                count += 1
        finally:
            quiet.close()
        return answer, count

    answer, count = asyncio.run(go())
    assert answer == DnsAnswer("TIMEOUT")
    assert count == 3


def test_refused_port_times_out() -> None:
    """Nothing listens (ICMP port unreachable): the phone waits its tries out, as before."""
    spare = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    spare.bind(("127.0.0.1", 0))
    address = spare.getsockname()
    spare.close()
    answer = asyncio.run(dns_query(address, "prov.lab.example", "A", timeout=0.01, tries=2))
    assert answer == DnsAnswer("TIMEOUT")


def test_an_ipv6_server_is_asked_too() -> None:
    async def go() -> DnsAnswer:
        loop = asyncio.get_running_loop()
        server = _Server()
        server.seen.append(b"")  # answer the first transmission
        transport, _ = await loop.create_datagram_endpoint(lambda: server, local_addr=("::1", 0))
        try:
            port = transport.get_extra_info("sockname")[1]
            return await dns_query(("::1", port), "prov.lab.example", "A", timeout=5)
        finally:
            transport.close()

    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    try:
        answer = asyncio.run(go())
    except OSError as exc:  # ::1 not configured (a container without IPv6)
        pytest.skip(f"no IPv6 loopback: {exc}")
    assert answer == DnsAnswer("NOERROR", (), ("10.42.0.7",))
