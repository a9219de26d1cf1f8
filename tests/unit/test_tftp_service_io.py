"""The TFTP service's socket layer (labkit.services.tftp, tftp_transfer) over loopback with a
hand-driven client: SO_REUSEPORT for `labkit up --workers N`, and the same transfers whether
session sockets are read through the shared epoll or one loop reader each."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from labkit.events import EventRecorder, StaticDirectory
from labkit.plan.tftp import TftpPlan
from labkit.protocols.tftp.packets import Data, OptionAck, decode, encode_ack
from labkit.services.context import Endpoint, StartContext
from labkit.services.filetree import FileTree
from labkit.services.tftp import TftpService, start_tftp

BOUND = 60.0  # seconds: a bound on every wait, never expected


async def start(root: Path, port: int = 0, *, reuse_port: bool = False) -> tuple[TftpService, EventRecorder]:
    recorder = EventRecorder()
    ctx = StartContext(FileTree({}, root), recorder, StaticDirectory(), frozenset(), root)
    endpoint = Endpoint("tftp", "127.0.0.1", port, "udp", reuse_port=reuse_port)
    return await start_tftp(TftpPlan(), endpoint, ctx), recorder


def reuse_port_of(service: TftpService) -> int:
    assert service._listener is not None
    sock = service._listener.get_extra_info("socket")
    value: int = sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
    return value


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT here")
def test_reuse_port_lets_workers_share_the_listening_port(tmp_path: Path) -> None:
    async def scenario() -> None:
        first, _ = await start(tmp_path, reuse_port=True)
        second, _ = await start(tmp_path, first.port, reuse_port=True)
        try:
            assert second.port == first.port
            assert reuse_port_of(first) and reuse_port_of(second)
            with pytest.raises(OSError):  # a process that did not ask cannot join them
                await start(tmp_path, first.port)
        finally:
            await first.close()
            await second.close()
        plain, _ = await start(tmp_path)
        try:
            assert reuse_port_of(plain) == 0
            with pytest.raises(OSError):
                await start(tmp_path, plain.port, reuse_port=True)
        finally:
            await plain.close()

    asyncio.run(asyncio.wait_for(scenario(), BOUND))


async def fetch(port: int, name: str, options: bytes = b"", *, doubled: int = 0) -> bytes:
    """Read `name` in lock-step; ACK block `doubled` twice (the server must not resend on it)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    try:
        await loop.sock_sendto(sock, b"\x00\x01" + name.encode() + b"\x00octet\x00" + options,
                               ("127.0.0.1", port))
        blksize = 512
        received = bytearray()
        expected = 1
        while True:
            datagram, peer = await asyncio.wait_for(loop.sock_recvfrom(sock, 70000), BOUND)
            packet = decode(datagram)
            if isinstance(packet, OptionAck):
                blksize = int(dict(packet.options)["blksize"])
                await loop.sock_sendto(sock, encode_ack(0), peer)
                continue
            assert isinstance(packet, Data), packet
            if packet.block == (expected - 1) & 0xFFFF:
                continue  # a retransmission (the machine stalled past the timer): already have it
            assert packet.block == expected & 0xFFFF, packet
            received += packet.payload
            await loop.sock_sendto(sock, encode_ack(packet.block), peer)
            if expected == doubled:
                await loop.sock_sendto(sock, encode_ack(packet.block), peer)
            if len(packet.payload) < blksize:
                return bytes(received)
            expected += 1
    finally:
        sock.close()


@pytest.mark.parametrize("batched", [True, False], ids=["shared epoll", "one reader each"])
def test_transfers_through_either_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         batched: bool) -> None:
    monkeypatch.setattr(TftpService, "batched_reads", batched)
    content = os.urandom(50_000)
    (tmp_path / "f.bin").write_bytes(content)

    async def scenario() -> None:
        service, recorder = await start(tmp_path)
        try:
            assert service._pump is not None and service._pump.batched == batched
            got = await asyncio.gather(fetch(service.port, "f.bin"),
                                       fetch(service.port, "f.bin", b"blksize\x001468\x00", doubled=3),
                                       fetch(service.port, "f.bin", doubled=98))
            assert got == [content] * 3
            for _ in range(int(BOUND * 10)):  # the end events follow the last ACKs
                if service.stats.completed == 3:
                    break
                await asyncio.sleep(0.1)
            assert service.stats.completed == 3 and service.active == 0
            ends = [e for e in recorder.events if e.detail.get("phase") == "end"]
            answers = sorted(e.answer for e in ends)
            assert answers == ["50000 bytes in 35 blocks"] + ["50000 bytes in 98 blocks"] * 2
        finally:
            await service.close()

    asyncio.run(asyncio.wait_for(scenario(), BOUND))


class FullOnce:
    """A UDP socket whose first `full` sends fail with EAGAIN (a send buffer full), recording the
    datagrams it did send."""

    def __init__(self, full: int) -> None:
        self.real = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.real.bind(("127.0.0.1", 0))
        self.real.setblocking(False)
        self.full = full
        self.sent: list[bytes] = []

    def fileno(self) -> int:
        return self.real.fileno()

    def sendto(self, data: bytes, addr: object) -> int:
        if self.full > 0:
            self.full -= 1
            raise BlockingIOError
        self.sent.append(data)
        return len(data)

    def recvfrom(self, size: int) -> tuple[bytes, object]:
        return self.real.recvfrom(size)

    def close(self) -> None:
        self.real.close()


class Owner:
    def __init__(self) -> None:
        self.endings: list[object] = []

    def unknown_tid(self) -> None:
        raise AssertionError("no other TID in this test")

    def ended(self, transfer: object, facts: object) -> None:
        self.endings.append(transfer)


def test_datagrams_the_kernel_cannot_take_yet_wait_in_order(tmp_path: Path) -> None:
    """EAGAIN on the OACK: it and the window after it go out in order once the socket is
    writable again (nothing overtakes a queued datagram)."""
    from labkit.protocols.tftp.negotiate import negotiate
    from labkit.protocols.tftp.read import ReadSession
    from labkit.services.tftp_transfer import SessionPump, Transfer

    content = os.urandom(512 * 6 + 100)

    class File:
        def read_at(self, offset: int, size: int) -> bytes:
            return content[offset : offset + size]

        def close(self) -> None:
            pass

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        pump = SessionPump(loop)
        sock = FullOnce(full=1)
        negotiated = negotiate((("windowsize", "3"),), write=False, size=len(content), netascii=False,
                               default_timeout=2.0)
        session = ReadSession(File(), negotiated)
        owner = Owner()
        transfer = Transfer(owner, pump, sock, ("127.0.0.1", 9), session, None)  # type: ignore[arg-type]
        transfer.apply(session.start())  # the OACK: refused once, queued
        transfer.apply(session.receive(encode_ack(0)))  # blocks 1-3 queue behind it
        assert sock.sent == []
        for _ in range(1000):  # bounded: the loop runs the writer callback
            if not transfer._queue:
                break
            await asyncio.sleep(0)
        kinds = [decode(d) for d in sock.sent]
        assert isinstance(kinds[0], OptionAck)
        assert [p.block for p in kinds[1:]] == [1, 2, 3]  # type: ignore[union-attr]
        transfer.abort("shutdown", "test over")
        assert owner.endings == [transfer] and transfer.finished
        pump.close()

    asyncio.run(asyncio.wait_for(scenario(), BOUND))


class FailingRead:
    """A found file whose every read fails: the session's start ends it at once ("read-error")."""

    size, mac, kind = 10, None, "file"

    def read_at(self, offset: int, size: int) -> bytes:
        raise OSError(5, "Input/output error")

    def close(self) -> None:
        """Nothing to release: this stand-in holds no file."""


@pytest.mark.parametrize("native", ["1", "0"], ids=["compiled", "pure"])
@pytest.mark.parametrize("case", ["served", "start ends it", "no socket"])
def test_the_request_event_comes_before_the_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                case: str, native: str) -> None:
    """The request's event is emitted after the first datagram went out (round 6), yet the
    journal still holds it before the transfer's end, also when the start ends it at once."""
    import labkit.services.tftp as tftp_module

    monkeypatch.setenv("LABKIT_NATIVE", native)
    (tmp_path / "f.bin").write_bytes(b"x" * 700)
    if case == "start ends it":
        monkeypatch.setattr(TftpService, "_lookup", lambda self, name: FailingRead())
    elif case == "no socket":
        def no_socket(family: int, host: str) -> socket.socket:
            raise OSError(24, "Too many open files")
        monkeypatch.setattr(tftp_module, "session_socket", no_socket)

    async def scenario() -> None:
        service, recorder = await start(tmp_path)
        try:
            if case == "served":
                assert await fetch(service.port, "f.bin", b"blksize\x00512\x00") == b"x" * 700
                assert await fetch(service.port, "f.bin") == b"x" * 700
            else:  # the client hears an ERROR from the session or the listening port
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.settimeout(BOUND)
                sock.sendto(b"\x00\x01f.bin\x00octet\x00", ("127.0.0.1", service.port))
                assert (await asyncio.to_thread(sock.recvfrom, 1024))[0][:2] == b"\x00\x05"
                sock.close()
            expected = 2 if case == "served" else 1
            for _ in range(int(BOUND * 10)):
                if service.stats.completed + service.stats.failed == expected:
                    break
                await asyncio.sleep(0.1)
            events = [(e.client, e.detail.get("phase"), e.result) for e in recorder.events]
            assert len(events) == 2 * expected
            clients = {c for c, _, _ in events}
            assert len(clients) == expected
            # the order holds per transfer: the client's fetch returns once it sent the final ACK,
            # so the second request may be accepted before the first transfer's end is recorded
            for client in clients:
                assert [(p, r) for c, p, r in events if c == client] == {
                    "served": [("request", "accepted"), ("end", "ok")],
                    "start ends it": [("request", "accepted"), ("end", "read-error")],
                    "no socket": [("request", "accepted"), ("end", "busy")]}[case]
        finally:
            await service.close()

    asyncio.run(asyncio.wait_for(scenario(), BOUND))
