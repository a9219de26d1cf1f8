"""How the virtual phone reaches the lab: directly on a real segment, or through a loopback map.

On loopback the lab's addresses (10.42.0.1) do not exist; the phone still sees and reasons
with them (URLs, certificate checks), and this map turns (address, port) into the loopback
endpoint where `labkit up --loopback` listens. DHCP goes relay-style: the phone is its own
relay at `relay_ip`, so the server's answer comes back by unicast without root.
"""

from __future__ import annotations

import asyncio
import random
import socket
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from labkit.phone.discovery import MPP_PARAMETER_REQUEST_LIST
from labkit.protocols.dhcp.message import (
    ACK,
    BROADCAST_FLAG,
    DISCOVER,
    NAK,
    OFFER,
    REQUEST,
    DhcpDecodeError,
    Message,
    build,
    parse,
    request_message,
)

MPP_PRL = bytes(MPP_PARAMETER_REQUEST_LIST)


@dataclass(frozen=True)
class NetworkMap:
    """Where to really send what the phone addresses to (address, port)."""

    lab_addresses: frozenset[str] = frozenset()  # the kit's addresses as the lab knows them
    target: str | None = None  # None: no mapping (real segment)
    port_offset: int = 0

    def endpoint(self, address: str, port: int) -> tuple[str, int]:
        if self.target is not None and address in self.lab_addresses:
            return self.target, port + self.port_offset
        return address, port


@dataclass
class DhcpSettings:
    server: tuple[str, int]  # where DISCOVER/REQUEST go: (255.255.255.255, 67) or (127.0.0.1, 10067)
    relay_ip: str | None = None  # loopback: the phone relays itself (giaddr) and listens here
    client_port: int = 68
    interface: str | None = None  # namespace mode: the interface to broadcast on
    timeouts: tuple[float, ...] = (4.0, 8.0, 16.0)  # RFC 2131 §4.1 backoff, bounded


class _RelayDemux(asyncio.DatagramProtocol):
    """One socket for a swarm's relayed replies, handed to each phone by transaction id."""

    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Queue[Message]] = {}

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            message = parse(data)
        except DhcpDecodeError:
            return
        queue = self.waiting.get(message.xid)
        if queue is not None:
            queue.put_nowait(message)


@dataclass
class DhcpClient:
    """The phone's DHCP exchange over a shared socket (relay mode) or a broadcast socket."""

    settings: DhcpSettings
    time_scale: float = 1.0  # retransmission waits shrink with the phone's clock (not below 0.25 s)
    transport: asyncio.DatagramTransport | None = None
    demux: _RelayDemux = field(default_factory=_RelayDemux)

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        if self.settings.relay_ip is not None:
            # replies to a relay go to the server port at giaddr (RFC 2131 §4.1)
            local = (self.settings.relay_ip, self.settings.server[1])
            self.transport, _ = await loop.create_datagram_endpoint(lambda: self.demux, local_addr=local)
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        if self.settings.interface:
            sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_BINDTODEVICE", 25),
                            self.settings.interface.encode() + b"\x00")
        sock.bind(("0.0.0.0", self.settings.client_port))
        self.transport, _ = await loop.create_datagram_endpoint(lambda: self.demux, sock=sock)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def _exchange(self, message: Message, accept: set[int]) -> Message | None:
        assert self.transport is not None
        queue: asyncio.Queue[Message] = asyncio.Queue()
        self.demux.waiting[message.xid] = queue
        try:
            for timeout in self.settings.timeouts:
                timeout = max(0.25, timeout / self.time_scale)
                self.transport.sendto(build(message), self.settings.server)
                try:
                    async with asyncio.timeout(timeout):
                        while True:
                            reply = await queue.get()
                            if reply.chaddr == message.chaddr and reply.message_type in accept:
                                return reply
                except TimeoutError:
                    continue
            return None
        finally:
            self.demux.waiting.pop(message.xid, None)

    async def acquire(self, mac: bytes, hostname: str, vendor_class: str) -> tuple[Message | None, str]:
        """DISCOVER → OFFER → REQUEST → ACK with the MPP option order (reference §9.2)."""
        xid = random.getrandbits(32)
        giaddr = IPv4Address(self.settings.relay_ip) if self.settings.relay_ip else IPv4Address(0)
        hops = 1 if self.settings.relay_ip else 0
        flags = 0 if self.settings.relay_ip else BROADCAST_FLAG  # many phones share one segment
        client_id = b"\x01" + mac
        discover = request_message(DISCOVER, mac, xid, {61: client_id, 12: hostname.encode(),
                                                        60: vendor_class.encode(), 55: MPP_PRL},
                                   giaddr=giaddr, flags=flags, hops=hops)
        offer = await self._exchange(discover, {OFFER})
        if offer is None:
            return None, "no OFFER"
        server = offer.options.get(54, b"")
        request = request_message(REQUEST, mac, xid, {54: server, 61: client_id, 12: hostname.encode(),
                                                      60: vendor_class.encode(), 50: offer.yiaddr.packed,
                                                      55: MPP_PRL}, giaddr=giaddr, flags=flags, hops=hops)
        ack = await self._exchange(request, {ACK, NAK})
        if ack is None:
            return None, "no ACK"
        if ack.message_type == NAK:
            return None, "NAK"
        return ack, "ok"

    async def renew(self, mac: bytes, ip: str, server: str, hostname: str,
                    vendor_class: str) -> tuple[Message | None, str]:
        """RENEWING: unicast to the server that granted the lease, option order 53,61,12,60,55."""
        xid = random.getrandbits(32)
        relay = self.settings.relay_ip
        giaddr = IPv4Address(relay) if relay else IPv4Address(0)
        request = request_message(REQUEST, mac, xid, {61: b"\x01" + mac, 12: hostname.encode(),
                                                      60: vendor_class.encode(), 55: MPP_PRL},
                                  ciaddr=IPv4Address(ip), giaddr=giaddr, hops=1 if relay else 0)
        saved = self.settings.server
        if not relay:
            self.settings.server = (server, saved[1])  # renewals are unicast (RFC 2131 §4.4.5)
        try:
            ack = await self._exchange(request, {ACK, NAK})
        finally:
            self.settings.server = saved
        if ack is None:
            return None, "no ACK"
        return (None, "NAK") if ack.message_type == NAK else (ack, "ok")
