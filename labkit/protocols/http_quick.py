"""The one request the HTTP service may answer without aiohttp: a plain GET (pure parsing).

A phone's fetch is `GET /name HTTP/1.1` with Host, User-Agent, Accept and `Connection: close`.
`parse_plain_get` recognises exactly that shape, strictly: anything else (another method or
version, a query or an escape in the target, no Host or an odd one, any other header, a header
twice, a folded line, a byte outside printable ASCII) is "not plain" and goes to aiohttp
untouched, so every answer that depends on more than the file (ranges, conditionals, encodings,
authentication, bodies, malformed requests) stays aiohttp's own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_HEAD = 8190  # bytes of a request head waited for here; aiohttp's own line limit
# the target: a path of unreserved characters and slashes only (no query, escape or fragment),
# so aiohttp's raw path, its unquoted path and the bytes here are the same string
_REQUEST_LINE = re.compile(rb"GET (/[A-Za-z0-9._~/-]*) HTTP/1\.1")
_FIELD_NAME = re.compile(rb"[A-Za-z-]+")
_PLAIN_FIELDS = frozenset({"host", "user-agent", "accept", "connection"})
_VALUE_BYTES = re.compile(rb"[\x20-\x7e]*")
_HOST = re.compile(r"[A-Za-z0-9.-]+(?::[0-9]{1,4})?")  # aiohttp refuses HTTP/1.1 without a Host


@dataclass(frozen=True)
class PlainGet:
    target: str  # "/Cisco/CP-8851-3PCC.xml"
    close: bool  # `Connection: close` (else the connection stays open: HTTP/1.1's default)
    user_agent: str | None
    end: int  # bytes of the buffer this request took


INCOMPLETE = "incomplete"  # no end of head yet (and under MAX_HEAD bytes): wait for more


def parse_plain_get(buffer: bytes) -> PlainGet | str | None:
    """The plain GET at the start of `buffer`; INCOMPLETE to wait for more bytes; None when it
    is anything else (aiohttp answers it)."""
    end = buffer.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
    if end < 0:
        return INCOMPLETE if len(buffer) < MAX_HEAD else None
    lines = buffer[:end].split(b"\r\n")
    request = _REQUEST_LINE.fullmatch(lines[0])
    if request is None:
        return None
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or _FIELD_NAME.fullmatch(name) is None or _VALUE_BYTES.fullmatch(value) is None:
            return None
        key = name.decode("ascii").lower()
        if key not in _PLAIN_FIELDS or key in fields:
            return None
        fields[key] = value.decode("ascii").strip(" ")
    connection = fields.get("connection", "keep-alive").lower()
    if connection not in ("close", "keep-alive") or _HOST.fullmatch(fields.get("host", "")) is None:
        return None
    return PlainGet(request[1].decode("ascii"), connection == "close", fields.get("user-agent"), end + 4)
