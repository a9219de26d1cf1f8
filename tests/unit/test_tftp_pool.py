"""The threads of the compiled TFTP loop (labkit/native/_tftp_pool.c): a job's arguments are
checked on the caller's thread, every run comes back through collect() with the same result
serve() gives, the pool grows past its prestarted threads only when every thread is busy and
never past its bound, and close() frees what is left. The loops here wait on sockets nobody
writes to; the stop pipe returns them (no assertion is timed)."""

from __future__ import annotations

import os
import select
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from labkit import native

MODULE = native.load("_tftp")
POOL = native.load("_tftp_pool")
pytestmark = pytest.mark.skipif(MODULE is None or POOL is None,
                                reason="labkit/native/_tftp.c or _tftp_pool.c is not built here")
BOUND = 30.0  # seconds: a bound on every wait, never expected


@pytest.fixture
def stop_pipe() -> Iterator[tuple[int, int]]:
    read, write = os.pipe()
    yield read, write
    os.close(read)
    os.close(write)


def state(sock: socket.socket, peer: tuple[Any, ...], stop_fd: int, **extra: Any) -> dict[str, Any]:
    return dict(fd=sock.fileno(), peer=peer, source=b"x" * 600, blksize=512, windowsize=1,
                retries=3, timeout=BOUND, acked=0, sent_hi=1, final=-1, tries=0, lengths=(512,),
                retransmit_in=BOUND, life_in=float("inf"), stop_fd=stop_fd, **extra)


def sockets(count: int) -> list[socket.socket]:
    out = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        out.append(sock)
    return out


def serve_into(returned: list[Any], args: dict[str, Any]) -> None:
    assert MODULE is not None
    returned.append(MODULE.serve(**args))


def collect_all(pool: Any, count: int) -> dict[object, Any]:
    """Wait on the pool's descriptor until `count` runs have come back."""
    assert POOL is not None
    got: dict[object, Any] = {}
    while len(got) < count:
        ready, _, _ = select.select([POOL.fileno(pool)], [], [], BOUND)
        assert ready, "a run did not come back"
        got.update(POOL.collect(pool))
    return got


def test_a_run_comes_back_with_what_serve_returns(stop_pipe: tuple[int, int]) -> None:
    """The same datagram handed to serve() and to the pool: the same tuple back."""
    assert MODULE is not None and POOL is not None
    pool = POOL.start(2, 1)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.bind(("127.0.0.1", 0))
            results = []
            for through_pool in (False, True):
                (sock,) = sockets(1)
                with sock:
                    client.sendto(b"\x00\x05\x00\x00stop\x00", sock.getsockname())
                    args = state(sock, client.getsockname(), stop_pipe[0])
                    if through_pool:
                        POOL.submit(pool, "token", args)
                        results.append(collect_all(pool, 1)["token"])
                    else:
                        results.append(MODULE.serve(**args))
            assert results[0][0] == "datagram" and results[0][1] == b"\x00\x05\x00\x00stop\x00"
            assert results[0][:-5] == results[1][:-5]  # all but the timings and the OACK flag
            assert results[0][-1] == results[1][-1]
    finally:
        POOL.close(pool)


def test_bad_state_is_refused_at_submit(stop_pipe: tuple[int, int]) -> None:
    assert POOL is not None
    pool = POOL.start(1, 1)
    try:
        (sock,) = sockets(1)
        with sock:
            for bad in ({"windowsize": 0}, {"lengths": (1, 2)}, {"peer": ("::1", 9)},
                        {"source": 1.5}, {"oack": b"x"}):
                with pytest.raises((ValueError, TypeError)):
                    POOL.submit(pool, 0, {**state(sock, ("127.0.0.1", 9), stop_pipe[0]), **bad})
            with pytest.raises(TypeError):
                POOL.submit(pool, 0, [])
        assert POOL.collect(pool) == []
    finally:
        POOL.close(pool)
    with pytest.raises(ValueError):
        POOL.collect(pool)  # closed


@pytest.mark.parametrize(("max_threads", "prestart", "jobs"), [(3, 1, 3), (3, 1, 5), (1, 0, 2)])
def test_the_pool_grows_only_when_busy_and_never_past_its_bound(
        stop_pipe: tuple[int, int], max_threads: int, prestart: int, jobs: int) -> None:
    """Every queued job gets a thread of its own up to max_threads (its client is waiting);
    beyond, jobs wait for a thread and still all come back once the loops return."""
    assert POOL is not None
    pool = POOL.start(max_threads, prestart)
    socks = sockets(jobs)
    try:
        assert POOL.threads(pool) == prestart
        for token, sock in enumerate(socks):
            POOL.submit(pool, token, state(sock, ("127.0.0.1", 9), stop_pipe[0]))
        assert POOL.threads(pool) == min(jobs, max_threads)
        os.write(stop_pipe[1], b"x")  # every loop returns within 50 ms
        got = collect_all(pool, jobs)
        assert sorted(got) == list(range(jobs))  # type: ignore[type-var]
        assert {result[0] for result in got.values()} == {"stopped"}
        assert POOL.threads(pool) == min(jobs, max_threads)
    finally:
        POOL.close(pool)
        for sock in socks:
            sock.close()


def test_close_waits_for_the_loops_and_frees_their_jobs(stop_pipe: tuple[int, int]) -> None:
    """Jobs never collected (and one still queued) are freed by close: no fd or reference kept."""
    assert POOL is not None
    pool = POOL.start(1, 1)
    socks = sockets(2)
    token = object()
    before = sys.getrefcount(token)
    for sock in socks:
        POOL.submit(pool, token, state(sock, ("127.0.0.1", 9), stop_pipe[0]))
    os.write(stop_pipe[1], b"x")
    POOL.close(pool)
    POOL.close(pool)  # idempotent
    assert sys.getrefcount(token) == before
    for sock in socks:
        sock.close()


@pytest.mark.parametrize(("max_threads", "prestart"), [(0, 0), (2, 3), (1, -1)])
def test_start_refuses_bad_sizes(max_threads: int, prestart: int) -> None:
    assert POOL is not None
    with pytest.raises(ValueError):
        POOL.start(max_threads, prestart)


@pytest.mark.parametrize(("size", "blksize", "windowsize"),
                         [(0, 512, 1), (512 * 8, 512, 4), (70_000, 512, 8), (200_000, 1468, 64),
                          (65_536 * 3 + 17, 1468, 8)])
def test_bytes_and_file_sources_send_the_same(tmp_path: Any, stop_pipe: tuple[int, int], size: int,
                                              blksize: int, windowsize: int) -> None:
    """The loop sends payloads from where they lie (the bytes, or its read-ahead of the file,
    a whole window at least): a client that acknowledges every window gets the same datagrams,
    the file whole, from either source, across read-ahead boundaries and the empty last block."""
    assert MODULE is not None
    content = os.urandom(size)
    path = tmp_path / "f.bin"
    path.write_bytes(content)
    wires = []
    for source_kind in ("bytes", "file"):
        fd = os.open(path, os.O_RDONLY)
        (sock,) = sockets(1)
        with sock, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.bind(("127.0.0.1", 0))
            client.settimeout(BOUND)
            client.sendto(b"\x00\x04\x00\x00", sock.getsockname())  # ACK 0 of the OACK
            args = dict(fd=sock.fileno(), peer=client.getsockname(),
                        source=content if source_kind == "bytes" else fd, blksize=blksize,
                        windowsize=windowsize, retries=3, timeout=BOUND, acked=0, sent_hi=0,
                        final=-1, tries=0, lengths=(), retransmit_in=BOUND, life_in=float("inf"),
                        stop_fd=stop_pipe[0], oack=b"\x00\x06blksize\x00" + str(blksize).encode() + b"\x00")
            wire: list[bytes] = []
            returned: list[Any] = []
            thread = threading.Thread(target=serve_into, args=(returned, args))
            thread.start()
            block = 0
            while True:
                data = client.recv(70_000)
                wire.append(data)
                block = int.from_bytes(data[2:4], "big")
                if len(data) - 4 < blksize or block % windowsize == 0:
                    client.sendto(b"\x00\x04" + data[2:4], sock.getsockname())
                if len(data) - 4 < blksize:
                    break
            thread.join(BOUND)
            assert returned and returned[0][0] == "datagram"  # the final ACK, handed back
        os.close(fd)
        wires.append(wire)
    assert wires[0] == wires[1]
    assert b"".join(d[4:] for d in wires[0]) == content


@pytest.mark.parametrize("prestart", [1, 8, 64])
def test_start_returns_once_its_threads_run_their_loop(prestart: int) -> None:
    """The prestarted threads' creation is over when start returns (the service then says it
    is ready), not on the first requests' way."""
    assert POOL is not None
    pool = POOL.start(prestart + 4, prestart)
    try:
        assert POOL.threads(pool) == prestart
        assert POOL.looping(pool) == prestart
    finally:
        POOL.close(pool)
