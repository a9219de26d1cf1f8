"""Fuzz inputs: valid requests per protocol (built by hand, so the fuzz does not share the kit's
codecs) and a seeded mutator. Used by bench/fuzz.py and the short fuzz test."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable

from dnslib import EDNS0, QTYPE, DNSRecord

INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF, 0x20, 0x2F, 0x2E, 0x0A, 0x0D, 0x3A, 0xC0)
FUZZ_RELAY = bytes([127, 0, 0, 3])  # every fuzzed DHCP datagram's giaddr: replies stay on loopback


class Mutator:
    """Valid seeds mutated a few times each, and now and then plain random bytes."""

    def __init__(self, rng: random.Random, seeds: list[bytes]) -> None:
        self.rng = rng
        self.seeds = seeds

    def one(self) -> bytes:
        rng = self.rng
        if rng.random() < 0.08:
            return rng.randbytes(rng.choice((0, 1, 2, 3, 4, 8, 12, 40, 240, 300, 600, 1500)))
        data = bytearray(rng.choice(self.seeds))
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4, 6, 10))):
            self._mutate(data)
        return bytes(data[:65000])

    def _mutate(self, data: bytearray) -> None:
        rng = self.rng
        op = rng.randrange(9)
        at = rng.randrange(len(data) + 1)
        if op == 0 and data:  # flip a bit
            at = min(at, len(data) - 1)
            data[at] ^= 1 << rng.randrange(8)
        elif op == 1 and data:  # an interesting byte
            data[min(at, len(data) - 1)] = rng.choice(INTERESTING)
        elif op == 2:  # insert random bytes
            data[at:at] = rng.randbytes(rng.randrange(1, 17))
        elif op == 3 and data:  # delete a run
            del data[at : at + rng.randrange(1, 33)]
        elif op == 4:  # truncate
            del data[at:]
        elif op == 5 and data:  # duplicate a run
            start = rng.randrange(len(data))
            data[at:at] = data[start : start + rng.randrange(1, 65)]
        elif op == 6:  # splice the tail of another seed
            other = rng.choice(self.seeds)
            data[at:] = other[rng.randrange(len(other) + 1):]
        elif op == 7 and len(data) >= 2:  # a 16-bit field: lengths, counts, block numbers
            at = min(at, len(data) - 2)
            data[at : at + 2] = struct.pack("!H", rng.choice((0, 1, 0x7FFF, 0x8000, 0xFFFF,
                                                                rng.randrange(65536))))
        elif op == 8:  # repeat a byte many times (long names, long lines)
            data[at:at] = bytes([rng.choice(INTERESTING)]) * rng.choice((64, 255, 256, 1024, 4096))


def force_giaddr(data: bytes) -> bytes:
    """Every datagram that could be read as DHCP has its relay address on loopback."""
    if len(data) < 28:
        return data
    return data[:24] + FUZZ_RELAY + data[28:]


# -- seeds -----------------------------------------------------------------------------------------


def _dhcp(message_type: int, mac: bytes, options: list[tuple[int, bytes]], *,
          ciaddr: bytes = bytes(4)) -> bytes:
    header = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 1, 0x1234ABCD, 0, 0x8000, ciaddr,
                         bytes(4), bytes(4), FUZZ_RELAY, mac + bytes(10), b"", b"")
    body = b"".join(bytes([code, len(payload)]) + payload for code, payload in
                    [(53, bytes([message_type])), *options])
    return header + b"\x63\x82\x53\x63" + body + b"\xff"


def dhcp_seeds() -> list[bytes]:
    macs = [bytes.fromhex("00562b000115"), bytes.fromhex("00562b0001aa"), bytes.fromhex("02000000fe01")]
    vendor = [(60, b"Cisco CP-6841-3PCC"), (55, bytes([1, 3, 6, 15, 42, 66, 150, 160])), (57, b"\x05\xdc")]
    out = []
    for mac in macs:
        out += [
            _dhcp(1, mac, [*vendor, (61, b"\x01" + mac), (12, b"SEP" + mac.hex().upper().encode())]),
            _dhcp(3, mac, [*vendor, (50, bytes([10, 42, 0, 150])), (54, bytes([10, 42, 0, 1]))]),
            _dhcp(3, mac, vendor, ciaddr=bytes([10, 42, 0, 151])),
            _dhcp(8, mac, vendor, ciaddr=bytes([10, 42, 0, 152])),
            _dhcp(7, mac, [(54, bytes([10, 42, 0, 1]))], ciaddr=bytes([10, 42, 0, 153])),
            _dhcp(1, mac, [*vendor, (82, b"\x01\x04port\x02\x03abc"), (52, b"\x03"), (66, b"x" * 40)]),
        ]
    return out


def dns_seeds() -> list[bytes]:
    names = [("_ciscoprov-https._tls.lab.example", "SRV"), ("_ciscoprov-http._tcp.lab.example", "SRV"),
             ("prov.lab.example", "A"), ("prov.lab.example", "AAAA"), ("lab.example", "SOA"),
             ("lab.example", "NS"), ("nothere.lab.example", "A"), ("activate.cisco.com", "A"),
             ("lab.example", "ANY"), ("prov.lab.example", "TXT"), ("example.org", "A")]
    out = []
    for index, (name, qtype) in enumerate(names):
        query = DNSRecord.question(name, qtype)
        query.header.id = 0x4000 + index
        if index % 2:
            query.add_ar(EDNS0(udp_len=4096))
        out.append(query.pack())
    reply = DNSRecord.question("prov.lab.example", "A").replyZone("prov.lab.example. 60 IN A 10.42.0.1")
    out.append(reply.pack())  # a response sent to the server
    out.append(DNSRecord.question("lab.example", QTYPE.get(252)).pack())  # AXFR
    return out


def _tftp_request(opcode: int, name: bytes, mode: bytes, options: list[tuple[bytes, bytes]]) -> bytes:
    tail = b"".join(k + b"\0" + v + b"\0" for k, v in options)
    return struct.pack("!H", opcode) + name + b"\0" + mode + b"\0" + tail


def tftp_seeds() -> list[bytes]:
    return [
        _tftp_request(1, b"8851-3PCC.xml", b"octet", []),
        _tftp_request(1, b"/Cisco/CP-6841-3PCC/00562b000114.cfg", b"octet",
                      [(b"blksize", b"1468"), (b"tsize", b"0"), (b"timeout", b"1")]),
        _tftp_request(1, b"sip88xx.12-0-1MPP-0001.loads", b"octet",
                      [(b"windowsize", b"8"), (b"blksize", b"65464")]),
        _tftp_request(1, b"../etc/passwd", b"netascii", []),
        _tftp_request(1, b"missing.xml", b"octet", [(b"blksize", b"8")]),
        _tftp_request(2, b"upload.log", b"octet", [(b"tsize", b"100")]),
        struct.pack("!HH", 4, 1), struct.pack("!HH", 3, 1) + b"x" * 512, struct.pack("!HH", 5, 0) + b"oops\0",
        struct.pack("!H", 6) + b"blksize\x001468\x00",
    ]


def syslog_seeds() -> list[bytes]:
    return [
        b"<134>Nov 21 10:00:01 phone1 prov[12]: Requesting resync tftp://10.42.0.1/8851-3PCC.xml\n",
        b"<14>1 2026-11-21T10:00:00Z host app - - [x@1 a=\"b\"] \xef\xbb\xbfhello",
        b"CP-8851-3PCC 00:56:2b:00:01:14 -- Successful resync \xff",
        b"<191>1 - - - - - -",
        b"<0>",
    ]


def http_seeds() -> list[bytes]:
    ua = b"User-Agent: Cisco-CP-6841-3PCC/12.0.1 (00562b000114)\r\n"
    return [
        b"GET /8851-3PCC.xml HTTP/1.1\r\nHost: prov.lab.example\r\n" + ua + b"\r\n",
        b"GET /Cisco/CP-6841-3PCC/00562b000114.cfg HTTP/1.1\r\nHost: prov\r\nRange: bytes=0-99\r\n\r\n",
        b"HEAD /sip88xx.12-0-1MPP-0001.loads HTTP/1.0\r\n\r\n",
        b"POST /8851-3PCC.xml HTTP/1.1\r\nHost: prov\r\nContent-Length: 8\r\n\r\nresync=1",
        b"POST /x HTTP/1.1\r\nHost: prov\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n",
        b"GET /8851-3PCC.xml HTTP/1.1\r\nHost: prov\r\nAuthorization: Basic cGhvbmU6czNjcmV0\r\n\r\n",
        b'GET / HTTP/1.1\r\nAuthorization: Digest username="phone", realm="labkit", nonce="1.2", '
        b'uri="/", response="00", qop=auth, nc=00000001, cnonce="x"\r\n\r\n',
        b"GET http://prov.lab.example/8851-3PCC.xml?x=%2e%2e/%00 HTTP/1.1\r\nHost: prov\r\n\r\n"
        b"GET /a%5Cb HTTP/1.1\r\nHost: prov\r\n\r\n",
        b"DELETE /8851-3PCC.xml HTTP/1.1\r\nHost: prov\r\nConnection: close\r\n\r\n",
    ]


SEEDS: dict[str, Callable[[], list[bytes]]] = {
    "dhcp": dhcp_seeds, "dns-udp": dns_seeds, "dns-tcp": dns_seeds, "tftp": tftp_seeds,
    "syslog": syslog_seeds, "http": http_seeds, "https": http_seeds,
}
