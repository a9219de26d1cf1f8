"""The capture's kernel filter: a classic BPF program that drops, before it reaches Python, every
TCP or UDP packet on none of the lab's ports that is not TFTP of a transfer either.

Pure: it takes ports and returns the program's bytes (struct sock_filter[]), which
`labkit.capture` attaches with SO_ATTACH_FILTER. It drops IPv4 or IPv6 TCP/UDP on foreign ports,
which `Capture._ours` drops too, but for UDP whose payload starts as TFTP's DATA, ACK, ERROR or
OACK (opcodes 3-6): a transfer runs between two ports neither side knew before its request, and a
filter updated when the capture sees the request would be late (the first DATA is sent before
the capture thread reads the request). Python then keeps those of the clients it follows. The
one difference from `_ours` alone: UDP from a followed client that does not start with opcode
3-6 (a malformed datagram, or another program reusing its address and port) is no longer kept.
Every other frame (ARP, ICMP, VLAN-tagged, IPv6 behind extension headers) goes up.
Without the filter the capture thread parsed every packet on the interface: a load on other
loopback ports left it behind, and the pcap without the lab's packets.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

# classic BPF opcodes (linux/filter.h, linux/bpf_common.h)
LD_H_ABS = 0x28  # A = u16 at k
LD_B_ABS = 0x30  # A = u8 at k
LD_H_IND = 0x48  # A = u16 at X + k
LDX_IMM = 0x01  # X = k
LDX_B_MSH = 0xB1  # X = 4 * (u8 at k & 0xf): the IPv4 header's length
LD_MEM = 0x60  # A = M[k]
ST = 0x02  # M[k] = A
JEQ_K = 0x15  # pc += (A == k) ? jt : jf, counted from the next instruction
JGE_K = 0x35  # pc += (A >= k) ? jt : jf
JGT_K = 0x25  # pc += (A > k) ? jt : jf
JA = 0x05  # pc += k
RET_K = 0x06  # keep k bytes of the frame (0: drop it)

ETHERNET = 14  # the header's length; its type field sits at 12
ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
IPV6_HEADER = 40
TCP, UDP = 6, 17
UDP_HEADER = 8
TFTP_DATA, TFTP_OACK = 3, 6  # the opcodes of a transfer's packets: DATA, ACK, ERROR, OACK
SNAPLEN = 0x40000  # bytes kept of a frame that goes up: all of it
MAX_INSTRUCTIONS = 4096  # the kernel's BPF_MAXINSNS
SLOT_SOURCE_PORT, SLOT_DESTINATION_PORT, SLOT_PROTOCOL = 0, 1, 2  # scratch memory M[k]
GO_UP, DROP = (RET_K, 0, 0, SNAPLEN), (RET_K, 0, 0, 0)
Instruction = tuple[int, int, int, int]


class FilterTooLarge(ValueError):
    """More ports than a classic BPF program can test (BPF_MAXINSNS)."""


def capture_filter(ports: Iterable[int]) -> bytes:
    """The program: a frame goes up unless it is IPv4/IPv6 TCP or UDP (IPv6 without extension
    headers) with neither port in `ports`, and not UDP that starts as a TFTP transfer's packet."""
    wanted = sorted({port for port in ports if 0 <= port <= 0xFFFF})
    program: list[Instruction] = [
        # 0: the ethernet type; anything but IPv4 or IPv6 goes up
        (LD_H_ABS, 0, 0, 12),
        (JEQ_K, 2, 0, ETH_IPV4),  # -> 4
        (JEQ_K, 8, 0, ETH_IPV6),  # -> 11
        GO_UP,
        # 4: IPv4, TCP or UDP: X = its header's length (in a later fragment the "ports" are payload
        # bytes: it goes up or not by chance, and Python, which never keeps one, drops it)
        (LD_B_ABS, 0, 0, ETHERNET + 9),
        (ST, 0, 0, SLOT_PROTOCOL),
        (JEQ_K, 2, 0, TCP),  # -> 9
        (JEQ_K, 1, 0, UDP),  # -> 9
        GO_UP,
        (LDX_B_MSH, 0, 0, ETHERNET),
        (JA, 0, 0, 6),  # -> 17
        # 11: IPv6 whose next header is TCP or UDP: X = its fixed header's length
        (LD_B_ABS, 0, 0, ETHERNET + 6),
        (ST, 0, 0, SLOT_PROTOCOL),
        (JEQ_K, 2, 0, TCP),  # -> 16
        (JEQ_K, 1, 0, UDP),  # -> 16
        GO_UP,
        (LDX_IMM, 0, 0, IPV6_HEADER),
        # 17: the ports, at X past the IP header
        (LD_H_IND, 0, 0, ETHERNET),
        (ST, 0, 0, SLOT_SOURCE_PORT),
        (LD_H_IND, 0, 0, ETHERNET + 2),
        (ST, 0, 0, SLOT_DESTINATION_PORT),
    ]
    for slot in (SLOT_SOURCE_PORT, SLOT_DESTINATION_PORT):
        program.append((LD_MEM, 0, 0, slot))
        for port in wanted:  # each test beside its own return: no jump is longer than one
            program += [(JEQ_K, 0, 1, port), GO_UP]
    # foreign ports: UDP goes up if it starts as a transfer's packet (one too short to have an
    # opcode is dropped at the load: not a transfer's packet)
    program += [(LD_MEM, 0, 0, SLOT_PROTOCOL),
                (JEQ_K, 0, 4, UDP),  # -> drop
                (LD_H_IND, 0, 0, ETHERNET + UDP_HEADER),
                (JGE_K, 0, 2, TFTP_DATA),  # -> drop
                (JGT_K, 1, 0, TFTP_OACK),  # -> drop
                GO_UP,
                DROP]
    if len(program) > MAX_INSTRUCTIONS:
        raise FilterTooLarge(f"{len(wanted)} ports need {len(program)} BPF instructions "
                             f"(at most {MAX_INSTRUCTIONS})")
    return b"".join(struct.pack("=HBBI", *instruction) for instruction in program)
