"""The capture's kernel filter, judged by the kernel: frames sent on loopback through a packet
socket reach a second packet socket carrying labkit.capture_filter's program only when the
capture could keep them (the lab's ports, TFTP of a transfer on any ports), or when Python has
to decide (not TCP/UDP, IPv6 behind an extension header, not IP at all)."""

from __future__ import annotations

import secrets
import select
import socket
import time

import pytest

from labkit.capture import ETH_P_ALL, attach_filter
from labkit.capture_filter import FilterTooLarge, capture_filter
from tests.conftest import require_root

FOREIGN, OTHER = 50053, 50054  # ports of made-up frames only
BOUND = 10.0  # seconds to wait for the last frame
# frames to another host's MAC: lo hands them to the packet sockets, and the IP stack ignores them
# (no ICMP answer, nothing reaches a port in use on this machine)
ELSEWHERE = "02:00:00:00:00:01"


def frames(token: bytes, lab: int) -> list[tuple[str, bytes, bool]]:
    """(what, frame, whether it must go up), `lab` being one of the lab's ports: each frame's
    payload ends with the token and its index (after a TFTP opcode for those that carry one)."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop
    from scapy.layers.l2 import Dot1Q, Ether
    from scapy.packet import Raw

    ether = Ether(src="00:00:00:00:00:00", dst=ELSEWHERE)
    ip = IP(src="127.0.0.1", dst="127.0.0.1")
    with_options = IP(src="127.0.0.1", dst="127.0.0.1", options=b"\x01\x01\x01\x00")  # IHL 6
    v4, v6 = ether / ip, ether / IPv6(src="::1", dst="::1")
    foreign_udp, lab_udp = UDP(sport=FOREIGN, dport=OTHER), UDP(sport=FOREIGN, dport=lab)
    cases = [
        ("udp to the lab's port", v4 / lab_udp, True),
        ("udp from the lab's port", v4 / UDP(sport=lab, dport=FOREIGN), True),
        ("TFTP DATA between foreign ports", v4 / foreign_udp / b"\x00\x03\x00\x01", True),
        ("TFTP ACK over IPv6 between foreign ports", v6 / foreign_udp / b"\x00\x04\x00\x01", True),
        ("TFTP OACK between foreign ports", v4 / foreign_udp / b"\x00\x06", True),
        ("a TFTP read request between foreign ports", v4 / foreign_udp / b"\x00\x01", False),
        ("opcode 7 between foreign ports", v4 / foreign_udp / b"\x00\x07", False),
        ("TFTP DATA over TCP on foreign ports", v4 / TCP(sport=FOREIGN, dport=OTHER) / b"\x00\x03", False),
        ("udp on foreign ports", v4 / foreign_udp, False),
        ("tcp to the lab's port", v4 / TCP(sport=FOREIGN, dport=lab, flags="S"), True),
        ("tcp on foreign ports", v4 / TCP(sport=FOREIGN, dport=OTHER, flags="S"), False),
        ("udp with IPv4 options, lab's port", ether / with_options / lab_udp, True),
        ("udp with IPv4 options, foreign ports", ether / with_options / foreign_udp, False),
        ("udp over IPv6 to the lab's port", v6 / lab_udp, True),
        ("tcp over IPv6 on foreign ports", v6 / TCP(sport=FOREIGN, dport=OTHER, flags="S"), False),
        ("IPv6 behind an extension header", v6 / IPv6ExtHdrHopByHop() / foreign_udp, True),
        ("icmp", v4 / ICMP(), True),
        ("VLAN-tagged", ether / Dot1Q(vlan=7) / ip / foreign_udp, True),
        ("not IP", Ether(src="00:00:00:00:00:00", dst=ELSEWHERE, type=0x88B5), True),
        ("the last", v4 / lab_udp, True),  # every frame before it has been seen when it comes
    ]
    return [(what, bytes(packet / Raw(token + bytes([index]))), up)
            for index, (what, packet, up) in enumerate(cases)]


@pytest.mark.parametrize(("ports", "lab"),
                         [({30067, 30068, 30080}, 30080), (set(range(30000, 31000)), 30999)],
                         ids=["three ports", "1000 ports"])  # a later port, as source and as destination
def test_the_kernel_lets_up_only_what_the_capture_could_keep(ports: set[int], lab: int) -> None:
    require_root("a packet socket")
    cases = frames(b"labkit-filter-" + secrets.token_bytes(8), lab)
    index = {frame: number for number, (_, frame, _) in enumerate(cases)}
    last = len(cases) - 1
    receiver = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # nothing queued before the bind
    sender = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    try:
        assert attach_filter(receiver, ports)
        receiver.bind(("lo", ETH_P_ALL))
        receiver.setblocking(False)
        sender.bind(("lo", 0))
        for _, frame, _ in cases:
            sender.send(frame)
        seen: set[int] = set()
        deadline = time.monotonic() + BOUND
        while last not in seen and time.monotonic() < deadline:
            if not select.select([receiver], [], [], 0.2)[0]:
                continue
            number = index.get(receiver.recv(65535))
            if number is not None:
                seen.add(number)
    finally:
        receiver.close()
        sender.close()
    assert last in seen, "the last frame, to the lab's port, never came up"
    went_up = {what for number, (what, _, _) in enumerate(cases) if number in seen}
    assert went_up == {what for what, _, up in cases if up}


def test_the_program_has_a_bound() -> None:
    assert len(capture_filter(range(1000))) // 8 < 4096
    with pytest.raises(FilterTooLarge):
        capture_filter(range(2000))
    # ports outside 0-65535 cannot match a frame, and are left out
    assert capture_filter({30067, 70000, -1}) == capture_filter({30067})
