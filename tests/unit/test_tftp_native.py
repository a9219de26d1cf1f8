"""The compiled steady phase of TFTP reads (labkit/native/_tftp.c) against the pure path, on the
wire: the same scripted client fetches the same file from a real service over loopback, once
with LABKIT_NATIVE=0 and once with the compiled loop, and must receive the same datagrams in
the same order (its stray second socket included), and the service must log the same events
and count the same. The table covers a clean transfer, lost blocks, lost ACKs, duplicate,
stale and future ACKs, junk and an ERROR from another TID, a client ERROR, retries exhausted,
block-number rollover past 65,535 with losses around the wrap, an empty last block, blksize
512/1468, windowsize 4/8 with losses inside the window, and netascii (which stays pure); the
OACK phase, which the loop takes too (OACK lost, junk and wrong ACKs, a duplicate ACK 0,
another TID, a client ERROR, retries exhausted, a one-block file); hypothesis adds arbitrary
action sequences. The sessions' counts of ignored datagrams are compared too.

No assertion is timed. A run the scheduler disturbed (the client took longer than half the
retransmission timeout to answer, so the server may have retransmitted on its own) is run
again, up to three times; a real difference reproduces every time.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit import native
from labkit.events import EventRecorder, StaticDirectory
from labkit.plan.tftp import TftpLimits, TftpPlan
from labkit.services.context import Endpoint, StartContext
from labkit.services.filetree import FileTree
from labkit.services.tftp import TftpService, start_tftp
from labkit.services.tftp_native import NativeReads

BOUND = 60.0  # seconds: a bound on every wait, never expected
TIMEOUT = 0.4  # the server's retransmission timeout in these runs
MODULE = native.load("_tftp")
_ENDED = TftpService.ended  # before any test wraps it
needs_native = pytest.mark.skipif(MODULE is None, reason="labkit/native/_tftp.c is not built here")


def ack(block: int) -> bytes:
    return b"\x00\x04" + (block & 0xFFFF).to_bytes(2, "big")


ERROR = b"\x00\x05\x00\x00cancelled\x00"


@dataclass(frozen=True)
class Script:
    """What the client does. `actions[(block, nth)]` for the nth arrival of absolute block
    `block`: "lose" (as if it never came), "dup" (ACK twice), "stale"/"future" (an ACK the
    server must ignore first), "junk" (undecodable datagrams first), "tid" (another socket
    sends an ERROR then an ACK to the session port; its answer is recorded), "error" (a client
    ERROR instead of the ACK), "silent" (no more ACKs: the server gives up). Block 0 is the
    OACK (the compiled loop takes the transfer from the moment the OACK went out)."""

    size: int
    options: tuple[tuple[str, str], ...] = ()
    actions: tuple[tuple[tuple[int, int], str], ...] = ()
    mode: str = "octet"


@dataclass
class Trace:
    wire: list[bytes] = field(default_factory=list)
    disturbed: bool = False


def from_another_tid(stray: socket.socket, server: tuple[str, int], block: int, trace: Trace) -> None:
    """An ERROR and an ACK from another port: the server answers that TID with error 5 (kept in
    the trace) and carries on with the transfer."""
    stray.sendto(ERROR, server)
    stray.sendto(ack(block), server)
    trace.wire.append(b"stray:" + stray.recvfrom(70000)[0])


def client(port: int, name: str, script: Script) -> Trace:
    """A lock-step/RFC 7440 client on blocking sockets (run in a thread)."""
    options = dict(script.options)
    blksize, window = int(options.get("blksize", 512)), int(options.get("windowsize", 1))
    actions = dict(script.actions)
    trace = Trace()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stray:
        for s in (sock, stray):
            s.bind(("127.0.0.1", 0))
            s.settimeout(BOUND)
        request = b"\x00\x01" + name.encode() + b"\x00" + script.mode.encode() + b"\x00"
        options_wire = b"".join(k.encode() + b"\x00" + v.encode() + b"\x00" for k, v in script.options)
        sock.sendto(request + options_wire, ("127.0.0.1", port))
        acked = have = 0
        final: int | None = None
        seen: Counter[int] = Counter()
        lost_since_ack = silent = False
        while True:
            data, server = sock.recvfrom(70000)
            arrived = time.monotonic()
            trace.wire.append(data)
            if data[:2] == b"\x00\x06":  # OACK: "block 0" for the script
                seen[0] += 1
                action = actions.get((0, seen[0]), "ack")
                silent = silent or action == "silent"  # then error 0 "timeout" ends it
                if action == "lose" or silent:
                    continue
                if action == "error":
                    sock.sendto(ERROR, server)
                    return trace
                if action == "tid":
                    from_another_tid(stray, server, 0, trace)
                elif action in ("junk", "wrong"):
                    for junk in (b"\x00", b"\x00\x04\x00", b"\x00\x09junk", ack(3), ack(65535)):
                        sock.sendto(junk, server)
                    if action == "wrong":
                        continue  # no ACK 0: the OACK comes again
                sock.sendto(ack(0), server)
                if action == "dup":
                    sock.sendto(ack(0), server)
                continue
            if data[:2] != b"\x00\x03" or silent:
                if data[:2] == b"\x00\x05":
                    return trace
                continue
            wire = int.from_bytes(data[2:4], "big")
            delta = (wire - have) & 0xFFFF
            block = have + delta if delta <= window else have - ((have - wire) & 0xFFFF)
            seen[block] += 1
            action = actions.get((block, seen[block]), "ack")
            if action == "lose":
                lost_since_ack = True
                continue
            if block <= have and not lost_since_ack:
                trace.disturbed = True  # the server's timer fired without a loss: a stall
            if block == have + 1:
                have = block
                if len(data) - 4 < blksize:
                    final = block
            if action == "silent":
                silent = True
                continue
            if action == "error":
                sock.sendto(ERROR, server)
                return trace
            if action == "tid":
                from_another_tid(stray, server, block, trace)
            elif action == "junk":
                for junk in (b"\x00", b"\x00\x04\x00", b"\x00\x09junk", b"\x00\x03\x00\x01" + b"x" * 2000):
                    sock.sendto(junk, server)
            elif action in ("stale", "future"):
                sock.sendto(ack(acked - 3 if action == "stale" else have + window + 2), server)
            if block < acked + window and block != final:
                continue  # the window is not over yet
            if time.monotonic() - arrived > TIMEOUT / 2:
                trace.disturbed = True
            sock.sendto(ack(have), server)
            if action == "dup":
                sock.sendto(ack(have), server)
            acked, lost_since_ack = have, False
            if final is not None and have == final:
                return trace


def run(tmp_path: Path, content: bytes, script: Script, *, use_native: bool,
        monkeypatch: pytest.MonkeyPatch, retries: int = 2) -> tuple[Trace, list[Any], dict[str, Any], int]:
    (tmp_path / "f.bin").write_bytes(content)
    monkeypatch.setenv("LABKIT_NATIVE", "1" if use_native else "0")
    handoffs = 0
    real_run = NativeReads.run

    def counting(self: NativeReads, *args: Any, **kwargs: Any) -> bool:
        nonlocal handoffs
        handoffs += 1
        return real_run(self, *args, **kwargs)

    monkeypatch.setattr(NativeReads, "run", counting)
    ignored: list[int] = []  # the session's count of ignored datagrams (no event carries it)

    def ending(self: TftpService, transfer: Any, facts: Any) -> None:
        ignored.append(transfer.session.ignored)
        _ENDED(self, transfer, facts)

    monkeypatch.setattr(TftpService, "ended", ending)

    async def scenario() -> tuple[Trace, list[Any], dict[str, Any]]:
        recorder = EventRecorder()
        ctx = StartContext(FileTree({}, tmp_path), recorder, StaticDirectory(), frozenset(), tmp_path)
        plan = TftpPlan(limits=TftpLimits(timeout=TIMEOUT, retries=retries))
        service = await start_tftp(plan, Endpoint("tftp", "127.0.0.1", 0, "udp"), ctx)
        try:
            assert (service.native is not None) == use_native
            trace = await asyncio.to_thread(client, service.port, "f.bin", script)
            for _ in range(int(BOUND * 100)):  # the end event follows the client's last word
                if service.stats.completed + service.stats.failed == 1 and service.active == 0:
                    break
                await asyncio.sleep(0.01)
            return trace, facts(recorder), {**stats(service), "ignored": ignored}
        finally:
            await service.close()

    trace, events, counted = asyncio.run(asyncio.wait_for(scenario(), BOUND))
    return trace, events, counted, handoffs


def facts(recorder: EventRecorder) -> list[Any]:
    return [(e.action, e.request, e.answer, e.result, {k: v for k, v in e.detail.items() if k != "seconds"})
            for e in recorder.events]


def stats(service: TftpService) -> dict[str, Any]:
    s = service.stats
    return {"completed": s.completed, "failed": s.failed, "retransmits": s.retransmits,
            "unknown_tid": s.unknown_tid, "results": dict(s.results)}


def assert_same(tmp_path: Path, content: bytes, script: Script, monkeypatch: pytest.MonkeyPatch,
                **kwargs: Any) -> tuple[Trace, list[Any]]:
    for _ in range(3):
        pure = run(tmp_path, content, script, use_native=False, monkeypatch=monkeypatch, **kwargs)
        fast = run(tmp_path, content, script, use_native=True, monkeypatch=monkeypatch, **kwargs)
        if not (pure[0].disturbed or fast[0].disturbed):
            break
    assert pure[3] == 0
    assert fast[0].wire == pure[0].wire
    assert fast[1] == pure[1]
    assert fast[2] == pure[2]
    if script.mode == "octet":
        assert fast[3] >= 1, "the compiled loop never ran"
    else:
        assert fast[3] == 0, "netascii is converted in Python: never handed to the loop"
    return fast[0], fast[1]


def body(trace: Trace, blksize: int = 512) -> bytes:
    """The file as received: each block once, in order."""
    blocks: dict[int, bytes] = {}
    index = 0
    for data in trace.wire:
        if data[:2] == b"\x00\x03":
            wire = int.from_bytes(data[2:4], "big")
            index = next(i for i in range(index - 70, index + 70) if i & 0xFFFF == wire and i > 0)
            blocks.setdefault(index, data[4:])
    return b"".join(blocks[i] for i in sorted(blocks))


W8 = (("blksize", "1468"), ("windowsize", "8"))
CASES = {
    "clean": (Script(100_000), None),
    "clean 1468": (Script(100_000, (("blksize", "1468"),)), None),
    "empty last block": (Script(512 * 20), None),
    "empty file": (Script(0), None),
    "lost blocks": (Script(30_000, actions=(((3, 1), "lose"), ((7, 1), "lose"), ((7, 2), "lose"))), None),
    "lost last block": (Script(5_000, actions=(((10, 1), "lose"),)), None),
    "duplicate ACKs": (Script(30_000, actions=(((2, 1), "dup"), ((5, 1), "dup"), ((9, 1), "dup"))), None),
    "stale and future ACKs": (Script(30_000, actions=(((4, 1), "stale"), ((6, 1), "future"))), None),
    "junk from the client": (Script(30_000, actions=(((3, 1), "junk"),)), None),
    "another TID": (Script(30_000, actions=(((2, 1), "tid"), ((8, 1), "tid"))), None),
    "client ERROR": (Script(30_000, actions=(((6, 1), "error"),)), None),
    "retries exhausted": (Script(30_000, actions=(((4, 1), "silent"),)), None),
    "window 8 clean": (Script(200_000, W8), None),
    "window 8 lost inside": (Script(200_000, W8, (((3, 1), "lose"), ((20, 1), "lose"))), None),
    "window 8 lost window end": (Script(200_000, W8, (((8, 1), "lose"), ((16, 1), "lose"))), None),
    "window 4 dup, stale, tid": (Script(60_000, (("windowsize", "4"),),
                                        (((4, 1), "dup"), ((8, 1), "stale"), ((12, 1), "tid"))), None),
    "window 8 retries exhausted": (Script(200_000, W8, (((9, 1), "silent"),)), None),
    "OACK lost twice": (Script(30_000, W8, (((0, 1), "lose"), ((0, 2), "lose"))), None),
    "OACK junk and wrong ACKs": (Script(30_000, W8, (((0, 1), "junk"),)), None),
    "OACK wrong ACKs only": (Script(30_000, W8, (((0, 1), "wrong"),)), None),
    "OACK duplicate ACK 0": (Script(30_000, (("blksize", "1468"),), (((0, 1), "dup"),)), None),
    "OACK another TID": (Script(30_000, W8, (((0, 1), "tid"),)), None),
    "OACK client ERROR": (Script(30_000, W8, (((0, 1), "error"),)), None),
    "OACK retries exhausted": (Script(30_000, W8, (((0, 1), "silent"),)), None),
    "OACK small file": (Script(100, W8), None),
    "netascii stays pure": (Script(3_000, mode="netascii"), None),
}


@needs_native
@pytest.mark.parametrize("case", list(CASES))
def test_native_and_pure_are_identical_on_the_wire(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   case: str) -> None:
    script, _ = CASES[case]
    content = os.urandom(script.size) if script.mode == "octet" else b"line\nnext\r\n" * (script.size // 11)
    trace, events = assert_same(tmp_path, content, script, monkeypatch)
    end = events[-1]
    if case in ("client ERROR", "OACK client ERROR"):
        assert end[3] == "aborted"
    elif "retries exhausted" in case:
        assert end[3] == "timeout" and trace.wire[-1] == b"\x00\x05\x00\x00timeout\x00"
    elif script.mode == "octet":
        assert end[3] == "ok"
        blksize = int(dict(script.options).get("blksize", 512))
        assert body(trace, blksize) == content
    if "TID" in case or "tid" in case:
        assert b"stray:\x00\x05\x00\x05unknown transfer ID\x00" in trace.wire


@needs_native
@pytest.mark.parametrize("case", ["window 8 clean", "window 8 lost inside", "window 4 dup, stale, tid"])
def test_the_datagram_by_datagram_fallback_is_identical_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            case: str) -> None:
    """Where the kernel refuses UDP_SEGMENT the loop sends a window with sendmmsg: the same."""
    monkeypatch.setattr(NativeReads, "segment", False)
    script, _ = CASES[case]
    content = os.urandom(script.size)
    trace, events = assert_same(tmp_path, content, script, monkeypatch)
    assert events[-1][3] == "ok" and body(trace, 1468 if "8" in case else 512) == content


@needs_native
@pytest.mark.parametrize("window", [1, 8])
def test_rollover_past_65535_with_losses_around_the_wrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         window: int) -> None:
    content = os.urandom(8 * 65_540)  # blksize 8: 65,541 blocks, the last one empty
    options = (("blksize", "8"), ("windowsize", str(window)))
    losses = (((65_535, 1), "lose"), ((65_536, 1), "lose"), ((65_537, 1), "dup"), ((65_540, 1), "stale"))
    trace, events = assert_same(tmp_path, content, Script(len(content), options, losses), monkeypatch)
    assert body(trace, 8) == content
    assert events[-1][2] == f"{len(content)} bytes in 65541 blocks" and events[-1][3] == "ok"


ACTIONS = st.sampled_from(["ack", "ack", "ack", "lose", "dup", "stale", "future", "junk", "tid"])


@needs_native
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(window=st.sampled_from([1, 3]), blksize=st.sampled_from([8, 512]),
       blocks=st.integers(1, 24), plan=st.lists(st.tuples(st.integers(1, 24), ACTIONS), max_size=4))
def test_hypothesis_sequences(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, window: int,
                              blksize: int, blocks: int, plan: list[tuple[int, str]]) -> None:
    content = os.urandom(blksize * blocks - (blksize // 3 if blocks % 2 else 0))
    actions = tuple(((block, 1), action) for block, action in dict(plan).items() if block <= blocks)
    options = (("blksize", str(blksize)), ("windowsize", str(window)))
    assert_same(tmp_path, content, Script(len(content), options, actions), monkeypatch)


@needs_native
def test_shutdown_stops_a_transfer_in_the_compiled_loop(tmp_path: Path) -> None:
    """A client that stops answering while the loop runs: close() returns it at once (the stop
    pipe), the client gets error 0 "server shutting down" and the end event says "shutdown"."""
    (tmp_path / "f.bin").write_bytes(os.urandom(100_000))

    async def scenario() -> None:
        recorder = EventRecorder()
        ctx = StartContext(FileTree({}, tmp_path), recorder, StaticDirectory(), frozenset(), tmp_path)
        plan = TftpPlan(limits=TftpLimits(timeout=30.0, retries=5))
        service = await start_tftp(plan, Endpoint("tftp", "127.0.0.1", 0, "udp"), ctx)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(BOUND)
        try:
            sock.sendto(b"\x00\x01f.bin\x00octet\x00", ("127.0.0.1", service.port))
            _, server = await asyncio.to_thread(sock.recvfrom, 1000)
            sock.sendto(ack(1), server)
            await asyncio.to_thread(sock.recvfrom, 1000)  # block 2: the loop has it
            assert service.native is not None and service.native.running == 1
            await service.close()
            errors = [await asyncio.to_thread(sock.recvfrom, 1000)]
            assert errors[0][0] == b"\x00\x05\x00\x00server shutting down\x00"
            end = recorder.events[-1]
            assert (end.result, end.detail["blocks"], end.detail["bytes"]) == ("shutdown", 1, 512)
            assert service.active == 0
        finally:
            sock.close()
            await service.close()

    asyncio.run(asyncio.wait_for(scenario(), BOUND))


@needs_native
def test_serve_refuses_inconsistent_state() -> None:
    assert MODULE is not None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        good: dict[str, Any] = dict(fd=sock.fileno(), peer=("127.0.0.1", 9), source=b"x" * 600, blksize=512,
                                    windowsize=1, retries=1, timeout=1.0, acked=0, sent_hi=1, final=-1,
                                    tries=0, lengths=(512,), retransmit_in=0.0, life_in=float("inf"),
                                    stop_fd=-1)
        for bad in ({"lengths": ()}, {"sent_hi": 3}, {"blksize": 4}, {"windowsize": 0},
                    {"windowsize": 60_000, "blksize": 1468, "sent_hi": 1}, {"timeout": 0.0}):
            with pytest.raises(ValueError):
                MODULE.serve(**{**good, **bad})
        with pytest.raises(ValueError):
            MODULE.serve(**{**good, "peer": ("::1", 9)})
        # The OACK phase: only from the start (nothing sent, nothing read), and only bytes.
        start: dict[str, Any] = {"sent_hi": 0, "lengths": ()}
        for bad in ({"oack": b"\x00\x06"}, {**start, "oack": "\x00\x06"}, {**start, "oack": b"\x06"},
                    {**start, "oack": b"\x00\x06", "final": 3}):
            with pytest.raises(ValueError):
                MODULE.serve(**{**good, **bad})
        with pytest.raises(TypeError):
            MODULE.serve(**{**good, "source": 1.5})


@pytest.mark.parametrize("use_native", [True, False], ids=["native", "pure"])
def test_asking_again_right_after_the_final_ack_starts_a_new_transfer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_native: bool) -> None:
    """The final ACK and the next RRQ arrive on two sockets at once; the compiled loop hands the
    ACK back through a thread, so the listener may see the RRQ first: it is decided when the
    transfer has ended (a request after the last block is the client asking again)."""
    if use_native and MODULE is None:
        pytest.skip("labkit/native/_tftp.c is not built here")
    monkeypatch.setenv("LABKIT_NATIVE", "1" if use_native else "0")
    content = os.urandom(3000)
    (tmp_path / "p.cfg").write_bytes(content)

    async def scenario() -> None:
        recorder = EventRecorder()
        ctx = StartContext(FileTree({}, tmp_path), recorder, StaticDirectory(), frozenset(), tmp_path)
        service = await start_tftp(TftpPlan(), Endpoint("tftp", "127.0.0.1", 0, "udp"), ctx)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(BOUND)
        try:
            rrq = b"\x00\x01p.cfg\x00octet\x00"
            for _ in range(2):
                sock.sendto(rrq + b"blksize\x008\x00", ("127.0.0.1", service.port))
                _, peer = await asyncio.to_thread(sock.recvfrom, 100)  # the OACK
                sock.sendto(ack(0), peer)
                got = b""
                while True:
                    data, _ = await asyncio.to_thread(sock.recvfrom, 100)
                    got += data[4:]
                    sock.sendto(b"\x00\x04" + data[2:4], peer)
                    if len(data) < 12:
                        break
                assert got == content
            for _ in range(int(BOUND * 100)):
                if service.stats.completed == 2:
                    break
                await asyncio.sleep(0.01)
            assert service.stats.completed == 2 and service.stats.duplicates == 0
        finally:
            sock.close()
            await service.close()

    asyncio.run(asyncio.wait_for(scenario(), BOUND))


@needs_native
@pytest.mark.parametrize("max_threads", [1, 3, 500])
def test_the_pool_starts_its_threads_with_the_service(max_threads: int) -> None:
    """The pool's threads exist before the first transfer (none is created on a transfer's way
    to its first block), bounded by the session cap and PRESTART."""
    from labkit.services import tftp_native

    async def scenario() -> None:
        assert MODULE is not None
        reads = NativeReads(MODULE, asyncio.get_running_loop(), max_threads)
        try:
            expected = min(max_threads, tftp_native.PRESTART)
            assert reads.prestarted == expected
            assert reads._pool is not None and reads._threads.threads(reads._pool) == expected
        finally:
            await reads.stop()

    asyncio.run(asyncio.wait_for(scenario(), BOUND))


@needs_native
def test_serve_leaves_the_socket_as_it_found_it() -> None:
    """The loop waits in a blocking recvfrom with SO_RCVTIMEO as its timer: when it returns
    (here: the retransmission timer with no retry left, then a datagram from the client), the
    socket is non-blocking again and has no receive timeout, as the event loop needs it."""
    import fcntl
    import struct
    assert MODULE is not None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        client.bind(("127.0.0.1", 0))
        state: dict[str, Any] = dict(fd=sock.fileno(), peer=client.getsockname(), source=b"x" * 600,
                                     blksize=512, windowsize=1, retries=0, timeout=0.05, acked=0,
                                     sent_hi=1, final=-1, tries=0, lengths=(512,), retransmit_in=0.05,
                                     life_in=float("inf"), stop_fd=-1)
        client.sendto(b"\x00\x05\x00\x00stop\x00", sock.getsockname())  # handed back at once
        for expected in ("datagram", "retransmit"):
            returned = MODULE.serve(**state)
            assert returned[0] == expected
            assert fcntl.fcntl(sock.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK
            timeout = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16)
            assert struct.unpack("ll", timeout) == (0, 0)


SPIN_CASES = ["clean", "lost blocks", "duplicate ACKs", "stale and future ACKs", "another TID",
              "client ERROR", "window 8 lost inside", "OACK lost twice", "OACK another TID"]


@needs_native
@pytest.mark.parametrize("case", SPIN_CASES)
def test_waiting_awake_is_identical_on_the_wire(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                case: str) -> None:
    """The loop's awake wait (a non-blocking read in a loop before sleeping, which it uses only
    when it pays: one loop alone on an idle machine) forced for every wait: the same datagrams,
    events and counts as the pure path."""
    assert MODULE is not None
    script, _ = CASES[case]
    before = MODULE.set_spin(2)
    try:
        assert_same(tmp_path, os.urandom(script.size), script, monkeypatch)
    finally:
        MODULE.set_spin(before)
    with pytest.raises(ValueError):
        MODULE.set_spin(3)


@needs_native
@pytest.mark.parametrize(("value", "mode"), [(None, 1), ("1", 1), ("0", 0), (" 0 ", 0)])
def test_waiting_awake_is_on_by_its_rules_unless_turned_off(monkeypatch: pytest.MonkeyPatch,
                                                            value: str | None, mode: int) -> None:
    """The service's loops wait awake only when it may pay (mode 1: tftp_spin.h's rules keep it
    off under load), and never with LABKIT_TFTP_AWAKE=0."""
    from labkit.services import tftp_native
    assert MODULE is not None
    if value is None:
        monkeypatch.delenv(tftp_native.AWAKE_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(tftp_native.AWAKE_VARIABLE, value)
    previous = MODULE.set_spin(0)

    async def scenario() -> None:
        reads = NativeReads(MODULE, asyncio.get_running_loop(), 1)
        await reads.stop()

    try:
        asyncio.run(asyncio.wait_for(scenario(), BOUND))
        assert MODULE.set_spin(0) == mode
    finally:
        MODULE.set_spin(previous)
