"""Before serving DHCP on a segment: is another DHCP server already answering there?

Broadcast one DISCOVER on the interface from a random locally administered MAC and listen
for about two seconds. Any OFFER names a server that would race ours for every phone; the kit
refuses to start unless told `--allow-other-dhcp`.
"""

from __future__ import annotations

import os
import random
import select
import socket
import struct
import time
from dataclasses import dataclass
from ipaddress import IPv4Address

from labkit.errors import LabkitError
from labkit.protocols.dhcp.message import (
    BROADCAST_FLAG,
    DISCOVER,
    OFFER,
    DhcpDecodeError,
    build,
    parse,
    request_message,
)
from labkit.services.dhcp import ethernet_frame

ETH_P_IP = 0x0800


@dataclass(frozen=True)
class RivalServer:
    server_id: str  # option 54, or the IP source address
    mac: str  # the Ethernet source of the OFFER
    offered: str


class PreflightError(LabkitError):
    """The preflight could not probe the segment."""


def _mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def probe(interface: str, *, listen: float = 2.0, server_port: int = 67,
          client_port: int = 68) -> list[RivalServer]:
    """Send one DISCOVER on `interface` and return every server that offered (needs root)."""
    if os.geteuid() != 0:
        raise PreflightError("the DHCP preflight needs root (a packet socket on the interface)")
    probe_mac = bytes([0x02, *random.randbytes(5)])  # locally administered: never a real NIC
    xid = random.getrandbits(32)
    discover = request_message(DISCOVER, probe_mac, xid, {55: bytes([1, 3, 6, 15, 66, 150]),
                                                          60: b"labkit-preflight"}, flags=BROADCAST_FLAG)
    frame = ethernet_frame(b"\xff" * 6, probe_mac, IPv4Address(0), IPv4Address("255.255.255.255"),
                           client_port, server_port, build(discover))
    rivals: dict[str, RivalServer] = {}
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP)) as sock:
        sock.bind((interface, 0))
        sock.send(frame)
        deadline = time.monotonic() + listen
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                break
            packet = sock.recv(65535)
            rival = _offer_from(packet, xid, client_port)
            if rival is not None:
                rivals[rival.mac] = rival
    return list(rivals.values())


def _offer_from(packet: bytes, xid: int, client_port: int) -> RivalServer | None:
    if len(packet) < 14 + 20 + 8 or packet[12:14] != b"\x08\x00":
        return None
    ihl = (packet[14] & 0x0F) * 4
    if packet[14 + 9] != 17:
        return None
    udp = 14 + ihl
    _, dst_port = struct.unpack_from("!HH", packet, udp)
    if dst_port != client_port:
        return None
    try:
        message = parse(packet[udp + 8:])
    except DhcpDecodeError:
        return None
    if message.xid != xid or message.message_type != OFFER:
        return None
    source_ip = str(IPv4Address(packet[14 + 12:14 + 16]))
    server_id = message.ip_option(54)
    return RivalServer(str(server_id or source_ip), _mac_text(packet[6:12]), str(message.yiaddr))
