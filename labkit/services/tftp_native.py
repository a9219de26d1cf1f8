"""The compiled steady phase of TFTP read transfers (labkit/native/_tftp.c), and its threads.

Profiled (bench/README.md, TFTP): with every block through Python, even the shared epoll pump
with its linger sat near the cost of a bare Python loop per block, and in this VM the wake-ups
of the one event-loop thread dominated. tftpd-hpa's model fits lock-step better: one scheduler
entity per transfer, sleeping in the kernel until its client's ACK comes. So once a read
transfer is past its RRQ/OACK decisions (octet, no fault rule; from the moment the OACK went
out, so that ACK 0 and the first window cost no event-loop turn), `Transfer` hands it to
`_tftp.serve`'s loop, which runs on a C thread of labkit/native/_tftp_pool.c (bounded by the
session cap) that never takes the GIL: a blocking recvfrom (SO_RCVTIMEO the timer, the stop pipe
looked at every 50 ms; awake for up to 50 µs first when that may pay, see tftp_spin.h, unless
LABKIT_TFTP_AWAKE=0), the ACK checks
of the core, pread, the payloads sent from where they lie. It hands the transfer back with
the state reached and the one event the core must carry out (the final ACK, an ERROR or junk
from the client, the last retransmission, the life timer, a read error, the stop pipe); Python's
session then does exactly what the pure path does, so events and endings are the core's. The
hand-back comes through the pool's pipe, read by the event loop (`NativeReads._collect`).

`NativeReads.stop` (service close, which reload and shutdown go through) writes the stop pipe:
every running loop returns within 50 ms, and the transfers end in Python ("shutdown").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import threading
import weakref
from collections.abc import Callable
from types import ModuleType
from typing import Any

from labkit import native
from labkit.protocols.tftp.read import ReadSession, Steady

log = logging.getLogger(__name__)

AWAKE_VARIABLE = "LABKIT_TFTP_AWAKE"  # "0": the loop never waits awake (labkit/native/tftp_spin.h)
PRESTART = 64  # pool threads started with the service (~16 KiB resident each, measured)
Returned = tuple[Any, ...]  # what `_tftp.serve` returns (see labkit/native/_tftp.pyi)


_LIVE: weakref.WeakSet[NativeReads] = weakref.WeakSet()


def _stop_all_at_exit() -> None:
    """At interpreter exit (a loop closed without the service's close()), the pool's threads
    are joined when it is freed: return every loop first, rather than wait for its transfer
    to end."""
    for reads in list(_LIVE):
        reads.signal_stop()


_REGISTERED: list[bool] = []


def _register_once() -> None:
    # threading's exit hooks run before the interpreter frees the pools (which joins their
    # threads).
    register = getattr(threading, "_register_atexit", None)
    if register is not None and not _REGISTERED:
        try:
            register(_stop_all_at_exit)
            _REGISTERED.append(True)
        except RuntimeError:  # the interpreter is already shutting down
            pass


class NativeReads:
    """The compiled loop, its threads (labkit/native/_tftp_pool.c: at most `max_threads`
    transfers at once, the service's session cap) and the pipe that stops them all."""

    segment = True  # windows as one UDP_SEGMENT send (False: datagram by datagram, for the tests)

    def __init__(self, module: ModuleType, loop: asyncio.AbstractEventLoop, max_threads: int,
                 pool_module: ModuleType | None = None) -> None:
        self.module = module
        self.loop = loop
        self.max_window_bytes: int = module.MAX_WINDOW_BYTES
        self._threads = pool_module if pool_module is not None else _pool_module()
        # PRESTART threads started now, idle until transfers come: a thread's creation is then
        # not on a transfer's way from its RRQ to its first block. Profiled (bench/README.md,
        # TFTP round 4): 50 clients at once on a new server cost 1.4 ms of server CPU per
        # transfer against 0.8 once the pool had its threads. The pool's threads never take the
        # GIL (round 5): a finished run comes back through the pool's pipe, read here.
        # start() returns once they all wait for work (round 6): their creation is not on the
        # first requests' way either.
        # Waiting awake (tftp_spin.h) under its own rules, which keep it off under load: on
        # unless LABKIT_TFTP_AWAKE=0. Round 5 left it off, measured on a loaded machine; round 7
        # measured it on a quiet one, where an idle vCPU's wake-up is most of a round trip
        # (bench/README.md, "Quiet-machine figures, seventh round": 12 of 12 rows with it, 11 without).
        module.set_spin(0 if os.environ.get(AWAKE_VARIABLE, "").strip() == "0" else 1)
        self.prestarted = min(max(1, max_threads), PRESTART)
        self._pool: Any = self._threads.start(max(1, max_threads), self.prestarted)
        self._stop_read, self._stop_write = os.pipe()
        self._running: dict[int, Callable[[Returned | BaseException], None]] = {}
        self._next = 0
        self._idle: asyncio.Future[None] | None = None  # set by stop(), done when none runs
        self.stopping = False
        loop.add_reader(self._threads.fileno(self._pool), self._collect)
        _register_once()
        _LIVE.add(self)

    def signal_stop(self) -> None:
        """Make every running loop return (idempotent; the pipe stays readable)."""
        self.stopping = True
        with contextlib.suppress(OSError):  # already closed by stop()
            os.write(self._stop_write, b"x")

    def fits(self, session: ReadSession) -> bool:
        """A window the loop builds whole before sending (a hostile windowsize stays pure)."""
        return session.windowsize * (4 + session.blksize) <= self.max_window_bytes

    @property
    def running(self) -> int:
        return len(self._running)

    def run(self, session: ReadSession, fd: int, peer: tuple[Any, ...], state: Steady,
            retransmit_in: float, life_in: float, done: Callable[[Returned | BaseException], None]) -> bool:
        """Start the loop for one transfer; `done(result)` on the event loop when it returns.
        False when stopping, when the session's file has no source the loop can read, or when
        the loop refuses the state (logged: the transfer goes on in Python)."""
        source = getattr(session.file, "source", None)
        if self.stopping or self._pool is None or not isinstance(source, bytes | int):
            return False
        oack = session.pending_oack if state.waiting_oack else None
        token = self._next
        try:
            self._threads.submit(self._pool, token, dict(
                fd=fd, peer=peer, source=source, blksize=session.blksize,
                windowsize=session.windowsize, retries=session.retries, timeout=session.timeout,
                acked=state.acked, sent_hi=state.sent_hi, final=state.final, tries=state.tries,
                lengths=state.lengths, retransmit_in=retransmit_in, life_in=life_in,
                stop_fd=self._stop_read, oack=oack, segment=self.segment))
        except (ValueError, TypeError, OverflowError, OSError, MemoryError):
            log.exception("tftp session %s: the compiled loop refused the transfer", peer)
            return False
        self._next += 1
        self._running[token] = done
        return True

    def _collect(self) -> None:
        """The pool's pipe is readable: hand every finished run to its transfer."""
        if self._pool is None:
            return
        for token, returned in self._threads.collect(self._pool):
            done = self._running.pop(token, None)
            if done is None:
                continue
            try:
                done(returned)
            except Exception:  # a bug in one hand-back must not strand the others' transfers
                log.exception("tftp: the hand-back of a compiled loop failed")
        if not self._running and self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    async def stop(self) -> None:
        """Return every running loop to Python (their transfers resume there), then free the
        threads and the pipes."""
        if self._pool is None:
            return
        self.signal_stop()
        if self._running:
            self._idle = self.loop.create_future()
            await self._idle
        self.loop.remove_reader(self._threads.fileno(self._pool))
        self._threads.close(self._pool)
        self._pool = None
        _LIVE.discard(self)
        os.close(self._stop_read)
        os.close(self._stop_write)


def _pool_module() -> ModuleType:
    module = native.load("_tftp_pool")
    if module is None:
        raise ImportError("labkit/native/_tftp_pool.c is not built here")
    return module


def life_left(deadline: float | None, now: float) -> float:
    return math.inf if deadline is None else deadline - now


class Handback:
    """What the loop handed back, by name."""

    __slots__ = ("counts", "datagram", "event", "final_sent_at", "retransmit_in", "state", "unknown_tids")

    def __init__(self, returned: Returned) -> None:
        (self.event, self.datagram, acked, sent_hi, final, tries, lengths, bytes_acked, retransmits,
         ignored, self.unknown_tids, self.retransmit_in, self.final_sent_at, waiting_oack) = returned
        self.state = Steady(acked, sent_hi, final, tries, lengths, waiting_oack)
        self.counts = {"bytes_acked": bytes_acked, "retransmits": retransmits, "ignored": ignored}
