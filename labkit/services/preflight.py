"""Another DHCP server on the lab segment: found before serving, and watched for while serving.

Before serving, `probe` broadcasts a DISCOVER and an INIT-REBOOT REQUEST from a random locally
administered MAC and listens (`lab.rival_dhcp_listen`, 6 s by default: dnsmasq pings an address
for about 3 s before it offers it). Any OFFER, ACK or NAK names a server that would race ours
for every phone; the kit refuses to start unless told `--allow-other-dhcp`. A server that only
answers REQUESTs is caught by the REQUEST.

While serving, `RivalWatch` hears every OFFER/ACK another server sends on the lab interface (its
replies go to UDP port 68 or are broadcast, so the DHCP socket never sees them): a packet socket
on that interface, with a kernel filter that passes only UDP 67 -> 68.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import random
import select
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address

from labkit.errors import LabkitError
from labkit.protocols.dhcp.message import (
    ACK,
    BROADCAST_FLAG,
    DISCOVER,
    MESSAGE_TYPES,
    NAK,
    OFFER,
    REQUEST,
    DhcpDecodeError,
    Message,
    build,
    parse,
    request_message,
)
from labkit.services.dhcp import ethernet_frame

ETH_P_IP = 0x0800
PACKET_OUTGOING = 4  # what the kernel says about frames this host sent
SO_ATTACH_FILTER = 26
WATCH_BATCH = 64  # frames read per wake-up


@dataclass(frozen=True)
class RivalServer:
    server_id: str  # option 54, or the IP source address
    mac: str  # the Ethernet source of its reply
    offered: str  # the yiaddr of its reply
    kind: str = "OFFER"  # OFFER, ACK or NAK
    client: str = ""  # the chaddr it answered


class PreflightError(LabkitError):
    """The preflight could not probe the segment."""


def _mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def probe(interface: str, *, listen: float = 6.0, ask_for: IPv4Address | None = None, server_port: int = 67,
          client_port: int = 68, mac: bytes | None = None,
          vendor_class: bytes = b"labkit-preflight") -> list[RivalServer]:
    """Broadcast a DISCOVER (and, with `ask_for`, an INIT-REBOOT REQUEST for that address) on
    `interface`; every server that answered within `listen` seconds (needs root). `mac` and
    `vendor_class` ask as a given client (a server that answers only known phones)."""
    if os.geteuid() != 0:
        raise PreflightError("the DHCP preflight needs root (a packet socket on the interface)")
    probe_mac = mac or bytes([0x02, *random.randbytes(5)])  # locally administered: never a real NIC
    xid = random.getrandbits(32)
    asked = {55: bytes([1, 3, 6, 15, 66, 150]), 60: vendor_class}
    messages = [request_message(DISCOVER, probe_mac, xid, asked, flags=BROADCAST_FLAG)]
    if ask_for is not None:
        messages.append(request_message(REQUEST, probe_mac, xid, {**asked, 50: ask_for.packed},
                                        flags=BROADCAST_FLAG))
    rivals: dict[str, RivalServer] = {}
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP)) as sock:
        sock.bind((interface, 0))
        for message in messages:
            sock.send(ethernet_frame(b"\xff" * 6, probe_mac, IPv4Address(0), IPv4Address("255.255.255.255"),
                                     client_port, server_port, build(message)))
        deadline = time.monotonic() + listen
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                break
            rival = rival_in(sock.recv(65535), client_port=client_port, xid=xid)
            if rival is not None:
                rivals.setdefault(rival.mac, rival)
    return list(rivals.values())


def _dhcp_reply(packet: bytes, client_port: int) -> tuple[Message, str, str] | None:
    """(message, IP source, Ethernet source) of a DHCP reply to `client_port` in an Ethernet frame."""
    if len(packet) < 14 + 20 + 8 or packet[12:14] != b"\x08\x00" or packet[14 + 9] != 17:
        return None
    udp = 14 + (packet[14] & 0x0F) * 4
    if len(packet) < udp + 8:
        return None
    _, dst_port = struct.unpack_from("!HH", packet, udp)
    if dst_port != client_port:
        return None
    try:
        message = parse(packet[udp + 8:])
    except DhcpDecodeError:
        return None
    return message, str(IPv4Address(packet[14 + 12:14 + 16])), _mac_text(packet[6:12])


def rival_in(packet: bytes, *, client_port: int = 68, xid: int | None = None,
             kinds: tuple[int, ...] = (OFFER, ACK, NAK),
             ours: IPv4Address | None = None) -> RivalServer | None:
    """The server behind this frame when it is another server's reply: of type `kinds`, to our
    probe's `xid` when given, not from our own server identifier `ours`."""
    found = _dhcp_reply(packet, client_port)
    if found is None:
        return None
    message, source_ip, source_mac = found
    if message.op != 2 or message.message_type not in kinds or (xid is not None and message.xid != xid):
        return None
    server_id = message.ip_option(54)
    if ours is not None and (server_id or IPv4Address(source_ip)) == ours:
        return None
    kind = MESSAGE_TYPES.get(message.message_type or 0, "?")
    return RivalServer(str(server_id or source_ip), source_mac, str(message.yiaddr), kind, message.mac)


def _udp_filter(src_port: int, dst_port: int) -> bytes:
    """Classic BPF: IPv4, UDP, first fragment, from `src_port` to `dst_port`; all else dropped."""
    program = [
        (0x28, 0, 0, 12), (0x15, 0, 10, ETH_P_IP),  # ethertype
        (0x30, 0, 0, 23), (0x15, 0, 8, 17),  # protocol UDP
        (0x28, 0, 0, 20), (0x45, 6, 0, 0x1FFF),  # not a later fragment
        (0xB1, 0, 0, 14),  # x = IP header length
        (0x48, 0, 0, 14), (0x15, 0, 3, src_port),
        (0x48, 0, 0, 16), (0x15, 0, 1, dst_port),
        (0x06, 0, 0, 0xFFFF), (0x06, 0, 0, 0),
    ]
    return b"".join(struct.pack("HBBI", *op) for op in program)


def _attach_filter(sock: socket.socket, code: bytes) -> None:
    buffer = ctypes.create_string_buffer(code)
    program = struct.pack("HP", len(code) // 8, ctypes.addressof(buffer))
    with contextlib.suppress(OSError):  # without it, every frame is parsed and most dropped
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, program)


class RivalWatch:
    """Hears the OFFERs and ACKs of other DHCP servers on `interface` while the kit serves."""

    def __init__(self, interface: str, ours: IPv4Address, on_rival: Callable[[RivalServer], None], *,
                 server_port: int = 67, client_port: int = 68) -> None:
        self.ours = ours
        self.on_rival = on_rival
        self.client_port = client_port
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
        try:
            _attach_filter(self.sock, _udp_filter(server_port, client_port))
            self.sock.bind((interface, 0))
            self.sock.setblocking(False)
        except OSError:
            self.sock.close()
            raise

    def start(self) -> None:
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._readable)

    def _readable(self) -> None:
        for _ in range(WATCH_BATCH):
            try:
                packet, address = self.sock.recvfrom(65535)
            except OSError:
                return
            if address[2] == PACKET_OUTGOING:
                continue  # our own replies
            rival = rival_in(packet, client_port=self.client_port, kinds=(OFFER, ACK), ours=self.ours)
            if rival is not None:
                self.on_rival(rival)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, ValueError):
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()
