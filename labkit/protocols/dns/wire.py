"""DNS wire constants and names in wire form (lowercase, uncompressed, ending in the root label)."""

from __future__ import annotations

import re

from dnslib import QTYPE, DNSBuffer, DNSLabel

from labkit.errors import LabkitError

# RR types and codes used by name (ints, to keep the hot path free of enum look-ups)
T_A, T_NS, T_CNAME, T_SOA, T_MX, T_TXT, T_AAAA, T_SRV = 1, 2, 5, 6, 15, 16, 28, 33
T_OPT, T_IXFR, T_AXFR, T_ANY = 41, 251, 252, 255
CLASS_IN = 1
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED, BADVERS = 0, 1, 2, 3, 4, 5, 16
RCODE_NAMES = {NOERROR: "NOERROR", FORMERR: "FORMERR", SERVFAIL: "SERVFAIL", NXDOMAIN: "NXDOMAIN",
               NOTIMP: "NOTIMP", REFUSED: "REFUSED", BADVERS: "BADVERS"}

MAX_UDP_DEFAULT = 1232
MAX_CNAME_CHAIN = 8
CACHE_SIZE_DEFAULT = 4096
TCP_LIMIT = 65535

QR, AA, TC, RD = 0x8000, 0x0400, 0x0200, 0x0100
CD = 0x0010
QUERY_COUNTS_PLAIN = b"\x00\x01\x00\x00\x00\x00\x00\x00"
QUERY_COUNTS_EDNS = b"\x00\x01\x00\x00\x00\x00\x00\x01"
OPT_HEAD = b"\x00\x00\x29"  # root owner, type OPT


class DnsConfigError(LabkitError):
    """Zones the resolver cannot serve (no SOA at the apex, ...) or a bad setting."""



def name_wire(name: str | DNSLabel) -> bytes:
    """`Lab.Example.` -> b'\\x03lab\\x07example\\x00' (lowercased; DNS case-folds ASCII only)."""
    label = name if isinstance(name, DNSLabel) else DNSLabel(name)
    return b"".join(bytes((len(part),)) + part.lower() for part in label.label) + b"\x00"


_PLAIN_LABEL = re.compile(rb"[A-Za-z0-9_*-]+")


def name_text(wire: bytes) -> str:
    """Presentation form without the trailing dot, escaping as dig does (\\. and \\DDD)."""
    parts = []
    i = 0
    while i < len(wire) and (length := wire[i]):
        label = wire[i + 1 : i + 1 + length]
        if _PLAIN_LABEL.fullmatch(label):
            parts.append(label.decode("ascii"))
        else:
            parts.append("".join(
                ("\\" + chr(b)) if b in b".\\" else chr(b) if 0x21 <= b <= 0x7E else f"\\{b:03d}"
                for b in label))
        i += 1 + length
    return ".".join(parts) or "."


def well_formed_name(query: bytes, name_end: int) -> bool:
    """Do the labels from offset 12 end exactly at name_end, each 1..63 bytes, <= 255 in all?"""
    if name_end - 12 > 255:
        return False
    i = 12
    while i < name_end - 1:
        length = query[i]
        if length > 63 or not length:
            return False
        i += length + 1
    return i == name_end - 1


def parent(wire: bytes) -> bytes:
    return wire[wire[0] + 1 :]


def type_text(qtype: int) -> str:
    name = QTYPE.get(qtype, None)
    return name if isinstance(name, str) and not name.isdigit() else f"TYPE{qtype}"


class FlatBuffer(DNSBuffer):
    """A DNSBuffer that never compresses: each RDATA is packed alone, then placed anywhere."""

    def encode_name(self, name: str | DNSLabel) -> None:
        self.encode_name_nocompress(name)

