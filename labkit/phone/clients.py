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


def _local(local_ip: str | None) -> tuple[str, int] | None:
    return (local_ip, 0) if local_ip else None


async def dns_query(server: tuple[str, int], name: str, qtype: str, *, timeout: float = 2.0,
                    tries: int = 3, local_ip: str | None = None) -> DnsAnswer:
    """One question over UDP, retransmitted with exponential backoff (RFC 1123 §6.1.3.3): waits
    of `timeout`, then twice, then four times as long; an answer to any transmission counts."""
    query = DNSRecord.question(name, qtype)
    query.header.rd = 0
    wire = query.pack()  # the same bytes every transmission (packed once: dnslib's pack is not cheap)
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(_Datagrams, remote_addr=server,
                                                           local_addr=_local(local_ip))
    try:
        for attempt in range(tries):
            transport.sendto(wire)
            try:
                async with asyncio.timeout(timeout * 2 ** attempt):
                    while True:
                        data, _addr = await proto.queue.get()
                        if data[:2] == wire[:2]:
                            break
            except TimeoutError:
                continue
            try:
                reply = DNSRecord.parse(data)
            except Exception:  # dnslib raises assorted errors on bad bytes
                return DnsAnswer("FORMERR")
            rcode = RCODE.get(reply.header.rcode, str(reply.header.rcode))
            srv = tuple(SrvTarget(rr.rdata.priority, rr.rdata.weight, rr.rdata.port, str(rr.rdata.target))
                        for rr in reply.rr if rr.rtype == QTYPE.SRV)
            addresses = tuple(str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A)
            return DnsAnswer(str(rcode), srv, addresses)
        return DnsAnswer("TIMEOUT")
    finally:
        transport.close()


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
