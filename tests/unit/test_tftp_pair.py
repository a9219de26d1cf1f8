"""The phone's client session against the server's session, with no sockets and no clock (in the
spirit of h11's tests): a `Pair` carries datagrams between the two sans-IO sessions, can lose
chosen ones, and when nothing is in flight advances a virtual clock to the earliest timer."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.protocols.result import Result
from labkit.protocols.tftp.accept import Accept, Load, Missing, ServerRules, TftpFile, accept
from labkit.protocols.tftp.base import SessionLimits
from labkit.protocols.tftp.client import ClientOptions, ClientSession
from labkit.protocols.tftp.packets import (
    Data,
    Packet,
    ReadRequest,
    decode,
    encode_ack,
    encode_data,
    encode_error,
    encode_oack,
)

CLIENT, SERVER_PORT, TID = ("10.0.0.2", 5000), ("10.0.0.1", 69), ("10.0.0.1", 40000)

Loss = Callable[[str, Packet], bool]  # (direction "c>s" or "s>c", packet) -> lose it


@dataclass
class Memory:
    content: bytes
    mac: str | None = None
    kind: str = "file"

    @property
    def size(self) -> int:
        return len(self.content)

    def read_at(self, offset: int, size: int) -> bytes:
        return self.content[offset : offset + size]

    def close(self) -> None:
        pass


@dataclass
class Pair:
    files: dict[str, bytes]
    rules: ServerRules = field(default_factory=lambda: ServerRules(
        session=SessionLimits(retries=5, max_life=None)))
    lose: Loss = lambda direction, packet: False
    now: float = 0.0
    sent: list[tuple[str, Packet]] = field(default_factory=list)  # everything put on the wire
    lost: list[tuple[str, Packet]] = field(default_factory=list)

    def lookup(self, name: str) -> TftpFile | Missing:
        return Memory(self.files[name]) if name in self.files else Missing()

    def get(self, path: str, options: ClientOptions, max_steps: int = 1_000_000) -> ClientSession:
        client = ClientSession(path, options)
        server = None
        timers: dict[tuple[str, str], float] = {}  # (side, key) -> virtual deadline
        to_server: list[bytes] = []
        to_client: list[bytes] = []

        def carry(side: str, result: Result, queue: list[bytes]) -> None:
            for timer in result.timers:
                if timer.after is None:
                    timers.pop((side, timer.key), None)
                else:
                    timers[(side, timer.key)] = self.now + timer.after
            if result.done:
                for key in [k for k in timers if k[0] == side]:
                    del timers[key]
            direction = "c>s" if side == "client" else "s>c"
            for datagram in result.send:
                packet = decode(datagram.data)
                self.sent.append((direction, packet))
                if self.lose(direction, packet):
                    self.lost.append((direction, packet))
                else:
                    queue.append(datagram.data)

        carry("client", client.start(), to_server)
        for _ in range(max_steps):
            if client.done is not None and not to_client and not to_server:
                return client
            if to_server:
                datagram = to_server.pop(0)
                if server is None:
                    request = decode(datagram)
                    assert isinstance(request, ReadRequest)
                    decision = accept(request, rules=self.rules, load=Load(), lookup=self.lookup)
                    if not isinstance(decision, Accept):
                        carry("server", decision.result, to_client)
                        continue
                    server = decision.session
                    carry("server", server.start(), to_client)
                else:
                    carry("server", server.receive(datagram), to_client)
            elif to_client:
                source = TID if server is not None else SERVER_PORT
                carry("client", client.receive(to_client.pop(0), source), to_server)
            elif timers:
                (side, key), deadline = min(timers.items(), key=lambda item: item[1])
                del timers[(side, key)]
                self.now = deadline
                if side == "client":
                    carry("client", client.expire(key), to_server)
                elif server is not None:
                    carry("server", server.expire(key), to_client)
            else:
                return client
        raise AssertionError("the pair did not settle")


def data_blocks(pair: Pair) -> list[int]:
    return [p.block for d, p in pair.sent if d == "s>c" and isinstance(p, Data)]


def test_plain_rfc1350_read() -> None:
    content = os.urandom(1300)
    pair = Pair({"f": content})
    client = pair.get("f", ClientOptions(tsize=False))
    assert (client.status, client.content) == (200, content)
    assert data_blocks(pair) == [1, 2, 3] and pair.now == 0.0  # no timer ever fired


@pytest.mark.parametrize("blksize", [8, 512, 1468, 65464])
def test_blksize(blksize: int) -> None:
    content = os.urandom(3 * blksize + 7)
    pair = Pair({"f": content})
    client = pair.get("f", ClientOptions(blksize=blksize))
    assert (client.status, client.content) == (200, content)
    assert (client.blksize, client.tsize) == (blksize, len(content))
    assert len(data_blocks(pair)) == 4


def test_server_cap_on_blksize_is_followed() -> None:
    pair = Pair({"f": os.urandom(5000)}, rules=ServerRules(max_blksize=1024))
    client = pair.get("f", ClientOptions(blksize=1468))
    assert client.status == 200 and client.blksize == 1024 and len(client.content) == 5000


@pytest.mark.parametrize("window", [1, 4, 16])
def test_windowsize(window: int) -> None:
    content = os.urandom(100 * 64 + 3)
    pair = Pair({"f": content})
    client = pair.get("f", ClientOptions(blksize=64, windowsize=window))
    assert (client.status, client.content, client.windowsize) == (200, content, window)
    acks = [p for d, p in pair.sent if d == "c>s"]
    assert len(acks) == 2 + -(-101 // window)  # RRQ, ACK 0, one per window of the 101 blocks


def test_block_number_rollover() -> None:
    blksize, count = 8, 65536 + 5
    content = os.urandom(blksize * (count - 1) + 3)
    pair = Pair({"f": content})
    client = pair.get("f", ClientOptions(blksize=blksize, windowsize=8))
    assert client.status == 200 and client.content == content and client.blocks == count
    blocks = data_blocks(pair)
    assert blocks[65534:65538] == [65535, 0, 1, 2]


def once(direction: str, match: Callable[[Packet], bool]) -> Loss:
    fired: list[bool] = []

    def lose(side: str, packet: Packet) -> bool:
        if side == direction and not fired and match(packet):
            fired.append(True)
            return True
        return False

    return lose


def test_a_lost_block_is_sent_again_after_the_servers_timeout() -> None:
    content = os.urandom(2000)
    pair = Pair({"f": content}, lose=once("s>c", lambda p: isinstance(p, Data) and p.block == 2))
    client = pair.get("f", ClientOptions(blksize=512, timeout=5.0))
    assert client.status == 200 and client.content == content
    assert len(pair.lost) == 1 and data_blocks(pair).count(2) == 2
    assert pair.now == 2.0  # the server's timer (2 s) fired first, not the client's (5 s)


def test_a_lost_block_inside_a_window_restarts_the_window_after_it() -> None:
    content = os.urandom(64 * 20)
    pair = Pair({"f": content}, lose=once("s>c", lambda p: isinstance(p, Data) and p.block == 3))
    client = pair.get("f", ClientOptions(blksize=64, windowsize=8))
    assert client.status == 200 and client.content == content
    assert data_blocks(pair)[:16] == [1, 2, 3, 4, 5, 6, 7, 8, 3, 4, 5, 6, 7, 8, 9, 10]
    assert pair.now == 0.0  # the client's ACK 2 restarted it: no timer needed


def test_a_lost_ack_is_recovered_without_duplicating_data() -> None:
    content = os.urandom(2000)
    pair = Pair({"f": content}, lose=once("c>s", lambda p: getattr(p, "block", None) == 1))
    client = pair.get("f", ClientOptions(blksize=512, tsize=False, timeout=5.0))
    assert client.status == 200 and client.content == content
    assert data_blocks(pair) == [1, 1, 2, 3, 4]  # block 1 resent on the server's timer, once


def test_a_lost_final_ack_leaves_the_client_done() -> None:
    content = os.urandom(700)
    pair = Pair({"f": content}, lose=once("c>s", lambda p: getattr(p, "block", None) == 2))
    client = pair.get("f", ClientOptions(tsize=False))
    assert client.status == 200 and client.content == content


def test_missing_file_is_404_and_silence_is_a_timeout() -> None:
    pair = Pair({})
    client = pair.get("nope", ClientOptions())
    assert (client.status, client.error) == (404, "TFTP error 1: file not found")
    silent = Pair({"f": b"x"}, lose=lambda direction, packet: direction == "c>s")
    client = silent.get("f", ClientOptions(retries=3, timeout=2.0))
    assert client.status is None and client.error == "TFTP timeout after block 0"
    assert [d for d, _ in silent.sent] == ["c>s"] * 4 and silent.now == 8.0


# --------------------------------------------------------------------------- random loss, arbitrary input


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 3000), st.sampled_from([8, 100, 512]), st.integers(1, 6), st.integers(0, 2**32),
       st.sampled_from([0.05, 0.2]))
def test_random_loss_both_ways_delivers_the_file(size: int, blksize: int, window: int, seed: int,
                                                loss: float) -> None:
    content = random.Random(seed).randbytes(size)
    dice = random.Random(seed + 1)
    rules = ServerRules(session=SessionLimits(retries=30, max_life=None))
    pair = Pair({"f": content}, rules, lose=lambda direction, packet: dice.random() < loss)
    client = pair.get("f", ClientOptions(blksize=blksize, windowsize=window, retries=30, timeout=3.0))
    # 30 retransmissions each side: failing would take 31 losses in a row (0.2^31)
    assert (client.status, client.error) == (200, None)
    assert client.content == content


@settings(max_examples=200)
@given(st.lists(st.one_of(
    st.just(None),
    st.binary(max_size=30),
    st.builds(encode_ack, st.integers(0, 10)),
    st.builds(lambda b, n: encode_data(b, b"d" * n), st.integers(0, 10), st.integers(0, 20)),
    st.builds(encode_error, st.integers(0, 8), st.just("x")),
    st.builds(encode_oack, st.just((("blksize", "8"),))),
), max_size=50), st.booleans())
def test_client_never_raises_on_arbitrary_input(events: list[bytes | None], other_port: bool) -> None:
    client = ClientSession("f", ClientOptions(blksize=16, windowsize=2, retries=3))
    client.start()
    for event in events:
        result = client.expire() if event is None else client.receive(event, CLIENT if other_port else TID)
        for datagram in result.send:
            decode(datagram.data)  # everything the client sends is a well-formed packet
