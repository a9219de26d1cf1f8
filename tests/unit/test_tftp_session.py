"""TFTP session cores driven without sockets or clock (labkit.protocols.tftp.read/write).

Each test feeds datagrams and timer expiries into a ReadSession/WriteSession and checks the
datagrams it answers with, byte for byte where it matters. `Reading`/`Writing` below present
each `Result` as a `Step` (datagrams as bytes, the retransmission timer, the end, the bytes an
upload wrote during that step) so that the checks read as plainly as the protocol.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.protocols.result import Result
from labkit.protocols.tftp.base import RETRANSMIT, SessionLimits
from labkit.protocols.tftp.negotiate import Negotiated, negotiate, parse_mode
from labkit.protocols.tftp.netascii import NetasciiDecoder, NetasciiReader, to_netascii
from labkit.protocols.tftp.packets import (
    Data,
    Error,
    OptionAck,
    decode,
    encode_ack,
    encode_data,
    encode_error,
)
from labkit.protocols.tftp.read import ReadSession
from labkit.protocols.tftp.write import WriteSession


def reader(content: bytes):
    """read_at over bytes, counting the largest read (streaming must read block-sized pieces)."""

    def read_at(offset: int, size: int) -> bytes:
        read_at.largest = max(read_at.largest, size)  # type: ignore[attr-defined]
        return content[offset : offset + size]

    read_at.largest = 0  # type: ignore[attr-defined]
    return read_at


@dataclass(frozen=True)
class Outcome:
    result: str
    answer: str
    retransmits: int
    peer_error: str | None


@dataclass
class Step:
    send: list[bytes] = field(default_factory=list)
    timer: float | None = None
    done: Outcome | None = None
    write: bytes = b""


def as_step(result: Result, written: bytes = b"") -> Step:
    timer = next((t.after for t in result.timers if t.key == RETRANSMIT), None)
    done = None
    if result.done:
        (fact,) = result.facts
        done = Outcome(fact.result, fact.answer, fact.detail["retransmits"], fact.detail["peer_error"])
    return Step([d.data for d in result.send], timer, done, written)


class File:
    def __init__(self, read_at: Callable[[int, int], bytes]) -> None:
        self.read_at = read_at
        self.closed = False

    def close(self) -> None:
        self.closed = True


class Reading:
    """A ReadSession seen through Steps."""

    def __init__(self, read_at: Callable[[int, int], bytes], negotiated: Negotiated, *,
                 netascii: bool = False, retries: int = 5) -> None:
        self.file = File(read_at)
        self.session = ReadSession(self.file, negotiated, netascii=netascii,
                                   limits=SessionLimits(retries, max_life=None))

    def start(self) -> Step:
        return as_step(self.session.start())

    def receive(self, datagram: bytes) -> Step:
        return as_step(self.session.receive(datagram))

    def expire(self) -> Step:
        return as_step(self.session.expire())

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)


class Target:
    def __init__(self) -> None:
        self.data = bytearray()
        self.committed = self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data

    def commit(self) -> bool:
        self.committed = True
        return True

    def close(self) -> None:
        self.closed = True


class Writing:
    """A WriteSession seen through Steps (`write`: what the step handed to the target)."""

    def __init__(self, negotiated: Negotiated, *, netascii: bool = False, retries: int = 5,
                 max_bytes: int = 64 * 1024 * 1024) -> None:
        self.target = Target()
        self.session = WriteSession(self.target, negotiated, netascii=netascii,
                                    limits=SessionLimits(retries, max_life=None), max_bytes=max_bytes)

    def _step(self, call: Callable[[], Result]) -> Step:
        before = len(self.target.data)
        result = call()
        return as_step(result, bytes(self.target.data[before:]))

    def start(self) -> Step:
        return self._step(self.session.start)

    def receive(self, datagram: bytes) -> Step:
        return self._step(lambda: self.session.receive(datagram))

    def expire(self) -> Step:
        return self._step(self.session.expire)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)


def rrq(options: tuple[tuple[str, str], ...] = (), size: int | None = 0,
        netascii: bool = False) -> Negotiated:
    return negotiate(options, write=False, size=size, netascii=netascii, default_timeout=2.0)


def blocks_of(step: Step) -> list[tuple[int, bytes]]:
    out = []
    for datagram in step.send:
        packet = decode(datagram)
        assert isinstance(packet, Data), packet
        out.append((packet.block, packet.payload))
    return out


# --------------------------------------------------------------------------- negotiation


def test_no_options_is_plain_rfc1350() -> None:
    content = os.urandom(1300)
    session = Reading(reader(content), rrq(size=len(content)))
    step = session.start()
    assert step.send == [b"\x00\x03\x00\x01" + content[:512]]  # DATA 1 at once, no OACK
    assert step.timer == 2.0
    step = session.receive(b"\x00\x04\x00\x01")
    assert step.send == [b"\x00\x03\x00\x02" + content[512:1024]]
    step = session.receive(b"\x00\x04\x00\x02")
    assert step.send == [b"\x00\x03\x00\x03" + content[1024:]]
    step = session.receive(b"\x00\x04\x00\x03")
    assert step.send == []
    assert step.done is not None
    assert (step.done.result, step.done.answer) == ("ok", "1300 bytes in 3 blocks")


def test_options_negotiated_oack_then_data_after_ack0() -> None:
    content = os.urandom(5000)
    options = (("blksize", "1468"), ("tsize", "0"), ("timeout", "3"), ("windowsize", "2"))
    session = Reading(reader(content), rrq(options, size=len(content)))
    step = session.start()
    assert step.send == [b"\x00\x06blksize\x001468\x00tsize\x005000\x00timeout\x003\x00"
                         b"windowsize\x002\x00"]
    assert step.timer == 3.0  # the negotiated timeout drives retransmission
    assert session.receive(encode_ack(1)).send == []  # anything but ACK 0 is ignored here
    step = session.receive(encode_ack(0))
    assert blocks_of(step) == [(1, content[:1468]), (2, content[1468:2936])]
    step = session.receive(encode_ack(2))
    assert blocks_of(step) == [(3, content[2936:4404]), (4, content[4404:])]
    step = session.receive(encode_ack(4))
    assert step.done is not None and step.done.answer == "5000 bytes in 4 blocks"


def test_option_names_are_case_insensitive_and_echoed_as_sent() -> None:
    negotiated = rrq((("BlkSize", "1024"), ("TSIZE", "0")), size=77)
    assert negotiated.blksize == 1024
    assert negotiated.acked == (("BlkSize", "1024"), ("TSIZE", "77"))


@pytest.mark.parametrize(
    "option",
    [("blksize", "7"), ("blksize", "65465"), ("blksize", "-8"), ("blksize", "+512"), ("blksize", " 512"),
     ("blksize", "512x"), ("blksize", ""), ("timeout", "0"), ("timeout", "256"), ("windowsize", "0"),
     ("windowsize", "65536"), ("multicast", ""), ("foo", "bar"),
     ("blksize", "9" * 40)],
)
def test_out_of_range_and_unknown_options_are_ignored(option: tuple[str, str]) -> None:
    content = b"x" * 600
    negotiated = rrq((option,), size=len(content))
    assert negotiated.acked == ()
    assert negotiated.ignored == (f"{option[0]}={option[1]}",)
    # Nothing acknowledged: a plain transfer, first DATA directly, 512-byte blocks.
    step = Reading(reader(content), negotiated).start()
    assert blocks_of(step) == [(1, content[:512])]


def test_bounds_are_accepted() -> None:
    low = rrq((("blksize", "8"), ("timeout", "1"), ("windowsize", "1")))
    high = rrq((("blksize", "65464"), ("timeout", "255"), ("windowsize", "65535")))
    assert (low.blksize, low.timeout, low.windowsize) == (8, 1.0, 1)
    assert (high.blksize, high.timeout, high.windowsize) == (65464, 255.0, 65535)


def test_only_valid_options_reach_the_oack_and_first_occurrence_wins() -> None:
    negotiated = rrq((("blksize", "99999"), ("tsize", "0"), ("blksize", "1024"), ("x", "1")), size=5)
    assert negotiated.acked == (("tsize", "5"),)
    assert negotiated.blksize == 512


def test_server_cap_on_blksize_answers_smaller() -> None:
    negotiated = negotiate((("blksize", "9000"),), write=False, size=1, netascii=False,
                           default_timeout=1.0, max_blksize=1468)
    assert negotiated.acked == (("blksize", "1468"),)


def test_tsize_on_read_answers_the_size_whatever_the_value() -> None:
    assert rrq((("tsize", "enable"),), size=10).acked == (("tsize", "10"),)  # atftp's literal value
    assert rrq((("tsize", "0"),), size=None).acked == ()  # size unknown: no answer


@pytest.mark.parametrize("value", ["abc", "-1", "", "1e3"])
def test_tsize_on_write_must_be_a_number(value: str) -> None:
    negotiated = negotiate((("tsize", value),), write=True, size=None, netascii=False, default_timeout=1)
    assert negotiated.acked == () and negotiated.tsize is None


def test_tsize_not_answered_in_netascii() -> None:
    assert rrq((("tsize", "0"),), size=10, netascii=True).acked == ()


def test_modes() -> None:
    assert parse_mode("OCTET") == "octet"
    assert parse_mode("netascii") == "netascii"
    assert parse_mode("mail") is None
    assert parse_mode("binary") is None


# --------------------------------------------------------------------------- transfer edge cases


def test_size_multiple_of_blksize_ends_with_empty_block() -> None:
    session = Reading(reader(b"a" * 1024), rrq())
    session.start()
    session.receive(encode_ack(1))
    step = session.receive(encode_ack(2))
    assert step.send == [b"\x00\x03\x00\x03"]
    assert session.receive(encode_ack(3)).done is not None


def test_empty_file() -> None:
    session = Reading(reader(b""), rrq())
    assert session.start().send == [b"\x00\x03\x00\x01"]
    done = session.receive(encode_ack(1)).done
    assert done is not None and done.answer == "0 bytes in 1 blocks"


def test_duplicate_ack_does_not_resend() -> None:
    session = Reading(reader(b"z" * 2000), rrq())
    session.start()
    assert blocks_of(session.receive(encode_ack(1)))[0][0] == 2
    for _ in range(3):
        step = session.receive(encode_ack(1))  # the Sorcerer's Apprentice trigger
        assert step.send == [] and step.timer is None and step.done is None
    assert blocks_of(session.receive(encode_ack(2)))[0][0] == 3
    assert session.ignored == 3


def test_stale_and_future_acks_are_ignored() -> None:
    session = Reading(reader(b"z" * 2000), rrq())
    session.start()
    assert session.receive(encode_ack(5)).send == []  # not sent yet
    assert session.receive(encode_ack(65535)).send == []
    assert blocks_of(session.receive(encode_ack(1)))[0][0] == 2


def test_timeout_retransmits_then_gives_up() -> None:
    content = b"q" * 100
    session = Reading(reader(content), rrq(), retries=3)
    first = session.start()
    for _ in range(3):
        step = session.expire()
        assert step.send == first.send  # the same DATA again
        assert step.timer == 2.0
    step = session.expire()
    assert step.done is not None and step.done.result == "timeout"
    assert step.send == [encode_error(0, "timeout")]
    assert step.done.retransmits == 3
    assert session.receive(encode_ack(1)).send == []  # over is over


def test_oack_is_retransmitted_on_timeout() -> None:
    session = Reading(reader(b"x"), rrq((("blksize", "100"),), size=1), retries=1)
    oack = session.start().send
    assert session.expire().send == oack
    assert session.expire().done is not None


def test_progress_resets_the_retry_count() -> None:
    session = Reading(reader(b"x" * 5000), rrq(), retries=1)
    session.start()
    session.expire()
    session.receive(encode_ack(1))
    assert session.expire().done is None  # a fresh budget after progress


def test_client_error_aborts() -> None:
    session = Reading(reader(b"x" * 600), rrq((("blksize", "100"),), size=600))
    session.start()
    step = session.receive(encode_error(8, "option refused"))
    assert step.done is not None and step.done.result == "aborted"
    assert step.done.peer_error == "8 option refused"
    assert step.send == []


def test_windowsize_rewinds_on_ack_inside_window() -> None:
    content = bytes(range(100))
    session = Reading(reader(content), rrq((("blksize", "8"), ("windowsize", "4")), size=100))
    session.start()
    step = session.receive(encode_ack(0))
    assert [b for b, _ in blocks_of(step)] == [1, 2, 3, 4]
    # Block 3 was lost: the client acknowledges 2, the last in order; restart at 3.
    step = session.receive(encode_ack(2))
    assert [b for b, _ in blocks_of(step)] == [3, 4, 5, 6]
    assert blocks_of(step)[0][1] == content[16:24]
    assert session.retransmits == 4
    assert session.receive(encode_ack(2)).send == []  # a repeated ACK 2 is a duplicate now
    step = session.receive(encode_ack(6))
    assert [b for b, _ in blocks_of(step)] == [7, 8, 9, 10]
    step = session.receive(encode_ack(10))
    assert blocks_of(step) == [(11, content[80:88]), (12, content[88:96]), (13, content[96:])]
    done = session.receive(encode_ack(13)).done
    assert done is not None and done.answer == "100 bytes in 13 blocks"


def test_window_timeout_resends_the_whole_window() -> None:
    session = Reading(reader(b"w" * 100), rrq((("blksize", "8"), ("windowsize", "3")), size=100))
    session.start()
    first = session.receive(encode_ack(0)).send
    assert len(first) == 3
    assert session.expire().send == first


def test_block_numbers_roll_over_to_zero() -> None:
    blksize, count = 8, 65536 + 10
    content = os.urandom(blksize * (count - 1) + 3)
    session = Reading(reader(content), rrq((("blksize", "8"),), size=len(content)))
    session.start()
    seen: list[int] = []
    step = session.receive(encode_ack(0))
    for index in range(1, count + 1):
        ((wire, payload),) = blocks_of(step)
        assert payload == content[(index - 1) * blksize : index * blksize]
        seen.append(wire)
        step = session.receive(encode_ack(wire))
    assert seen[65534:65538] == [65535, 0, 1, 2]
    assert step.done is not None
    assert step.done.answer == f"{len(content)} bytes in {count} blocks"


def test_reads_are_block_sized() -> None:
    read_at = reader(b"r" * 100_000)
    session = Reading(read_at, rrq((("blksize", "1468"),), size=100_000))
    session.start()
    session.receive(encode_ack(0))
    assert read_at.largest == 1468  # type: ignore[attr-defined]


def test_read_error_fails_with_error_0() -> None:
    def broken(offset: int, size: int) -> bytes:
        raise OSError("I/O error")

    step = Reading(broken, rrq()).start()
    assert step.done is not None and step.done.result == "read-error"
    assert decode(step.send[0]) == Error(0, "read error")


def test_non_ack_packets_are_ignored() -> None:
    session = Reading(reader(b"x" * 600), rrq())
    session.start()
    for junk in [b"", b"\x00", encode_data(1, b"x"), b"\x00\x01f\x00octet\x00", b"\x00\x09"]:
        assert session.receive(junk).send == []
    assert session.done is None


# --------------------------------------------------------------------------- netascii


def run_read(session: Reading) -> bytes:
    """Drive a session with a perfect client; the bytes it receives."""
    out = bytearray()
    step = session.start()
    if step.send and isinstance(decode(step.send[0]), OptionAck):
        step = session.receive(encode_ack(0))
    while step.done is None:
        blocks = blocks_of(step)
        for _, payload in blocks:
            out += payload
        step = session.receive(encode_ack(blocks[-1][0]))
    return bytes(out)


def test_netascii_converts_line_ends() -> None:
    content = b"a\nb\rc\r\nd"
    session = Reading(reader(content), rrq(), netascii=True)
    assert run_read(session) == b"a\r\nb\r\x00c\r\x00\r\nd"
    assert to_netascii(content) == b"a\r\nb\r\x00c\r\x00\r\nd"


def test_netascii_pair_straddling_a_block_is_carried() -> None:
    reader_ = NetasciiReader(reader(b"abcdefg\nh"), 8)
    assert reader_.block(1) == b"abcdefg\r"
    assert reader_.block(2) == b"\nh"


@settings(max_examples=150)
@given(st.binary(max_size=300).map(lambda b: bytes(c if c % 3 else 10 + (c % 2) * 3 for c in b)),
       st.integers(8, 40), st.integers(1, 5))
def test_netascii_blocks_equal_the_converted_stream(content: bytes, blksize: int, window: int) -> None:
    options = (("blksize", str(blksize)), ("windowsize", str(window)))
    session = Reading(reader(content), rrq(options, netascii=True), netascii=True)
    assert run_read(session) == to_netascii(content)


@given(st.binary(max_size=300).map(lambda b: bytes(c if c % 3 else 10 + (c % 2) * 3 for c in b)),
       st.integers(8, 40))
def test_netascii_rewind_reproduces_blocks(content: bytes, blksize: int) -> None:
    reader_ = NetasciiReader(reader(content), blksize)
    first = [reader_.block(i) for i in range(1, 4)]
    assert [reader_.block(i) for i in range(1, 4)] == first  # a window resent is identical


@given(st.binary(max_size=300).map(lambda b: bytes(c if c % 3 else 10 + (c % 2) * 3 for c in b)),
       st.integers(1, 50))
def test_netascii_decoder_inverts(content: bytes, cut: int) -> None:
    wire = to_netascii(content)
    decoder = NetasciiDecoder()
    pieces = [wire[i : i + cut] for i in range(0, len(wire), cut)] or [b""]
    out = b"".join(decoder.feed(piece, i == len(pieces) - 1) for i, piece in enumerate(pieces))
    assert out == content


# --------------------------------------------------------------------------- lossy client <-> server


def lossy_transfer(content: bytes, blksize: int, window: int, drop: random.Random,
                   loss: float) -> bytes | None:
    """A RFC 7440 client against a ReadSession over a channel that drops packets both ways.

    No clock: when nothing is in flight, both sides' timers fire. Returns the file, or None
    when the server gave up.
    """
    options = (("blksize", str(blksize)), ("windowsize", str(window)))
    session = Reading(reader(content), rrq(options, size=len(content)), retries=50)
    received = bytearray()
    expected = 1  # next absolute block wanted by the client
    last_ack = encode_ack(0)
    to_server: list[bytes] = []
    step = session.start()
    done = False
    for _ in range(100_000):
        if step.done is not None:
            return bytes(received) if done else None
        to_client = [d for d in step.send if drop.random() >= loss]
        since_ack = 0
        for datagram in to_client:
            packet = decode(datagram)
            if isinstance(packet, OptionAck):
                to_server.append(encode_ack(0))
                continue
            assert isinstance(packet, Data)
            if packet.block == expected & 0xFFFF:
                received += packet.payload
                expected += 1
                since_ack += 1
                if len(packet.payload) < blksize:
                    done = True
                    last_ack = encode_ack(packet.block)
                    to_server.append(last_ack)
                    break
                if since_ack == window:
                    last_ack = encode_ack(packet.block)
                    to_server.append(last_ack)
                    since_ack = 0
            else:  # out of order: ack the last block in order
                last_ack = encode_ack((expected - 1) & 0xFFFF)
                to_server.append(last_ack)
                break
        delivered = [d for d in to_server if drop.random() >= loss]
        to_server = []
        if delivered:
            step = Step()
            for datagram in delivered:
                got = session.receive(datagram)
                step.send += got.send
                step.done = step.done or got.done
        else:
            step = session.expire()
            if not done:
                to_server.append(last_ack)  # the client's own timer: ack again
            elif step.done is None:
                to_server.append(last_ack)
    raise AssertionError("transfer did not end")


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 3000), st.integers(8, 600), st.integers(1, 8), st.integers(0, 2**32),
       st.sampled_from([0.0, 0.05, 0.2]))
def test_lossy_channel_delivers_exact_content(size: int, blksize: int, window: int, seed: int,
                                              loss: float) -> None:
    content = random.Random(seed).randbytes(size)
    result = lossy_transfer(content, blksize, window, random.Random(seed + 1), loss)
    assert result == content


# --------------------------------------------------------------------------- robustness


EVENTS = st.lists(
    st.one_of(
        st.just(None),  # a timer expiry
        st.binary(max_size=40),
        st.builds(encode_ack, st.integers(0, 20)),
        st.builds(lambda b, n: encode_data(b, b"d" * n), st.integers(0, 20), st.integers(0, 20)),
        st.builds(encode_error, st.integers(0, 8), st.just("x")),
    ),
    max_size=60,
)


@settings(max_examples=200)
@given(EVENTS, st.integers(8, 16), st.integers(1, 4), st.booleans(), st.booleans())
def test_arbitrary_sequences_never_raise_read(events: list[bytes | None], blksize: int, window: int,
                                              oack: bool, netascii: bool) -> None:
    content = b"ab\ncd\r" * 20
    options = (("blksize", str(blksize)), ("windowsize", str(window))) if oack else ()
    session = Reading(reader(content), rrq(options, size=len(content), netascii=netascii),
                          netascii=netascii, retries=3)
    check(session.start())
    was_done = False
    for event in events:
        step = session.expire() if event is None else session.receive(event)
        check(step)
        if was_done:
            assert step.send == [] and step.done is None
        was_done = session.done is not None


@settings(max_examples=200)
@given(EVENTS, st.integers(8, 16), st.integers(1, 4), st.booleans())
def test_arbitrary_sequences_never_raise_write(events: list[bytes | None], blksize: int, window: int,
                                               netascii: bool) -> None:
    options = (("blksize", str(blksize)), ("windowsize", str(window)))
    negotiated = negotiate(options, write=True, size=None, netascii=netascii, default_timeout=1.0)
    session = Writing(negotiated, netascii=netascii, retries=3, max_bytes=100)
    check(session.start())
    for event in events:
        check(session.expire() if event is None else session.receive(event))


def check(step: Step) -> None:
    for datagram in step.send:
        decode(datagram)  # everything a session sends is a well-formed packet


# --------------------------------------------------------------------------- uploads


def wrq(options: tuple[tuple[str, str], ...] = (), netascii: bool = False) -> Negotiated:
    return negotiate(options, write=True, size=None, netascii=netascii, default_timeout=2.0)


def test_plain_upload() -> None:
    session = Writing(wrq())
    assert session.start().send == [b"\x00\x04\x00\x00"]
    step = session.receive(encode_data(1, b"a" * 512))
    assert (step.send, step.write) == ([encode_ack(1)], b"a" * 512)
    step = session.receive(encode_data(2, b"tail"))
    assert (step.send, step.write) == ([encode_ack(2)], b"tail")
    assert step.done is None  # dallying: the final ACK may be lost
    assert session.receive(encode_data(2, b"tail")).send == [encode_ack(2)]
    done = session.expire().done
    assert done is not None and (done.result, done.answer) == ("ok", "516 bytes in 2 blocks")


def test_upload_with_options_and_window() -> None:
    session = Writing(wrq((("blksize", "8"), ("windowsize", "2"), ("tsize", "20"))))
    assert session.start().send == [b"\x00\x06blksize\x008\x00windowsize\x002\x00tsize\x0020\x00"]
    assert session.receive(encode_data(1, b"12345678")).send == []  # mid-window: no ACK
    assert session.receive(encode_data(2, b"abcdefgh")).send == [encode_ack(2)]
    # Block 3 lost: block 4 arrives; one ACK of block 2, however many blocks follow.
    assert session.receive(encode_data(4, b"zzzzzzzz")).send == [encode_ack(2)]
    assert session.receive(encode_data(5, b"z")).send == []
    assert session.receive(encode_data(3, b"ABCDEFGH")).write == b"ABCDEFGH"
    step = session.receive(encode_data(4, b"end"))
    assert step.send == [encode_ack(4)]
    assert session.expire().done is not None


def test_upload_timeout_reacks_then_gives_up() -> None:
    session = Writing(wrq(), retries=2)
    session.start()
    session.receive(encode_data(1, b"x" * 512))
    assert session.expire().send == [encode_ack(1)]
    assert session.expire().send == [encode_ack(1)]
    done = session.expire().done
    assert done is not None and done.result == "timeout"


def test_upload_too_large() -> None:
    session = Writing(wrq(), max_bytes=600)
    session.start()
    session.receive(encode_data(1, b"x" * 512))
    step = session.receive(encode_data(2, b"x" * 512))
    assert step.done is not None and step.done.result == "too-large"
    assert decode(step.send[0]) == Error(3, "upload too large")
    refused = Writing(wrq((("tsize", "700"),)), max_bytes=600).start()
    assert refused.done is not None and refused.done.result == "too-large"


def test_upload_netascii_is_decoded() -> None:
    session = Writing(wrq(netascii=True), netascii=True)
    session.start()
    wire = to_netascii(b"line\nx\ry")
    assert session.receive(encode_data(1, wire)).write == b"line\nx\ry"


def test_upload_life_ends_with_error_and_no_commit_unless_whole() -> None:
    from labkit.protocols.tftp.base import LIFE

    cut = Writing(wrq())
    cut.start()
    cut.receive(encode_data(1, b"x" * 512))
    ended = as_step(cut.session.expire(LIFE))
    assert ended.done is not None and ended.done.result == "expired"
    assert not cut.target.committed and cut.target.closed
    whole = Writing(wrq())
    whole.start()
    whole.receive(encode_data(1, b"tail"))  # whole, dallying for a lost final ACK
    ended = as_step(whole.session.expire(LIFE))
    assert ended.done is not None and ended.done.result == "ok" and whole.target.committed
