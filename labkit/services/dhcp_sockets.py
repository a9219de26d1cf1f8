"""The DHCP transport's sockets: the server's UDP socket (on one interface, or loopback), the packet
socket for L2 unicast replies to clients without an address, and the Ethernet frame around one."""

from __future__ import annotations

import os
import socket
import struct
from ipaddress import IPv4Address

from labkit.services.context import Endpoint
from labkit.services.sockets import grow_receive_buffer

RECEIVE_BUFFER = 4 << 20  # bytes of socket buffer (see bind_server)
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)


def ethernet_frame(dst_mac: bytes, src_mac: bytes, src_ip: IPv4Address, dst_ip: IPv4Address,
                   src_port: int, dst_port: int, payload: bytes) -> bytes:
    """Ethernet + IPv4 + UDP around `payload` (UDP checksum 0: optional over IPv4, RFC 768)."""
    udp = struct.pack("!HHHH", src_port, dst_port, 8 + len(payload), 0) + payload
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src_ip.packed,
                         dst_ip.packed)
    total = sum(struct.unpack("!10H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    header = header[:10] + struct.pack("!H", ~total & 0xFFFF) + header[12:]
    return dst_mac.ljust(6, b"\x00")[:6] + src_mac + b"\x08\x00" + header + udp


def _interface_mac(interface: str) -> bytes | None:
    try:
        with open(f"/sys/class/net/{interface}/address", encoding="ascii") as f:
            return bytes.fromhex(f.read().strip().replace(":", ""))
    except OSError:
        return None


def bind_server(endpoint: Endpoint, interface: str | None) -> socket.socket:
    """The server's UDP socket: on `interface` only (0.0.0.0, SO_BINDTODEVICE), else the endpoint."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        # room for a few thousand requests: the commit's fsync can stall the loop for 300 ms on a
        # busy disk, and with the default ~200 datagrams of buffer the requests of that time were lost
        grow_receive_buffer(sock, RECEIVE_BUFFER)
        if interface is not None:
            sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, interface.encode() + b"\x00")
            sock.bind(("0.0.0.0", endpoint.port))
        else:
            sock.bind((endpoint.host, endpoint.port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def packet_socket(interface: str) -> tuple[socket.socket, bytes] | None:
    """A packet socket for L2 unicast replies (root only), with the interface's MAC."""
    if os.geteuid() != 0:
        return None
    mac = _interface_mac(interface)
    if mac is None:
        return None
    try:
        l2 = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        l2.bind((interface, 0))
    except OSError:
        return None  # no packet socket: replies to address-less clients are broadcast instead
    return l2, mac
