"""The TFTP service's per-transfer I/O: one socket per session, read through one shared epoll.

Profiled (bench/README.md, TFTP): with asyncio's datagram transport every block cost a selector
callback (Handle, context switch into it), the transport's recvfrom/sendto wrappers, a `Result`
and a `Datagram` from the core and the timer bookkeeping; the session core itself was a fifth of
the Python time. Here:

- `SessionPump`: every session socket is registered with one `select.epoll`, whose own file
  descriptor is the only thing the asyncio loop watches. One loop callback reads every session
  that is ready (up to `BATCH`), so fifty clients cost one wakeup, not fifty Handles. Where
  epoll is missing (not Linux), each socket gets its own `loop.add_reader`: same behaviour.
- Lingering: after a batch the pump waits up to LINGER in its own epoll for the next ACKs, for
  at most LINGER_BUDGET per loop turn, then gives the loop back (timers, other services, new
  requests): in lock-step the next ACK is a round trip away, and a loop turn per block cost
  more than the session's own work.
- `Transfer.readable`: a 4-byte in-order ACK in lock-step goes through `ReadSession.fast_ack`
  (plain bytes, no Result) and `sendto`; the retransmission timer is one deadline moved per
  block and one `TimerHandle` that re-arms itself lazily. Everything else goes to the core's
  `receive`/`expire` and the Result is carried out as before.
- `labkit.services.tftp_native`: where the compiled loop is built (labkit/native/_tftp.c), a
  read transfer in its steady phase runs there, in a thread, and comes back for the events the
  core must carry out (`_hand_off`/`_returned`); the rest of this module is then its fallback.
- A datagram the kernel cannot take now (EAGAIN: a window larger than the send buffer) waits
  in a queue flushed when the socket is writable, as asyncio's transport did.

RFC 1350: a datagram from another TID gets error 5 and leaves the transfer alone, which is why
the session socket stays unconnected (a connected one would have the kernel drop it silently).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import select
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from labkit.protocols.result import Fact, Result
from labkit.protocols.tftp.base import LIFE, RETRANSMIT
from labkit.protocols.tftp.faults import SendFilter, TftpFaultAction
from labkit.protocols.tftp.packets import ErrorCode, Opcode, encode_error
from labkit.protocols.tftp.read import ReadSession
from labkit.protocols.tftp.write import WriteSession
from labkit.services.tftp_native import Handback, NativeReads, Returned, life_left

log = logging.getLogger(__name__)

Peer = tuple[Any, ...]
BATCH = 256  # ready sessions handled per loop callback; the loop comes back for the rest
# While sessions keep answering, wait for them in the pump's own epoll (up to LINGER each time,
# LINGER_BUDGET in all per loop turn) rather than through a whole asyncio turn per block: the
# other services sharing the loop wait at most that long, TFTP saves a loop turn per block.
LINGER = 0.001  # seconds
LINGER_BUDGET = 0.005  # seconds
READ_BUFFER = 1024  # a read session hears ACKs and ERRORs (RFC 2347 keeps them short)


class TransferOwner(Protocol):
    """What a transfer reports to its service."""

    def unknown_tid(self) -> None: ...

    def ended(self, transfer: Transfer, facts: Iterable[Fact]) -> None: ...


class SessionPump:
    """Reads ready session sockets in batches for the asyncio loop (see the module text)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, use_epoll: bool = True,
                 linger: float = LINGER, linger_budget: float = LINGER_BUDGET) -> None:
        self.loop = loop
        self.linger, self.linger_budget = linger, linger_budget
        self._readers: dict[int, Callable[[], None]] = {}
        self._epoll: Any = None
        if use_epoll and hasattr(select, "epoll"):
            self._epoll = select.epoll()
            loop.add_reader(self._epoll.fileno(), self._ready)

    @property
    def batched(self) -> bool:
        return self._epoll is not None

    def add(self, fd: int, reader: Callable[[], None]) -> None:
        self._readers[fd] = reader
        if self._epoll is not None:
            self._epoll.register(fd, select.EPOLLIN)
        else:
            self.loop.add_reader(fd, reader)

    def remove(self, fd: int) -> None:
        if self._readers.pop(fd, None) is None:
            return
        if self._epoll is not None:
            self._epoll.unregister(fd)
        else:
            self.loop.remove_reader(fd)

    def _ready(self) -> None:
        readers, poll = self._readers, self._epoll.poll
        events = poll(0, BATCH)
        budget = self.loop.time() + self.linger_budget
        while events:
            for fd, _ in events:
                reader = readers.get(fd)
                if reader is None:
                    continue
                try:
                    reader()
                except Exception:  # one session's bug must not stop the others
                    log.exception("tftp: session on fd %d crashed", fd)
            if self.linger <= 0 or self.loop.time() >= budget:
                return
            events = poll(self.linger, BATCH)

    def close(self) -> None:
        for fd in list(self._readers):
            self.remove(fd)
        if self._epoll is not None:
            self.loop.remove_reader(self._epoll.fileno())
            self._epoll.close()
            self._epoll = None


class Transfer:
    """One session's socket and timers; carries out the session's Results."""

    def __init__(self, owner: TransferOwner, pump: SessionPump, sock: socket.socket, peer: Peer,
                 session: ReadSession | WriteSession, fault: TftpFaultAction | None,
                 native: NativeReads | None = None) -> None:
        self.owner = owner
        self.pump = pump
        self.sock = sock
        self.peer = peer
        self.session = session
        self.send_filter = SendFilter(fault) if fault is not None else None
        self.loop = pump.loop
        self.started = self.loop.time()
        self.bufsize = READ_BUFFER if isinstance(session, ReadSession) else session.blksize + 5
        # The steady-state step without a Result: octet lock-step reads with no send fault.
        lock_step = isinstance(session, ReadSession) and session.lock_step
        self._fast = session.fast_ack if lock_step and fault is None else None  # type: ignore[union-attr]
        # The compiled steady phase: octet reads with no fault rule, windows it builds whole.
        self._native = (native if isinstance(session, ReadSession) and fault is None
                        and native is not None and native.fits(session) else None)
        self.in_native = False
        # A request repeated while the loop ran (see TftpService._on_request) and when the last
        # block went out: a new RRQ after it is the client asking again, not a retransmission.
        self.repeated: tuple[bytes, Peer, float] | None = None
        self.final_sent_at: float | None = None
        # Lazily re-armed timers by key: a step only moves a deadline, so the hot path does not
        # create and cancel a TimerHandle per block.
        self._deadlines: dict[str, float] = {}
        self._handles: dict[str, asyncio.TimerHandle] = {}
        self._queue: collections.deque[bytes] = collections.deque()
        self.finished = False
        self._timers_later = False  # see begin
        self._pumped = False  # a transfer the compiled loop may take joins the pump only if
        if self._native is None:  # it does not (`begin`): no epoll add and remove for nothing
            self._pump_add()

    def begin(self, result: Result) -> None:  # the session's start: the OACK or first window
        self._timers_later = self._native is not None  # deadlines only: the loop or _resume arms
        self.apply(result)
        self._timers_later = False
        self.hand_off()
        if not self.in_native:
            self._resume()

    def _pump_add(self) -> None:
        if not self._pumped:
            self.pump.add(self.sock.fileno(), self.readable)
            self._pumped = True

    # -- input

    def readable(self) -> None:
        try:
            data, addr = self.sock.recvfrom(self.bufsize)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.debug("tftp session %s: %s", self.peer, exc)
            return
        if self.finished:
            return
        if addr != self.peer:
            # RFC 1350: a packet from another TID gets error 5 and leaves the transfer alone.
            self.owner.unknown_tid()
            if len(data) >= 2 and data[1] != Opcode.ERROR:
                self._sendto(encode_error(ErrorCode.UNKNOWN_TID, "unknown transfer ID"), addr)
            return
        fast = self._fast
        if fast is not None and not self._queue:
            out = fast(data)
            if out is not None:  # _send and _arm, inlined: this runs once per block
                try:
                    self.sock.sendto(out, self.peer)
                except (BlockingIOError, InterruptedError):
                    self._queue.append(out)
                    self.loop.add_writer(self.sock.fileno(), self._flush)
                except OSError as exc:
                    log.debug("tftp session %s: %s", self.peer, exc)
                deadline = self.loop.time() + self.session.timeout
                self._deadlines[RETRANSMIT] = deadline
                if RETRANSMIT not in self._handles:
                    self._handles[RETRANSMIT] = self.loop.call_at(deadline, self._on_timer, RETRANSMIT)
                return
        self.apply(self.session.receive(data))
        if self._native is not None:
            self.hand_off()

    # -- output

    def _sendto(self, data: bytes, addr: Peer) -> None:
        try:
            self.sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            log.debug("tftp session %s: send buffer full, reply to %s dropped", self.peer, addr)
        except OSError as exc:
            log.debug("tftp session %s: %s", self.peer, exc)

    def _send(self, data: bytes) -> None:
        if self._queue:
            self._queue.append(data)
            return
        try:
            self.sock.sendto(data, self.peer)
        except (BlockingIOError, InterruptedError):
            self._queue.append(data)
            self.loop.add_writer(self.sock.fileno(), self._flush)
        except OSError as exc:  # ECONNREFUSED and friends: the retransmission timer decides
            log.debug("tftp session %s: %s", self.peer, exc)

    def _flush(self) -> None:
        while self._queue:
            try:
                self.sock.sendto(self._queue[0], self.peer)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("tftp session %s: %s", self.peer, exc)
            self._queue.popleft()
        self.loop.remove_writer(self.sock.fileno())

    def apply(self, result: Result) -> None:
        if not self.finished:
            for datagram in result.send:
                if self.send_filter is None:
                    self._send(datagram.data)
                else:
                    for faulty in self.send_filter(datagram.data):
                        self._send(faulty)
        if result.done:
            self.finish(result.facts)
            return
        for timer in result.timers:
            if timer.after is None:
                self._deadlines.pop(timer.key, None)
            else:
                self._arm(timer.key, timer.after)

    # -- timers

    def _arm(self, key: str, after: float) -> None:
        deadline = self.loop.time() + after
        self._deadlines[key] = deadline
        if key not in self._handles and not self._timers_later:
            self._handles[key] = self.loop.call_at(deadline, self._on_timer, key)

    def _on_timer(self, key: str) -> None:
        del self._handles[key]
        deadline = self._deadlines.get(key)
        if self.finished or deadline is None or self.in_native:
            return
        if self.loop.time() < deadline:  # moved since: sleep the rest
            self._handles[key] = self.loop.call_at(deadline, self._on_timer, key)
            return
        del self._deadlines[key]
        self.apply(self.session.expire(key))
        self.hand_off()

    # -- the compiled steady phase (labkit.services.tftp_native)

    def hand_off(self) -> None:
        """After a step in Python: run the rest in the compiled loop if the transfer can go
        there (octet, not over, nothing queued; the OACK phase included) and the loop is
        there."""
        native, session = self._native, self.session
        if native is None or self.finished or self.in_native or self._queue:
            return
        assert isinstance(session, ReadSession)  # _native is only set for reads
        state = session.steady()
        if state is None:
            return
        now = self.loop.time()
        fd = self.sock.fileno()
        retransmit_in = self._deadlines.get(RETRANSMIT, now + session.timeout) - now
        if not native.run(session, fd, self.peer, state, retransmit_in,
                          life_left(self._deadlines.get(LIFE), now), self._returned):
            self._native = None
            return
        self.in_native = True
        if state.final >= 0 and state.sent_hi == state.final:
            self.final_sent_at = time.monotonic()
        self.pump.remove(fd)  # a no-op when it was not there
        self._pumped = False
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()

    def _returned(self, returned: Returned | BaseException) -> None:
        """The loop handed the transfer back: take its state, carry out its event in the core,
        then hand off again or go on here."""
        self.in_native = False
        if isinstance(returned, BaseException):  # never expected: go on in Python from where
            self._native = None  # the loop started
            log.error("tftp session %s: compiled loop failed: %r", self.peer, returned)
            return self._resume()
        back = Handback(returned)
        session = self.session
        assert isinstance(session, ReadSession)
        session.resume(back.state, **back.counts)
        for _ in range(back.unknown_tids):
            self.owner.unknown_tid()
        now = self.loop.time()
        self._deadlines[RETRANSMIT] = now + back.retransmit_in
        if back.final_sent_at > 0:  # time.monotonic's clock, as `repeated`
            self.final_sent_at = back.final_sent_at
        if back.event == "datagram" and back.datagram is not None:
            self.apply(session.receive(back.datagram))
        elif back.event in (RETRANSMIT, LIFE):
            del self._deadlines[back.event]
            self.apply(session.expire(back.event))
        elif back.event == "error":
            self._native = None
        if self.finished:
            return
        if self._native is not None and not self._native.stopping:
            self.hand_off()
        if not self.in_native:
            self._resume()

    def _resume(self) -> None:
        """Back on the pure path: the pump reads the socket, the loop keeps the timers."""
        if self.finished:
            return
        self._pump_add()
        for key, deadline in self._deadlines.items():
            if key not in self._handles:
                self._handles[key] = self.loop.call_at(deadline, self._on_timer, key)

    # -- the end

    def abort(self, result: str, answer: str, error: str | None = None) -> None:
        if self.in_native:  # the loop owns the socket and the state until it returns
            raise RuntimeError("stop the compiled loop (NativeReads.stop) before aborting")
        self.apply(self.session.abort(result, answer, error))

    def finish(self, facts: Iterable[Fact]) -> None:
        if self.finished:
            return
        self.finished = True
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()
        self._close_socket()
        self.owner.ended(self, facts)

    def _close_socket(self) -> None:
        fd = self.sock.fileno()
        if fd >= 0:
            self.pump.remove(fd)
            self._pumped = False
            if self._queue:
                # The last datagrams (an ERROR, the final block's retransmission) go out if the
                # kernel takes them now; a closing transfer does not wait for the send buffer.
                self.loop.remove_writer(fd)
                for data in self._queue:
                    try:
                        self.sock.sendto(data, self.peer)
                    except OSError:
                        break
                self._queue.clear()
        self.sock.close()

