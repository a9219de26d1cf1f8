"""`ReadSession.fast_ack` against the core's own `receive`, byte for byte.

Two twin sessions serve the same file to the same client script: the reference is only ever
driven through `receive`/`expire` (the Result path); the fast twin first offers every datagram
to `fast_ack` and falls back to `receive` when it answers None, as the service does. After
every step both must have sent the same datagrams, armed the same retransmission timer, ended
the same way, and hold the same counters. The table covers clean transfers, a lost block, a lost
ACK, duplicate and stale ACKs, block-number rollover, option negotiation (OACK), an empty last
block, a client error and a read error; hypothesis adds arbitrary datagram/timer sequences.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.protocols.result import Result
from labkit.protocols.tftp.base import RETRANSMIT, SessionLimits
from labkit.protocols.tftp.negotiate import negotiate
from labkit.protocols.tftp.packets import Data, OptionAck, decode, encode_ack, encode_data, encode_error
from labkit.protocols.tftp.read import ReadSession

Event = bytes | None  # a datagram from the client, or None: the retransmission timer fired


class File:
    def __init__(self, content: bytes, fail_at: int | None = None) -> None:
        self.content = content
        self.fail_at = fail_at
        self.closed = False

    def read_at(self, offset: int, size: int) -> bytes:
        if self.fail_at is not None and offset >= self.fail_at:
            raise OSError(5, "Input/output error")
        return self.content[offset : offset + size]

    def close(self) -> None:
        self.closed = True


@dataclass(frozen=True)
class Out:
    """What one step did, as the wire and the timers see it."""

    send: tuple[bytes, ...]
    timer: float | None
    done: tuple[Any, ...] | None


def out_of(result: Result) -> Out:
    timer = next((t.after for t in result.timers if t.key == RETRANSMIT), None)
    done = None
    if result.done:
        (fact,) = result.facts
        done = (fact.action, fact.answer, fact.result, tuple(sorted(fact.detail.items(), key=str)))
    return Out(tuple(d.data for d in result.send), timer, done)


def state(session: ReadSession) -> tuple[Any, ...]:
    return (session.bytes_acked, session.retransmits, session.ignored, session._acked,
            session._sent_hi, session._final, dict(session._lengths), session._tries,
            session.done, session._file.closed)  # type: ignore[attr-defined]


@dataclass
class Twins:
    reference: ReadSession
    fast: ReadSession
    fast_steps: int = 0
    steps: int = 0
    log: list[Out] = field(default_factory=list)

    @classmethod
    def of(cls, content: bytes, options: tuple[tuple[str, str], ...] = (), *,
           fail_at: int | None = None, retries: int = 5) -> Twins:
        def one() -> ReadSession:
            negotiated = negotiate(options, write=False, size=len(content), netascii=False,
                                   default_timeout=2.0)
            return ReadSession(File(content, fail_at), negotiated,
                               limits=SessionLimits(retries, max_life=None))
        return cls(one(), one())

    def start(self) -> Out:
        first, second = out_of(self.reference.start()), out_of(self.fast.start())
        assert first == second
        return first

    def step(self, event: Event) -> Out:
        self.steps += 1
        if event is None:
            expected = out_of(self.reference.expire())
            got = out_of(self.fast.expire())
        else:
            expected = out_of(self.reference.receive(event))
            quick = self.fast.fast_ack(event)
            if quick is not None:
                self.fast_steps += 1
                # What the service does with it: send it, re-arm the retransmission timer.
                got = Out((quick,), self.fast.timeout, None)
            else:
                got = out_of(self.fast.receive(event))
        assert got == expected, f"step {self.steps}: {event!r}"
        assert state(self.fast) == state(self.reference), f"step {self.steps}: {event!r}"
        self.log.append(expected)
        return expected


@dataclass(frozen=True)
class Script:
    """A lock-step client: which blocks' DATA it never sees the first time (the server's timer
    resends), which of its ACKs are lost the first time, which it sends twice, and so on."""

    lost_blocks: frozenset[int] = frozenset()  # absolute block numbers
    lost_acks: frozenset[int] = frozenset()
    doubled_acks: frozenset[int] = frozenset()
    stale_after: frozenset[int] = frozenset()  # after block n, an old ACK (n - 2) arrives
    error_at: int | None = None  # the client gives up with an ERROR on this block


def drive(twins: Twins, script: Script, limit: int = 1_000_000) -> tuple[bytes, Out]:
    """Run the script to the end; the file as the client got it and the last step's Out."""
    received = bytearray()
    expected = 1
    step = twins.start()
    dropped: set[int] = set()
    acks_dropped: set[int] = set()
    for _ in range(limit):
        if step.done is not None:
            return bytes(received), step
        events: list[Event] = []
        if not step.send:
            events.append(None)
        for datagram in step.send:
            packet = decode(datagram)
            if isinstance(packet, OptionAck):
                events.append(encode_ack(0))
                continue
            if not isinstance(packet, Data):
                continue
            if packet.block != expected & 0xFFFF:
                events.append(encode_ack((expected - 1) & 0xFFFF))  # a resent block: ack again
                continue
            index = expected
            if index in script.lost_blocks and index not in dropped:
                dropped.add(index)
                events.append(None)  # never arrived: the server's timer fires
                continue
            if script.error_at == index:
                events.append(encode_error(0, "client gave up"))
                continue
            received += packet.payload
            expected += 1
            if index in script.lost_acks and index not in acks_dropped:
                acks_dropped.add(index)
                events.append(None)  # the ACK never arrives: the server's timer resends
                continue
            events.append(encode_ack(packet.block))
            if index in script.doubled_acks:
                events.append(encode_ack(packet.block))
            if index in script.stale_after and index > 2:
                events.append(encode_ack((index - 2) & 0xFFFF))
        step = Out((), None, None)
        for event in events:
            got = twins.step(event)
            step = Out(step.send + got.send, got.timer, got.done or step.done)
            if got.done is not None:
                break
    raise AssertionError("transfer did not end")


CONTENT = random.Random(15).randbytes(40_000)
ROLLOVER = random.Random(16).randbytes(8 * 65_536 + 3)  # 65,537 blocks of 8 bytes: wraps to 0

TABLE: list[tuple[str, bytes, tuple[tuple[str, str], ...], Script]] = [
    ("plain 512", CONTENT, (), Script()),
    ("blksize 1468 (OACK, then ACK 0)", CONTENT, (("blksize", "1468"),), Script()),
    ("multiple of blksize: empty last block", CONTENT[:5120], (), Script()),
    ("one short block", CONTENT[:100], (), Script()),
    ("empty file", b"", (), Script()),
    ("lost blocks", CONTENT, (), Script(lost_blocks=frozenset({1, 2, 17, 40}))),
    ("lost ACKs", CONTENT, (), Script(lost_acks=frozenset({1, 5, 6, 78}))),
    ("duplicate ACKs", CONTENT, (), Script(doubled_acks=frozenset({3, 4, 9}))),
    ("stale ACKs", CONTENT, (), Script(stale_after=frozenset({10, 11, 50}))),
    ("client error", CONTENT, (), Script(error_at=30)),
    ("last block lost and its ACK lost", CONTENT, (),
     Script(lost_blocks=frozenset({79}), lost_acks=frozenset({79}))),
    ("rollover with losses around the wrap", ROLLOVER, (("blksize", "8"),),
     Script(lost_blocks=frozenset({65_535, 65_536}), lost_acks=frozenset({65_537}),
            doubled_acks=frozenset({65_534}), stale_after=frozenset({65_538}))),
]


@pytest.mark.parametrize("content,options,script", [t[1:] for t in TABLE], ids=[t[0] for t in TABLE])
def test_fast_path_is_byte_identical_to_the_core(content: bytes, options: tuple[tuple[str, str], ...],
                                                 script: Script) -> None:
    twins = Twins.of(content, options)
    received, last = drive(twins, script)
    assert last.done is not None
    if script.error_at is None:
        assert received == content
        assert twins.reference.done is not None and twins.reference.done.result == "ok"
    blocks = len(content) // twins.fast.blksize + 1
    if blocks > 4 and script.error_at is None:
        assert twins.fast_steps > blocks // 2  # the fast path did the work, the core the rest


def test_rollover_sends_block_zero_through_the_fast_path() -> None:
    twins = Twins.of(ROLLOVER, (("blksize", "8"),))
    drive(twins, Script())
    wire = [decode(d).block for out in twins.log for d in out.send]  # type: ignore[union-attr]
    assert wire.count(0) == 1 and wire[-1] == 65_537 & 0xFFFF


def test_read_error_is_left_to_the_core() -> None:
    twins = Twins.of(CONTENT, fail_at=4096)
    received, last = drive(twins, Script())
    assert received == CONTENT[:4096]
    assert last.send == (encode_error(0, "read error"),)
    assert twins.fast.done is not None and twins.fast.done.result == "read-error"


def test_timeout_after_retries_is_identical() -> None:
    twins = Twins.of(CONTENT, retries=2)
    twins.start()
    twins.step(encode_ack(1))
    for _ in range(3):
        last = twins.step(None)
    assert last.done is not None and twins.fast.done is not None
    assert twins.fast.done.result == "timeout"


@pytest.mark.parametrize("options", [(("windowsize", "4"),), ()])
def test_fast_ack_declines_windows_and_netascii(options: tuple[tuple[str, str], ...]) -> None:
    netascii = not options
    negotiated = negotiate(options, write=False, size=len(CONTENT), netascii=netascii,
                           default_timeout=2.0)
    session = ReadSession(File(CONTENT), negotiated, netascii=netascii)
    session.start()
    if options:
        session.receive(encode_ack(0))
    assert not session.lock_step
    assert session.fast_ack(encode_ack(1)) is None


EVENTS = st.lists(
    st.one_of(
        st.just(None),
        st.binary(max_size=12),
        st.builds(encode_ack, st.integers(0, 12)),
        st.builds(lambda b: encode_data(b, b"x"), st.integers(0, 12)),
        st.builds(encode_error, st.integers(0, 8), st.just("x")),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(EVENTS, st.integers(8, 16), st.integers(0, 200), st.booleans())
def test_arbitrary_sequences_agree(events: list[Event], blksize: int, size: int, oack: bool) -> None:
    content = bytes(range(256)) * (size // 256 + 1)
    options = (("blksize", str(blksize)),) if oack else ()
    twins = Twins.of(content[:size], options, retries=3)
    twins.start()
    for event in events:
        twins.step(event)


def _in_order(twins: Twins) -> Callable[[], Event]:
    return lambda: encode_ack((twins.reference._acked + 1) & 0xFFFF)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["next", "again", "timer", "old"]), max_size=120),
       st.integers(8, 64), st.integers(0, 3000))
def test_mostly_in_order_sequences_agree(moves: list[str], blksize: int, size: int) -> None:
    """Random walks near the steady state, where fast_ack answers most of the time."""
    content = random.Random(size).randbytes(size)
    twins = Twins.of(content, (("blksize", str(blksize)),), retries=3)
    twins.start()
    twins.step(encode_ack(0))
    nxt = _in_order(twins)
    for move in moves:
        acked = twins.reference._acked
        event: Event = {"next": nxt(), "again": encode_ack(acked & 0xFFFF), "timer": None,
                        "old": encode_ack((acked - 1) & 0xFFFF)}[move]
        twins.step(event)
        if twins.reference.done is not None:
            break
