"""UDP listening sockets with room for bursts, and a count of what the kernel still dropped.

`grow_receive_buffer` asks for a large receive buffer (SO_RCVBUFFORCE as root, else SO_RCVBUF,
which the kernel caps at net.core.rmem_max). `listen_udp` binds a datagram socket with that
buffer, turns on SO_RXQ_OVFL (Linux: every received datagram carries the socket's count of
datagrams dropped for want of buffer) and reads it with recvmsg, so that a `DropCounter` knows
exactly how many datagrams the kernel dropped on that socket. The counter reports growth as one
"kernel-drops" event per `every` seconds at most. DNS and DHCP can adopt these as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from labkit.events import EventSink, make_event

log = logging.getLogger(__name__)

UDP_RECEIVE_BUFFER = 4 * 1024 * 1024
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)  # Linux; Python does not name it
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
READS_PER_WAKEUP = 256  # bounded work per readiness event; the loop comes back for the rest
_CMSG_SPACE = socket.CMSG_SPACE(4)


def grow_receive_buffer(sock: socket.socket, size: int = UDP_RECEIVE_BUFFER) -> int:
    """Ask for `size` bytes of receive buffer; returns what the kernel granted."""
    for option in (SO_RCVBUFFORCE, socket.SO_RCVBUF):  # FORCE: root (CAP_NET_ADMIN) only
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, size)
            break
        except OSError:
            continue
    granted: int = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    return granted


def small_read_buffer(transport: asyncio.BaseTransport, size: int) -> None:
    """Shrink the buffer asyncio's selector transport passes to recvfrom() (256 KiB by default).

    A buffer that large is mmap'ed, shrunk and unmapped for every datagram: three extra system
    calls per datagram, measured as TFTP's largest cost after sendto. A datagram longer than
    `size` is truncated, which a codec then rejects or which cannot matter (a TFTP read session
    only acts on 4-byte ACKs). Transports without the attribute are left alone.
    """
    if hasattr(transport, "max_size"):
        setattr(transport, "max_size", size)  # noqa: B010 - a private class's attribute


def count_drops(sock: socket.socket) -> bool:
    """Turn on SO_RXQ_OVFL; False where the platform has no such option."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
    except OSError:
        return False
    return True


class DropCounter:
    """Datagrams the kernel dropped on one socket (SO_RXQ_OVFL), reported as events."""

    def __init__(self, service: str, sink: EventSink | None = None, every: float = 5.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.service = service
        self.sink = sink
        self.every = every
        self.clock = clock
        self.count = 0  # dropped since the socket was opened
        self.reported = 0
        self._pending: asyncio.TimerHandle | None = None

    def update(self, total: int) -> None:
        """The kernel's cumulative count, as the last datagram carried it."""
        if total <= self.count:
            return
        self.count = total
        if self.sink is not None and self._pending is None:
            with contextlib.suppress(RuntimeError):  # no running loop: report at the next one
                self._pending = asyncio.get_running_loop().call_later(self.every, self.report)

    def report(self) -> None:
        self._pending = None
        grown = self.count - self.reported
        if grown <= 0 or self.sink is None:
            return
        self.reported = self.count
        self.sink(make_event(self.service, None, None, "kernel-drops", f"{grown} datagrams",
                             f"{self.count} in all", "overflow", self.clock, dropped=grown,
                             total=self.count))

    def stop(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
            self.report()


class RecvmsgTransport(asyncio.DatagramTransport):
    """A datagram transport that reads with recvmsg, to see SO_RXQ_OVFL's counter."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 protocol: asyncio.DatagramProtocol, drops: DropCounter) -> None:
        super().__init__({"socket": sock, "sockname": sock.getsockname()})
        self._loop, self._sock, self._protocol, self._drops = loop, sock, protocol, drops
        self._closing = False
        self.max_size = 65536
        loop.add_reader(sock.fileno(), self._readable)
        protocol.connection_made(self)

    def _readable(self) -> None:
        for _ in range(READS_PER_WAKEUP):
            if self._closing:
                return
            try:
                data, ancillary, _flags, addr = self._sock.recvmsg(self.max_size, _CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._protocol.error_received(exc)
                continue
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(value) >= 4:
                    self._drops.update(struct.unpack("=I", value[:4])[0])
            self._protocol.datagram_received(data, addr)

    def sendto(self, data: Any, addr: Any = None) -> None:
        if self._closing:
            return
        try:
            self._sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            log.debug("udp send buffer full: one datagram dropped")  # UDP: the peer retransmits
        except OSError as exc:
            self._protocol.error_received(exc)

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._loop.remove_reader(self._sock.fileno())
        self._loop.call_soon(self._finish_close)

    def _finish_close(self) -> None:
        try:
            self._protocol.connection_lost(None)
        finally:
            self._sock.close()

    def abort(self) -> None:
        self.close()


async def listen_udp(factory: Callable[[], asyncio.DatagramProtocol], host: str, port: int, *,
                     buffer: int = UDP_RECEIVE_BUFFER, drops: DropCounter | None = None
                     ) -> tuple[asyncio.DatagramTransport, socket.socket]:
    """Bind host:port with a large receive buffer; with `drops`, count what the kernel drops."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        grow_receive_buffer(sock, buffer)
        sock.bind((host, port))
        sock.setblocking(False)
        if drops is not None and count_drops(sock):
            return RecvmsgTransport(loop, sock, factory(), drops), sock
        transport, _ = await loop.create_datagram_endpoint(factory, sock=sock)
    except BaseException:
        sock.close()
        raise
    return transport, sock


def kernel_drops(sock: socket.socket, table: str | None = None) -> int | None:
    """The kernel's count of datagrams dropped on `sock` (the `drops` column of /proc/net/udp[6]
    for its inode), or None where that is not readable (not Linux, socket closed)."""
    try:
        inode = str(os.fstat(sock.fileno()).st_ino)
        path = table or ("/proc/net/udp6" if sock.family == socket.AF_INET6 else "/proc/net/udp")
        with open(path, encoding="ascii") as rows:
            next(rows)  # the header
            for row in rows:
                fields = row.split()
                if len(fields) >= 13 and fields[9] == inode:
                    return int(fields[-1])
    except (OSError, ValueError):
        return None
    return None


class DropWatch:
    """Polls the kernel's per-socket drop count for a hot-path socket read with recvfrom (DNS,
    DHCP), where recvmsg + SO_RXQ_OVFL would add work to every datagram; same events as above."""

    def __init__(self, sock: socket.socket, drops: DropCounter, every: float = 2.0) -> None:
        self.sock, self.drops, self.every = sock, drops, every
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            total = kernel_drops(self.sock)
            if total is None:
                return  # nothing to read on this platform: stop polling
            self.drops.update(total)
            await asyncio.sleep(self.every)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.drops.stop()
