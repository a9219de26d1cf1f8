"""HTTP/1.x message framing, sans I/O (RFC 9112): a response reader for the phone, a writer for the kit.

The phone accepts HTTP/1.0 and HTTP/1.1 answers, and chunked transfer on 1.1 (reference §5: "HTTP/1.0
and 1.1, chunked accepted on 1.1"). `ResponseReader` is fed bytes as they come and says when a
response is complete: by Content-Length, by chunked coding (extensions and trailers read and kept),
or by the close of the connection when neither is given. Every size is bounded; framing it cannot
trust raises `FramingError` (a `CodecError`) naming what is wrong. `encode_response` writes the
same framings, so the kit can answer in each of them and tests can go round trip.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from labkit.errors import CodecError

MAX_HEAD = 16 * 1024  # status line and header fields together
MAX_FIELDS = 100
MAX_CHUNK_LINE = 1024  # a chunk-size line with its extensions
MAX_BODY = 64 * 1024 * 1024  # a firmware load is tens of MiB
REASONS = {200: "OK", 206: "Partial Content", 301: "Moved Permanently", 302: "Found", 304: "Not Modified",
           400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           407: "Proxy Authentication Required", 416: "Range Not Satisfiable",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}

_STATUS = re.compile(rb"^HTTP/(?P<version>\d\.\d) (?P<status>\d{3})(?: (?P<reason>[^\r\n]*))?$")
_TOKEN = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_CHUNK = re.compile(rb"^(?P<size>[0-9A-Fa-f]{1,15})[ \t]*(?P<ext>(?:;[^\r\n]*)?)$")
_EXT = re.compile(rb'[ \t]*;[ \t]*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)(?:[ \t]*=[ \t]*'
                  rb'(?:([!#$%&\'*+.^_`|~0-9A-Za-z-]+)|"((?:[^"\\]|\\.)*)"))?')


class FramingError(CodecError):
    """A response whose framing cannot be trusted (RFC 9112 §6.3: close and report)."""


Fields = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Response:
    version: str  # "1.0" or "1.1"
    status: int
    reason: str
    headers: Fields
    body: bytes = b""
    framing: str = "length"  # "length", "chunked", "close" (read to the end) or "none"
    trailers: Fields = ()
    extensions: tuple[tuple[str, str], ...] = ()  # every chunk extension seen, in order

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((value for key, value in self.headers if key.lower() == lowered), None)


def _lines(block: bytes) -> list[bytes]:
    """Header lines; a bare LF ends a line too (RFC 9112 §2.2 lets a recipient accept it)."""
    return [line.removesuffix(b"\r") for line in block.split(b"\n")]


def parse_fields(lines: Sequence[bytes], what: str = "header") -> Fields:
    if len(lines) > MAX_FIELDS:
        raise FramingError(f"more than {MAX_FIELDS} {what} fields")
    out: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            raise FramingError(f"obsolete line folding in a {what} field")  # RFC 9112 §5.2
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.match(name):
            raise FramingError(f"malformed {what} field {line[:60]!r}")
        out.append((name.decode("ascii"), value.strip(b" \t").decode("latin-1")))
    return tuple(out)


def _content_length(headers: Fields) -> int | None:
    values = [v for k, v in headers if k.lower() == "content-length"]
    if not values:
        return None
    parts = {p.strip() for v in values for p in v.split(",")}  # "5, 5" is one length (RFC 9110 §8.6)
    if len(parts) != 1 or not next(iter(parts)).isdigit():
        raise FramingError(f"invalid Content-Length {', '.join(values)!r}")
    return int(next(iter(parts)))


def _framing(version: str, status: int, headers: Fields, method: str) -> tuple[str, int]:
    """("none"|"length"|"chunked"|"close", length) per RFC 9112 §6.3, in its order."""
    if method == "HEAD" or 100 <= status < 200 or status in (204, 304):
        return "none", 0
    if method == "CONNECT" and 200 <= status < 300:
        return "none", 0  # a tunnel follows
    codings = [c.strip().lower() for k, v in headers if k.lower() == "transfer-encoding"
               for c in v.split(",") if c.strip()]
    if codings:
        if version == "1.0":  # RFC 9112 §6.1: Transfer-Encoding in a 1.0 message is faulty framing
            raise FramingError("Transfer-Encoding in an HTTP/1.0 response")
        if codings[-1] == "chunked":
            if codings.count("chunked") > 1:
                raise FramingError("chunked applied more than once")
            return "chunked", 0
        return "close", 0  # not chunked last: the body runs to the close (RFC 9112 §6.3 item 4)
    length = _content_length(headers)
    if length is not None:
        return "length", length
    return "close", 0


class ResponseReader:
    """Feed a response's bytes; `done` once it is complete, `eof()` when the peer closed."""

    def __init__(self, method: str = "GET", *, max_body: int = MAX_BODY) -> None:
        self.method = method.upper()
        self.max_body = max_body
        self.buffer = bytearray()
        self.head: tuple[str, int, str, Fields] | None = None
        self.framing = ""
        self.remaining = 0  # body bytes left ("length"), or of the current chunk
        self.state = "head"  # head, body, chunk-size, chunk-data, chunk-end, trailers, done
        self.body = bytearray()
        self.trailers: Fields = ()
        self.extensions: list[tuple[str, str]] = []

    @property
    def done(self) -> bool:
        return self.state == "done"

    def feed(self, data: bytes) -> None:
        if self.done:
            return  # bytes after a complete response (this client sends Connection: close)
        if self.state == "body" and self.framing == "length" and not self.buffer \
                and len(data) <= self.remaining:  # the body's next bytes: straight in, no buffer copy
            self.remaining -= self._take(data)
            self.state = "body" if self.remaining else "done"
            return
        self.buffer += data
        while not self.done and self._step():
            pass

    def eof(self) -> None:
        """The connection closed: complete a read-to-close body, or say what is missing."""
        if self.done:
            return
        if self.state == "head":
            raise FramingError("connection closed before a complete response head"
                               if self.buffer else "connection closed without a response")
        if self.framing == "close":
            self.state = "done"
            return
        if self.framing == "length":
            raise FramingError(f"connection closed {self.remaining} bytes short of the Content-Length")
        raise FramingError(f"connection closed inside the chunked body ({self.state})")

    def response(self) -> Response:
        assert self.head is not None and self.done
        version, status, reason, headers = self.head
        return Response(version, status, reason, headers, bytes(self.body), self.framing, self.trailers,
                        tuple(self.extensions))

    # -- states ------------------------------------------------------------------------------------
    def _step(self) -> bool:
        """Consume what the buffer allows; False when more bytes are needed."""
        if self.state == "head":
            return self._head()
        if self.state == "body":
            return self._body()
        if self.state == "chunk-size":
            return self._chunk_size()
        if self.state == "chunk-data":
            return self._chunk_data()
        if self.state == "chunk-end":
            return self._chunk_end()
        return self._trailers()

    def _line_block(self, limit: int, what: str) -> bytes | None:
        """Bytes up to the empty line ending a field section, or None for more."""
        for end in (b"\r\n\r\n", b"\n\n", b"\n\r\n"):
            at = self.buffer.find(end)
            if at >= 0 and at <= limit:
                block = bytes(self.buffer[:at])
                del self.buffer[: at + len(end)]
                return block
        if len(self.buffer) > limit:
            raise FramingError(f"{what} longer than {limit} bytes")
        return None

    def _head(self) -> bool:
        while self.buffer[:2] == b"\r\n" or self.buffer[:1] == b"\n":  # RFC 9112 §2.2: skip
            del self.buffer[: 2 if self.buffer[:1] == b"\r" else 1]
        block = self._line_block(MAX_HEAD, "response head")
        if block is None:
            return False
        lines = _lines(block)
        match = _STATUS.match(lines[0])
        if match is None:
            raise FramingError(f"not an HTTP/1.x status line: {lines[0][:60]!r}")
        version = match["version"].decode()
        if version not in ("1.0", "1.1"):
            raise FramingError(f"HTTP/{version} is not HTTP/1.0 or 1.1")
        status = int(match["status"])
        headers = parse_fields(lines[1:])
        reason = (match["reason"] or b"").decode("latin-1")
        self.head = (version, status, reason, headers)
        if 100 <= status < 200 and status != 101:
            self.head = None  # an interim answer: the final one follows
            return True
        self.framing, self.remaining = _framing(version, status, headers, self.method)
        if self.remaining > self.max_body:
            raise FramingError(f"Content-Length {self.remaining} over the {self.max_body}-byte bound")
        states = {"none": "done", "length": "body", "close": "body", "chunked": "chunk-size"}
        self.state = states[self.framing]
        if self.framing == "length" and self.remaining == 0:
            self.state = "done"
        return True

    def _take(self, data: bytes | bytearray) -> int:
        if len(self.body) + len(data) > self.max_body:
            raise FramingError(f"body over the {self.max_body}-byte bound")
        self.body += data
        return len(data)

    def _take_body(self, limit: int) -> int:
        """Move up to `limit` buffered bytes to the body; how many moved."""
        if limit >= len(self.buffer):
            size, self.buffer = self._take(self.buffer), bytearray()
            return size
        size = self._take(self.buffer[:limit])
        del self.buffer[:limit]
        return size

    def _body(self) -> bool:
        if not self.buffer:
            return False
        if self.framing == "close":
            self._take_body(len(self.buffer))
            return False
        self.remaining -= self._take_body(self.remaining)
        if self.remaining == 0:
            self.state = "done"
        return self.remaining == 0

    def _chunk_size(self) -> bool:
        at = self.buffer.find(b"\n")
        if at < 0:
            if len(self.buffer) > MAX_CHUNK_LINE:
                raise FramingError(f"chunk-size line longer than {MAX_CHUNK_LINE} bytes")
            return False
        line = bytes(self.buffer[:at]).removesuffix(b"\r")
        del self.buffer[: at + 1]
        match = _CHUNK.match(line)
        if match is None:
            raise FramingError(f"malformed chunk-size line {line[:60]!r}")
        self._extensions(match["ext"])
        self.remaining = int(match["size"], 16)
        if len(self.body) + self.remaining > self.max_body:
            raise FramingError(f"chunked body over the {self.max_body}-byte bound")
        self.state = "chunk-data" if self.remaining else "trailers"
        return True

    def _extensions(self, text: bytes) -> None:
        position = 0
        while position < len(text):
            match = _EXT.match(text, position)
            if match is None or match.end() == position:
                raise FramingError(f"malformed chunk extension {text[position:position + 40]!r}")
            value = match[2] if match[2] is not None else re.sub(rb"\\(.)", rb"\1", match[3] or b"")
            self.extensions.append((match[1].decode("ascii"), value.decode("latin-1")))
            position = match.end()

    def _chunk_data(self) -> bool:
        if not self.buffer:
            return False
        self.remaining -= self._take_body(self.remaining)
        if self.remaining == 0:
            self.state = "chunk-end"
        return self.remaining == 0

    def _chunk_end(self) -> bool:
        if self.buffer[:2] == b"\r\n":
            del self.buffer[:2]
        elif self.buffer[:1] == b"\n":
            del self.buffer[:1]
        elif bytes(self.buffer) in (b"", b"\r"):
            return False
        else:
            raise FramingError(f"chunk data longer than its size (then {bytes(self.buffer[:20])!r})")
        self.state = "chunk-size"
        return True

    def _trailers(self) -> bool:
        if self.buffer[:2] == b"\r\n" or self.buffer[:1] == b"\n":
            del self.buffer[: 2 if self.buffer[:1] == b"\r" else 1]
            self.state = "done"
            return False
        block = self._line_block(MAX_HEAD, "trailer section")
        if block is None:
            return False
        self.trailers = parse_fields(_lines(block), "trailer")
        self.state = "done"
        return False


_REQUEST = re.compile(
    rb"^(?P<method>[A-Z]{1,20}) (?P<target>[^ \x00-\x1f]{1,8000}) HTTP/(?P<version>1\.[01])$")


@dataclass(frozen=True)
class RequestHead:
    method: str
    target: str  # origin-form /path, absolute-form http://host/path, or authority-form host:port
    version: str
    headers: Fields

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((value for key, value in self.headers if key.lower() == lowered), None)


def parse_request_head(block: bytes) -> RequestHead:
    """A request head without its ending empty line (a forward proxy reads these)."""
    lines = _lines(block)
    match = _REQUEST.match(lines[0])
    if match is None:
        raise FramingError(f"not an HTTP/1.x request line: {lines[0][:60]!r}")
    return RequestHead(match["method"].decode(), match["target"].decode("latin-1"),
                       match["version"].decode(), parse_fields(lines[1:]))


def read_response(data: bytes, method: str = "GET", *, max_body: int = MAX_BODY) -> Response:
    """The response in `data`, all of it received and the connection then closed."""
    reader = ResponseReader(method, max_body=max_body)
    reader.feed(data)
    reader.eof()
    return reader.response()


# -- writing -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Framing:
    """How the kit frames an answer: its version, and chunked, by length, or to the close."""

    version: str = "1.1"
    chunked: bool = False  # only on 1.1 (a 1.0 answer is never chunked)
    chunk_size: int = 1024
    extensions: tuple[tuple[str, str], ...] = ()  # added to every chunk-size line
    trailers: Fields = ()
    length: bool = True  # False: no Content-Length, the body ends with the connection
    extra: Fields = field(default=())


def encode_chunked(body: bytes, chunk_size: int = 1024, extensions: Sequence[tuple[str, str]] = (),
                   trailers: Fields = (), sizes: Sequence[int] | None = None) -> bytes:
    """`body` in chunks of `chunk_size` (or the given `sizes`, cycled), then the last chunk."""
    ext = b"".join(b";" + k.encode() + (b"=" + _quote(v) if v else b"") for k, v in extensions)
    out = bytearray()
    position, index = 0, 0
    steps = list(sizes or [chunk_size])
    while position < len(body):
        size = max(1, steps[index % len(steps)])
        piece = body[position : position + size]
        out += b"%x" % len(piece) + ext + b"\r\n" + piece + b"\r\n"
        position, index = position + len(piece), index + 1
    out += b"0" + ext + b"\r\n"
    out += b"".join(k.encode() + b": " + v.encode("latin-1") + b"\r\n" for k, v in trailers)
    return bytes(out + b"\r\n")


def _quote(value: str) -> bytes:
    raw = value.encode("latin-1")
    if _TOKEN.match(raw):
        return raw
    return b'"' + re.sub(rb'(["\\])', rb"\\\1", raw) + b'"'


def encode_response(status: int, headers: Fields, body: bytes, framing: Framing = Framing(),
                    reason: str | None = None) -> bytes:
    """A whole response as bytes, framed as `framing` says (the connection closes after it)."""
    version = framing.version if framing.version in ("1.0", "1.1") else "1.1"
    chunked = framing.chunked and version == "1.1"
    drop = {"content-length", "transfer-encoding", "connection"}
    lines = [f"HTTP/{version} {status} {reason or REASONS.get(status, 'Unknown')}"]
    lines += [f"{k}: {v}" for k, v in (*headers, *framing.extra) if k.lower() not in drop]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        if framing.trailers:
            lines.append("Trailer: " + ", ".join(k for k, _ in framing.trailers))
    elif framing.length:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if chunked:
        return head + encode_chunked(body, framing.chunk_size, framing.extensions, framing.trailers)
    return head + body
