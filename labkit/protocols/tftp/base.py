"""What the read and write sessions share: their limits, their label for the event log, their
timers and the way they end (one "end" fact, the session's file closed).

Two timers, by key: "retransmit" (the negotiated timeout, capped by `max_retransmit_timeout`
whatever the client asked for) and "life" (set once at start: `max_life` seconds after which a
session ends whatever it is doing, so that no client can hold a slot for long).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from labkit.protocols.result import NOTHING, Datagram, Fact, Result, Timer
from labkit.protocols.tftp.negotiate import Negotiated
from labkit.protocols.tftp.packets import ErrorCode, encode_error

RETRANSMIT = "retransmit"
LIFE = "life"


@dataclass(frozen=True, slots=True)
class SessionLimits:
    retries: int = 5  # retransmissions of the same packet(s) without progress, then "timeout"
    max_retransmit_timeout: float = 10.0  # seconds; a client's `timeout 255` is acked, not obeyed
    max_life: float | None = 1800.0  # seconds a session may last in all (None: no bound)


DEFAULT_LIMITS = SessionLimits()


@dataclass(frozen=True, slots=True)
class Label:
    """Who asked for what: copied into every fact of the session."""

    action: str  # "rrq", "wrq"
    request: str  # the filename as sent
    phone: str | None = None
    detail: Mapping[str, Any] | None = None  # mode, options, size ...

    def fact(self, answer: str, result: str, **detail: Any) -> Fact:
        return Fact(self.action, self.request, answer, result, self.phone,
                    {**(self.detail or {}), **detail})


READ_LABEL = Label("rrq", "")
WRITE_LABEL = Label("wrq", "")


class SessionBase:
    """Timers and endings; the read and write sessions add their protocol."""

    def __init__(self, negotiated: Negotiated, label: Label, limits: SessionLimits) -> None:
        self.negotiated = negotiated
        self.blksize = negotiated.blksize
        self.windowsize = negotiated.windowsize
        self.timeout = min(negotiated.timeout, limits.max_retransmit_timeout)
        self.retries = limits.retries
        self.limits = limits
        self.label = label
        self.retransmits = 0
        self.ignored = 0  # datagrams from the peer that were not useful (duplicates, junk)
        self.done: Fact | None = None  # the end fact, once over
        self._tries = 0
        self._rearm = (Timer(self.timeout, RETRANSMIT),)

    # -- for the subclasses

    def _start(self, *datagrams: bytes) -> Result:
        timers: tuple[Timer, ...] = self._rearm
        if self.limits.max_life is not None:
            timers = (*timers, Timer(self.limits.max_life, LIFE))
        return Result(tuple(Datagram(d) for d in datagrams), timers)

    def _send(self, datagrams: list[bytes] | tuple[bytes, ...], *, rearm: bool = True) -> Result:
        if len(datagrams) == 1:  # the lock-step hot path
            return Result((Datagram(datagrams[0]),), self._rearm if rearm else ())
        return Result(tuple(Datagram(d) for d in datagrams), self._rearm if rearm else ())

    def _progress_counts(self) -> tuple[int, int]:
        """(bytes, blocks) for the end fact."""
        raise NotImplementedError

    def _closing(self) -> None:
        """Release the session's file (read) or upload (write)."""

    def _finish(self, result: str, answer: str, *, send: tuple[bytes, ...] = (),
                peer_error: str | None = None) -> Result:
        done_bytes, blocks = self._progress_counts()
        self.done = self.label.fact(answer, result, phase="end", bytes=done_bytes, blocks=blocks,
                                    retransmits=self.retransmits, peer_error=peer_error,
                                    negotiated=self.negotiated.as_detail())
        self._closing()
        return Result(tuple(Datagram(d) for d in send), (), (self.done,), True)

    def _peer_error(self, code: int, message: str) -> Result:
        return self._finish("aborted", f"client error {code} {message}", peer_error=f"{code} {message}")

    def _fail(self, code: int, message: str, result: str) -> Result:
        return self._finish(result, f"error {code} {message}", send=(encode_error(code, message),))

    # -- what the transport calls besides receive()

    def expire(self, key: str = RETRANSMIT) -> Result:
        if self.done is not None:
            return NOTHING
        if key == LIFE:
            return self._expired()
        return self._retransmit()

    def _expired(self) -> Result:
        return self._finish("expired", f"session longer than {self.limits.max_life or 0:g} s",
                            send=(encode_error(ErrorCode.NOT_DEFINED, "session too long"),))

    def _retransmit(self) -> Result:
        raise NotImplementedError

    def abort(self, result: str, answer: str, error: str | None = None) -> Result:
        """End from outside (shutdown, no socket): error 0 `error` to the peer when given."""
        if self.done is not None:
            return NOTHING
        send = (encode_error(ErrorCode.NOT_DEFINED, error),) if error is not None else ()
        return self._finish(result, answer, send=send)
