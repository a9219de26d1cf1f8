"""The virtual phone's network clients: DNS, TFTP and HTTP(S) (`labkit.phone.http_client`), each
returning effect results."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket

from dnslib import QTYPE, RCODE, DNSRecord

from labkit.phone.discovery import SrvTarget
from labkit.phone.effects import DnsAnswer, FetchResult
from labkit.phone.http_client import HttpClient
from labkit.phone.loss import CURRENT, Loss, lossy_transport
from labkit.protocols.result import Result
from labkit.protocols.tftp.client import ClientOptions, ClientSession

TFTP_BLKSIZE = 1468  # fits one Ethernet frame; MPP's own choice is undocumented (reference §7)
TFTP_TRIES = 4
__all__ = ["HttpClient", "dns_query", "pick_address", "tftp_get"]


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.refused = False
        self.loss: Loss | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # the phone's own lossy link (a bench knob): its sends and receives are dropped
        self.loss = CURRENT.get()
        if self.loss is not None and isinstance(transport, asyncio.DatagramTransport):
            lossy_transport(transport, self.loss)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.loss is not None and self.loss.drops():
            return
        self.queue.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable: nothing listens there, as a phone's IP stack would learn too
        if isinstance(exc, ConnectionRefusedError):
            self.refused = True
            self.queue.put_nowait((b"", ("", 0)))


QUESTION_CACHE = 256  # (name, type) -> the packed question: a swarm asks for a handful of names
ANSWER_CACHE = 1024  # answers (less their id) -> what the phone reads from them
_questions: dict[tuple[str, str], bytes] = {}
_answers: dict[bytes, DnsAnswer] = {}


def dns_question(name: str, qtype: str) -> bytes:
    """The query the phone sends: dnslib's `DNSRecord.question(name, qtype)` with RD clear,
    packed. dnslib packs each (name, type) once; each query then takes a fresh random id
    (as dnslib's header does: `random.randint(0, 65535)`), so the bytes are dnslib's."""
    template = _questions.get((name, qtype))
    if template is None:
        query = DNSRecord.question(name, qtype)
        query.header.rd = 0
        template = bytes(query.pack())
        if len(_questions) >= QUESTION_CACHE:
            _questions.clear()
        _questions[(name, qtype)] = template
        return template  # with the id dnslib drew for it
    return random.randint(0, 65535).to_bytes(2, "big") + template[2:]


def read_answer(data: bytes) -> DnsAnswer:
    """What the phone reads from an answer (dnslib parses it). The id is the one byte pair
    that differs between the answers a swarm gets for a name, and it is not read here, so
    the result is kept by the rest of the bytes: the same answer is parsed once."""
    key = bytes(data[2:])
    known = _answers.get(key)
    if known is not None:
        return known
    try:
        reply = DNSRecord.parse(data)
    except Exception:  # dnslib raises assorted errors on bad bytes
        answer = DnsAnswer("FORMERR")
    else:
        rcode = RCODE.get(reply.header.rcode, str(reply.header.rcode))
        srv = tuple(SrvTarget(rr.rdata.priority, rr.rdata.weight, rr.rdata.port, str(rr.rdata.target))
                    for rr in reply.rr if rr.rtype == QTYPE.SRV)
        addresses = tuple(str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A)
        answer = DnsAnswer(str(rcode), srv, addresses)
    if len(_answers) >= ANSWER_CACHE:
        _answers.clear()
    _answers[key] = answer
    return answer


def _query_socket(server: tuple[str, int], local_ip: str | None) -> socket.socket:
    """A new connected UDP socket per query, as before; no asyncio transport around it (one
    question and one answer do not need its protocol, queue and buffers)."""
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        if local_ip:
            sock.bind((local_ip, 0))
        sock.connect(server)
    except OSError:
        sock.close()
        raise
    return sock


async def _receive(loop: asyncio.AbstractEventLoop, sock: socket.socket, query_id: bytes,
                   loss: Loss | None) -> bytes:
    """The next datagram whose id is the query's (others, and ICMP errors, are ignored: the
    query then times out, as it did)."""
    while True:
        try:
            data = await loop.sock_recv(sock, 65535)
        except ConnectionRefusedError:
            continue
        if loss is not None and loss.drops():
            continue
        if data[:2] == query_id:
            return data


async def dns_query(server: tuple[str, int], name: str, qtype: str, *, timeout: float = 2.0,
                    tries: int = 3, local_ip: str | None = None) -> DnsAnswer:
    """One question over UDP, retransmitted with exponential backoff (RFC 1123 §6.1.3.3): waits
    of `timeout`, then twice, then four times as long; an answer to any transmission counts."""
    wire = dns_question(name, qtype)  # the same bytes every transmission
    loop = asyncio.get_running_loop()
    loss = CURRENT.get()  # the phone's own lossy link (a bench knob)
    sock = _query_socket(server, local_ip)
    try:
        for attempt in range(tries):
            if loss is None or not loss.drops():
                with contextlib.suppress(OSError):  # as the transport did: reported, not raised
                    sock.send(wire)
            try:
                async with asyncio.timeout(timeout * 2 ** attempt):
                    data = await _receive(loop, sock, wire[:2], loss)
            except TimeoutError:
                continue
            return read_answer(data)
        return DnsAnswer("TIMEOUT")
    finally:
        sock.close()


async def tftp_get(server: tuple[str, int], path: str, *, timeout: float = 2.0,
                   blksize: int = TFTP_BLKSIZE, local_ip: str | None = None) -> FetchResult:
    """RRQ with blksize and tsize; error 1 maps to 404, other errors to 403, silence to None.

    A thin transport around the sans-IO `ClientSession`: it moves datagrams and keeps the one
    retransmission timer; every protocol decision is the session's."""
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(_Datagrams, local_addr=(local_ip or "0.0.0.0", 0))
    sock = transport.get_extra_info("socket")
    if sock is not None:  # Linux: report ICMP errors on this unconnected socket too
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_RECVERR", 11), 1)
    session = ClientSession(path, ClientOptions(blksize=blksize, timeout=timeout, retries=TFTP_TRIES - 1))
    try:
        result = session.start()
        while not _tftp_apply(transport, server, result):
            try:
                async with asyncio.timeout(_tftp_wait(result, timeout)):
                    data, addr = await proto.queue.get()
            except TimeoutError:
                result = session.expire()
                continue
            if proto.refused and not data:
                return FetchResult(None, error="TFTP: connection refused (nothing listens on that port)")
            result = session.receive(data, addr)
        if session.status == 200:
            return FetchResult(200, session.content)
        return FetchResult(session.status, error=session.error)
    finally:
        transport.close()


def _tftp_apply(transport: asyncio.DatagramTransport, server: tuple[str, int], result: Result) -> bool:
    """Send what the session asks; True when it is over."""
    for datagram in result.send:
        transport.sendto(datagram.data, datagram.to or server)
    return result.done


def _tftp_wait(result: Result, timeout: float) -> float:
    return next((t.after for t in result.timers if t.after is not None), timeout)


def pick_address(addresses: tuple[str, ...]) -> str:
    """The phone iterates A records until one answers (reference §2); start with one at random."""
    return random.choice(addresses)
