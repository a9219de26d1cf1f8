"""How the virtual phone reaches the lab: directly on a real segment, or through a loopback map.

On loopback the lab's addresses (10.42.0.1) do not exist; the phone still sees and reasons
with them (URLs, certificate checks), and this map turns (address, port) into the loopback
endpoint where `labkit up --loopback` listens. DHCP goes relay-style: the phone is its own
relay at `relay_ip`, so the server's answer comes back by unicast without root.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import subprocess
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address

from labkit.phone.discovery import MPP_PARAMETER_REQUEST_LIST
from labkit.phone.effects import DhcpTransmit
from labkit.phone.loss import Loss
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
class InterfaceAddresses:
    """The leased addresses a run puts on the phones' interface, and takes off again at its end.

    An address already there (a run stopped by SIGKILL, or put there by hand) is used as it is
    and left alone: only what this run added is removed."""

    interface: str
    added: list[str] = field(default_factory=list)

    async def add(self, address: str) -> None:
        process = await asyncio.create_subprocess_exec(
            "ip", "addr", "add", address, "dev", self.interface,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, stderr = await process.communicate()
        if process.returncode == 0:
            self.added.append(address)
            return
        text = stderr.decode(errors="replace").strip()
        # older iproute2: "RTNETLINK answers: File exists"; newer: "Error: ipv4: Address already assigned."
        if "File exists" not in text and "already assigned" not in text:
            raise OSError(f"ip addr add {address} dev {self.interface}: {text}")

    def remove_all(self) -> None:
        """Synchronous on purpose: it also runs while the process is being stopped."""
        while self.added:
            address = self.added.pop()
            subprocess.run(["ip", "addr", "del", address, "dev", self.interface], capture_output=True,
                           timeout=30, check=False)


@dataclass
class DhcpSettings:
    server: tuple[str, int]  # where DISCOVER/REQUEST go: (255.255.255.255, 67) or (127.0.0.1, 10067)
    relay_ip: str | None = None  # loopback: the phone relays itself (giaddr) and listens here
    client_port: int = 68
    interface: str | None = None  # namespace mode: the interface to broadcast on


class _RelayDemux(asyncio.DatagramProtocol):
    """One socket for a swarm's replies, handed to each phone by transaction id."""

    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Queue[Message]] = {}
        self.unclaimed = 0  # replies for no waiting transaction (late, or for another client)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            message = parse(data)
        except DhcpDecodeError:
            return
        queue = self.waiting.get(message.xid)
        if queue is None:
            self.unclaimed += 1
            return
        queue.put_nowait(message)


ACCEPT = {"DISCOVER": {OFFER}, "REQUEST": {ACK, NAK}, "RENEW": {ACK, NAK}}
# a swarm's replies arrive in bursts (the server answers a batch once its leases are on disk):
# with the default 208 KiB (~90 replies) a 2000-phone storm lost 461 of them here
RECEIVE_BUFFER = 4 << 20


@dataclass(frozen=True)
class Identity:
    """What a phone says about itself in every DHCP message."""

    mac: bytes
    hostname: str
    vendor_class: str

    def options(self) -> dict[int, bytes]:
        return {61: b"\x01" + self.mac, 12: self.hostname.encode(), 60: self.vendor_class.encode()}


@dataclass
class DhcpClient:
    """Moves a swarm's DHCP messages over one shared socket (relay mode) or a broadcast socket.

    The phone core decides what to send and when to send it again (`labkit.phone.dhcp`); this
    only builds the message, sends it and waits for what comes back for its xid."""

    settings: DhcpSettings
    transport: asyncio.DatagramTransport | None = None
    demux: _RelayDemux = field(default_factory=_RelayDemux)
    _claim: socket.socket | None = None

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        if self.settings.relay_ip is not None:
            sock = self._relay_socket()
        else:
            self._claim_segment()
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            if self.settings.interface:
                sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_BINDTODEVICE", 25),
                                self.settings.interface.encode() + b"\x00")
            sock.bind(("0.0.0.0", self.settings.client_port))
        for option in (getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF):  # FORCE: root only
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, RECEIVE_BUFFER)
                break
            except OSError:
                continue
        self.transport, _ = await loop.create_datagram_endpoint(lambda: self.demux, sock=sock)

    def _claim_segment(self) -> None:
        """One swarm per segment and client port. The port is shared (SO_REUSEADDR, beside a
        system DHCP client), but a second swarm would take the first one's unicast replies: an
        abstract Unix socket (per network namespace, gone with its process, even on SIGKILL)
        says whether another swarm is there."""
        name = f"\0labkit-simulate/{self.settings.interface or '*'}/{self.settings.client_port}"
        claim = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            claim.bind(name)
        except OSError:
            claim.close()
            where = f"{self.settings.interface or 'this host'}, port {self.settings.client_port}"
            raise OSError(errno.EADDRINUSE, "another `labkit simulate` already listens for DHCP replies on "
                          + where) from None
        self._claim = claim

    def _relay_socket(self) -> socket.socket:
        """Replies to a relay go to the server port at giaddr (RFC 2131 §4.1). On loopback any
        127.x address will do: when another swarm holds this one, take the next free one."""
        relay, port = self.settings.relay_ip, self.settings.server[1]
        assert relay is not None
        candidates = [relay]
        if relay.startswith("127."):
            base = int(IPv4Address(relay))
            candidates += [str(IPv4Address(base + n)) for n in range(1, 64)
                           if str(IPv4Address(base + n)) != self.settings.server[0]]
        for address in candidates:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind((address, port))
            except OSError as exc:
                sock.close()
                if exc.errno != errno.EADDRINUSE or address == candidates[-1]:
                    raise OSError(exc.errno, f"cannot listen for DHCP replies on {address}:{port}: "
                                  f"{exc.strerror} (is another `labkit simulate` using this lab?)") from None
                continue
            self.settings.relay_ip = address
            return sock
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if self._claim is not None:
            self._claim.close()

    def message(self, effect: DhcpTransmit, who: Identity) -> tuple[Message, tuple[str, int]]:
        """The message `effect` stands for, and where it goes (MPP option order, reference §9.2)."""
        relay = self.settings.relay_ip
        giaddr = IPv4Address(relay) if relay else IPv4Address(0)
        hops = 1 if relay else 0
        flags = 0 if relay else BROADCAST_FLAG  # many phones share one segment
        to = self.settings.server
        if effect.kind == "DISCOVER":
            options = {**who.options(), 55: MPP_PRL}
            message = request_message(DISCOVER, who.mac, effect.xid, options, giaddr=giaddr, flags=flags,
                                      hops=hops)
        elif effect.kind == "REQUEST":
            assert effect.offer is not None
            server = IPv4Address(effect.offer.server).packed if effect.offer.server else b""
            options = {54: server, **who.options(), 50: IPv4Address(effect.offer.ip).packed, 55: MPP_PRL}
            message = request_message(REQUEST, who.mac, effect.xid, options, giaddr=giaddr, flags=flags,
                                      hops=hops)
        else:  # RENEWING: unicast to the server that granted the lease, options 53,61,12,60,55
            assert effect.lease is not None
            message = request_message(REQUEST, who.mac, effect.xid, {**who.options(), 55: MPP_PRL},
                                      ciaddr=IPv4Address(effect.lease.ip), giaddr=giaddr, hops=hops)
            if not relay and effect.lease.server:
                to = (effect.lease.server, to[1])  # RFC 2131 §4.4.5
        return replace(message, secs=min(effect.secs, 0xFFFF)), to

    async def transmit(self, effect: DhcpTransmit, who: Identity, wait: float,
                       loss: Loss | None = None) -> Message | None:
        """Send (or resend) `effect`'s message; the first acceptable answer within `wait` wall
        seconds. Answers to earlier transmissions of the same xid count: call `forget(xid)` when
        the phone is done with a transaction."""
        assert self.transport is not None
        message, to = self.message(effect, who)
        queue = self.demux.waiting.setdefault(message.xid, asyncio.Queue())
        if loss is None or not loss.drops():
            self.transport.sendto(build(message), to)
        try:
            async with asyncio.timeout(wait):
                while True:
                    reply = await queue.get()
                    if loss is not None and loss.drops():
                        continue
                    if reply.chaddr == message.chaddr and reply.message_type in ACCEPT[effect.kind]:
                        return reply
        except TimeoutError:
            return None

    def forget(self, xid: int) -> None:
        self.demux.waiting.pop(xid, None)
