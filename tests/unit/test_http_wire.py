"""HTTP/1.x response framing: 1.0 with and without Content-Length, chunked with extensions and
trailers, bounds, and malformed framing as a FramingError (never another exception)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labkit.errors import CodecError
from labkit.protocols.http_wire import (
    Framing,
    FramingError,
    ResponseReader,
    encode_chunked,
    encode_response,
    parse_request_head,
    read_response,
)

bodies = st.binary(max_size=5000)
tokens = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=8)
values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12)


def _chunked_head(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body


@given(bodies, st.lists(st.integers(1, 700), min_size=1, max_size=5),
       st.lists(st.tuples(tokens, values), max_size=3),
       st.lists(st.tuples(tokens.map(lambda t: "x-" + t), values.map(str.strip)), max_size=3))
def test_chunked_round_trip(body: bytes, sizes: list[int], extensions: list[tuple[str, str]],
                            trailers: list[tuple[str, str]]) -> None:
    wire = _chunked_head(encode_chunked(body, extensions=extensions, trailers=tuple(trailers), sizes=sizes))
    response = read_response(wire)
    assert response.body == body and response.framing == "chunked"
    assert response.trailers == tuple(trailers)
    assert set(response.extensions) <= set(extensions) or (not body and not extensions)


@given(bodies, st.integers(1, 64))
def test_chunked_fed_in_pieces(body: bytes, step: int) -> None:
    wire = _chunked_head(encode_chunked(body, chunk_size=97, trailers=(("X-Sum", "1"),)))
    reader = ResponseReader()
    for at in range(0, len(wire), step):
        reader.feed(wire[at : at + step])
    assert reader.done  # complete without waiting for the close
    assert reader.response().body == body


@given(bodies, st.lists(st.integers(1, 3000), min_size=1, max_size=8), st.binary(max_size=20))
def test_a_length_body_fed_in_any_pieces(body: bytes, steps: list[int], after: bytes) -> None:
    """Pieces of a Content-Length body go straight into the body when nothing is buffered; the
    result is the same however the bytes come, and bytes after the answer are not read."""
    wire = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body + after
    reader, at, turn = ResponseReader(), 0, 0
    while at < len(wire):
        step = steps[turn % len(steps)]
        reader.feed(wire[at : at + step])
        at, turn = at + step, turn + 1
    assert reader.done and reader.response().body == body and reader.response().framing == "length"


@given(bodies, st.sampled_from(["1.0", "1.1"]), st.booleans(), st.booleans())
def test_encode_response_round_trip(body: bytes, version: str, chunked: bool, length: bool) -> None:
    framing = Framing(version=version, chunked=chunked, length=length, chunk_size=300,
                      extensions=(("lab", "kit"),), trailers=(("X-Trail", "yes"),))
    wire = encode_response(200, (("Server", "labkit"),), body, framing)
    response = read_response(wire)
    assert response.body == body and response.version == version and response.status == 200
    expected = "chunked" if chunked and version == "1.1" else ("length" if length else "close")
    assert response.framing == expected


def test_http10_without_length_reads_to_close() -> None:
    reader = ResponseReader()
    reader.feed(b"HTTP/1.0 200 OK\r\nServer: old\r\n\r\nfirst ")
    reader.feed(b"second")
    assert not reader.done
    reader.eof()
    assert reader.response().body == b"first second" and reader.response().framing == "close"


def test_http10_with_length() -> None:
    response = read_response(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabcTRAILING")
    assert response.body == b"abc" and response.version == "1.0"


def test_head_and_204_have_no_body() -> None:
    assert read_response(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "HEAD").body == b""
    assert read_response(b"HTTP/1.1 204 No Content\r\n\r\n").framing == "none"


def test_interim_100_skipped() -> None:
    response = read_response(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert response.status == 200 and response.body == b"ok"


def test_quoted_extension_value() -> None:
    wire = _chunked_head(b'3;name="a \\"q\\"";flag\r\nabc\r\n0\r\n\r\n')
    response = read_response(wire)
    assert response.body == b"abc"
    assert response.extensions == (("name", 'a "q"'), ("flag", ""))


@pytest.mark.parametrize("wire, problem", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "short of the Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nx", "invalid Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "invalid Content-Length"),
    (b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.0"),
    (_chunked_head(b"zz\r\n"), "malformed chunk-size"),
    (_chunked_head(b"3\r\nabcdef\r\n0\r\n\r\n"), "longer than its size"),
    (_chunked_head(b"5\r\nab"), "inside the chunked body"),
    (_chunked_head(b"1;=x\r\na\r\n0\r\n\r\n"), "malformed chunk extension"),
    (b"HTTP/2 200 OK\r\n\r\n", "status line"),
    (b"SIP/2.0 200 OK\r\n\r\n", "status line"),
    (b"HTTP/1.1 200 OK\r\n folded\r\n\r\n", "folding"),
    (b"", "without a response"),
    (b"HTTP/1.1 200 OK\r\nServer: x", "before a complete response head"),
])
def test_malformed_framing(wire: bytes, problem: str) -> None:
    with pytest.raises(FramingError, match=problem):
        read_response(wire)


def test_bounds() -> None:
    with pytest.raises(FramingError, match="bound"):
        read_response(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100, max_body=10)
    with pytest.raises(FramingError, match="bound"):
        read_response(_chunked_head(encode_chunked(b"y" * 50, 7)), max_body=20)
    with pytest.raises(FramingError, match="bound"):
        read_response(b"HTTP/1.0 200 OK\r\n\r\n" + b"z" * 50, max_body=20)
    with pytest.raises(FramingError, match="longer than"):
        ResponseReader().feed(b"HTTP/1.1 200 OK\r\n" + b"X-Long: " + b"a" * 20000)
    with pytest.raises(FramingError, match="chunk-size line"):
        ResponseReader().feed(_chunked_head(b"1" + b" " * 2000))


@given(st.binary(max_size=300), st.sampled_from(["GET", "HEAD", "CONNECT"]))
def test_arbitrary_bytes_raise_only_codec_errors(data: bytes, method: str) -> None:
    with contextlib.suppress(CodecError):
        read_response(data, method)


@given(st.binary(max_size=200))
def test_arbitrary_request_heads(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        parse_request_head(data)


def test_request_head_forms() -> None:
    head = parse_request_head(b"GET http://prov.lab.example/a.xml HTTP/1.1\r\nHost: prov.lab.example")
    assert head.target == "http://prov.lab.example/a.xml" and head.header("host") == "prov.lab.example"
    assert parse_request_head(b"CONNECT prov.lab.example:443 HTTP/1.1").method == "CONNECT"
