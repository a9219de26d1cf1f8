"""Packet capture of everything the kit receives and sends (scapy), Wireshark-readable.

One sniffer on the lab's interface (loopback under --loopback/--port-offset) keeps the packets
to and from the kit's service ports; `--pcap-per-phone` also sorts them into one file per
phone: DHCP by its client hardware address, the rest by the phone's address (fixed or leased).
On loopback every phone shares 127.0.0.1, so only DHCP can be told apart there. A TFTP transfer
runs from a port of its own on the kit's side (RFC 1350's transfer identifiers): the capture
follows the client's address and port from its request on, so the data and its acknowledgements
are kept too.

When the lab runs on other ports than the standard ones (`--loopback`, `--port-offset`, ports
set in the inventory), Wireshark would not know what the packets are: the capture then writes,
next to each pcap, how to dissect it (see `labkit.dissect`).
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from labkit.capture_filter import FilterTooLarge, capture_filter
from labkit.dissect import Dissection
from labkit.errors import LabkitError
from labkit.events import StaticDirectory

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
TFTP_CLIENTS_FOLLOWED = 256  # the latest TFTP clients (address, port) whose transfers are kept
SO_ATTACH_FILTER = 26  # asm-generic/socket.h (Python's socket module does not name it)

log = logging.getLogger(__name__)


class CaptureError(LabkitError):
    """Capture cannot run here (no root, no such interface)."""


class Capture:
    def __init__(self, interface: str, ports: set[int], path: Path | None, per_phone: Path | None,
                 directory: StaticDirectory, dhcp_ports: frozenset[int] = frozenset({67, 68}),
                 dissection: Dissection | None = None, tftp_port: int | None = None) -> None:
        if os.geteuid() != 0:
            raise CaptureError("packet capture needs root (a packet socket on the interface)")
        self.interface, self.ports = interface, ports
        self.path, self.per_phone = path, per_phone
        self.directory = directory
        self.dhcp_ports = dhcp_ports
        self.tftp_port = tftp_port
        self.tftp_clients: dict[tuple[str, int], None] = {}  # oldest first
        self.dissection = dissection or Dissection()
        self.hints: list[tuple[Path, Path]] = []  # (capture, its decode-as arguments file)
        self.writers: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.count = 0
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        import scapy.layers.inet  # noqa: F401 - binds IP/UDP/TCP under Ether before the first packet
        from scapy.utils import PcapWriter

        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.writers[""] = PcapWriter(str(self.path), sync=True, linktype=1)  # Ethernet
        if self.per_phone is not None:
            self.per_phone.mkdir(parents=True, exist_ok=True)
        self.hints = self.dissection.write_beside(self.path, self.per_phone)
        # protocol 0: nothing is queued until the bind, which comes after the filter
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        attach_filter(self.sock, self.ports)
        self.sock.bind((self.interface, ETH_P_ALL))
        self.running = True
        self.thread = threading.Thread(target=self._loop, name="labkit-capture", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        from scapy.layers.l2 import Ether

        while self.running:
            ready, _, _ = select.select([self.sock], [], [], 0.2)
            if not ready:
                continue
            try:
                data, address = self.sock.recvfrom(65535)
            except OSError:
                return
            # on `lo` each packet passes twice, going out and coming in: keep it once
            if address[2] == PACKET_OUTGOING and self.interface == "lo":
                continue
            packet = Ether(data)
            packet.time = time.time()
            if self._ours(packet):
                self._keep(packet)

    def _ours(self, packet: Any) -> bool:
        from scapy.layers.inet import IP, TCP, UDP

        udp = packet.getlayer(UDP)
        layer = udp or packet.getlayer(TCP)
        if layer is None:
            return False
        if layer.sport in self.ports or layer.dport in self.ports:
            if udp is not None and udp.dport == self.tftp_port and packet.getlayer(IP) is not None:
                self._follow((packet[IP].src, udp.sport))
            return True
        ip = packet.getlayer(IP)
        if udp is None or ip is None or not self.tftp_clients:
            return False
        return (ip.src, udp.sport) in self.tftp_clients or (ip.dst, udp.dport) in self.tftp_clients

    def _follow(self, client: tuple[str, int]) -> None:
        """Keep the packets to and from this TFTP client from now on (the latest few clients)."""
        self.tftp_clients.pop(client, None)
        self.tftp_clients[client] = None
        while len(self.tftp_clients) > TFTP_CLIENTS_FOLLOWED:
            del self.tftp_clients[next(iter(self.tftp_clients))]

    def _phone(self, packet: Any) -> str | None:
        from scapy.layers.inet import IP, UDP

        udp = packet.getlayer(UDP)
        if udp is not None and (udp.sport in self.dhcp_ports or udp.dport in self.dhcp_ports):
            payload = bytes(udp.payload)
            # chaddr sits at offset 28 of a BOOTP message, whatever port it travels on
            return ":".join(f"{b:02x}" for b in payload[28:34]) if len(payload) >= 34 else None
        ip = packet.getlayer(IP)
        if ip is None:
            return None
        return self.directory.phone_at(ip.src) or self.directory.phone_at(ip.dst)

    def _keep(self, packet: Any) -> None:
        from scapy.utils import PcapWriter

        with self.lock:
            self.count += 1
            if "" in self.writers:
                self.writers[""].write(packet)
            if self.per_phone is None:
                return
            mac = self._phone(packet)
            if mac is None:
                return
            writer = self.writers.get(mac)
            if writer is None:
                path = self.per_phone / f"{mac.replace(':', '')}.pcap"
                writer = PcapWriter(str(path), sync=True, linktype=1)
                self.writers[mac] = writer
            writer.write(packet)

    def stop(self) -> None:
        if self.thread is not None:
            self.running = False
            self.thread.join(timeout=5)
            self.sock.close()
        with self.lock:
            for writer in self.writers.values():
                writer.close()
            self.writers.clear()


def attach_filter(sock: socket.socket, ports: Iterable[int]) -> bool:
    """Let the kernel drop TCP and UDP that the capture would not keep (labkit.capture_filter);
    what goes up is still checked by Capture._ours. Without a filter (too many ports, or the
    kernel refused it: False) the capture runs unfiltered: slower under a foreign load."""
    try:
        program = capture_filter(ports)
        code = ctypes.create_string_buffer(program, len(program))
        # struct sock_fprog {unsigned short len; struct sock_filter *filter;}: the kernel copies it
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER,
                        struct.pack("HP", len(program) // 8, ctypes.addressof(code)))
    except (FilterTooLarge, OSError) as exc:  # OSError: ENOMEM past net.core.optmem_max, say
        log.warning("capture: no kernel filter: %s", exc)
        return False
    return True
