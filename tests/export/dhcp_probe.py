"""A phone's DISCOVER/REQUEST against an exported DHCP server, the reply's options as raw bytes.

Run inside a client namespace as `python -m tests.export.dhcp_probe JSON` (keyword arguments
of `probe`); it prints one JSON line: the ACK's options, code -> hex, exactly as received
(scapy builds the frames; the options are cut from the raw BOOTP payload, never re-encoded).
"""

from __future__ import annotations

import json
import secrets
import select
import socket
import sys
import time
from typing import Any

COOKIE = bytes.fromhex("63825363")
PHONE_PRL = [1, 3, 6, 15, 35, 66, 150, 2, 7, 42, 43, 58, 59, 159, 160]  # an MPP 8851 (reference §1.1)


def raw_options(bootp: bytes) -> dict[int, bytes]:
    """Options of a BOOTP message (after the 236-byte header and the cookie), by code."""
    data = bootp[236:]
    if data[:4] != COOKIE:
        raise ValueError("no DHCP magic cookie")
    out: dict[int, bytes] = {}
    i = 4
    while i < len(data):
        code = data[i]
        if code == 255:
            break
        if code == 0:
            i += 1
            continue
        length = data[i + 1]
        out[code] = out.get(code, b"") + data[i + 2:i + 2 + length]  # RFC 3396: parts concatenate
        i += 2 + length
    return out


def probe(*, iface: str, mac: str, vendor: str, prl: list[int] | None = None,
          seconds: float = 20.0) -> dict[str, Any]:
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    chaddr = bytes.fromhex(mac.replace(":", ""))
    prl = prl or PHONE_PRL
    xid = secrets.randbits(32)

    def frame(options: list[Any]) -> bytes:
        return bytes(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255")
                     / UDP(sport=68, dport=67) / BOOTP(chaddr=chaddr, xid=xid)
                     / DHCP(options=[*options, ("vendor_class_id", vendor), ("param_req_list", prl),
                                     "end"]))

    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    sock.bind((iface, 0))
    deadline = time.monotonic() + seconds
    result: dict[str, Any] = {"offer": None, "ack": None}
    try:
        sock.send(frame([("message-type", "discover")]))
        while (left := deadline - time.monotonic()) > 0 and result["ack"] is None:
            if not select.select([sock], [], [], left)[0]:
                break
            packet = Ether(sock.recv(65535))
            if not packet.haslayer(BOOTP) or packet[UDP].dport != 68 or packet[BOOTP].xid != xid:
                continue
            options = raw_options(bytes(packet[BOOTP]))
            kind = options.get(53, b"\0")[0]
            if kind == 2 and result["offer"] is None:
                result["offer"] = {"ip": packet[BOOTP].yiaddr, "sname": packet[BOOTP].sname.hex(),
                                   "options": {str(c): v.hex() for c, v in options.items()}}
                sock.send(frame([("message-type", "request"), ("server_id", socket.inet_ntoa(options[54])),
                                 ("requested_addr", packet[BOOTP].yiaddr)]))
            elif kind in (5, 6):
                result["ack"] = {"type": "ack" if kind == 5 else "nak", "ip": packet[BOOTP].yiaddr,
                                 "options": {str(c): v.hex() for c, v in options.items()}}
    finally:
        sock.close()
    return result


if __name__ == "__main__":
    print(json.dumps(probe(**json.loads(sys.argv[1]))))
