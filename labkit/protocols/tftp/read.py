"""Serve one file to one client (an accepted RRQ), sans-IO: datagrams in, a `Result` out.

- RFC 1350 lock-step transfer, 512-byte blocks when no option is acknowledged (no OACK at all).
- Retransmission on a fixed timer (the negotiated timeout, capped), never on a duplicate ACK
  (RFC 1123 4.2.3.1, the Sorcerer's Apprentice bug); `retries` retransmissions of the same
  packet(s) without progress, then the session fails with result "timeout".
- Windowsize: send a window, wait for the ACK of its last block; an ACK of an earlier block of
  the window restarts the window after that block (RFC 7440 section 4).
- Block numbers wrap from 65535 to 0 (what tftp-hpa, curl, atftp and dnsmasq expect).
- netascii converted on the fly; the file is read block by block through `file.read_at`.
- `fast_ack`: the steady-state lock-step step (the in-order ACK of the block in flight, not the
  last one) as plain bytes, with exactly the state changes `receive` makes for it; anything
  else returns None and the caller asks `receive`. tests/unit/test_tftp_fast.py holds the two
  byte for byte against each other (lost blocks, lost ACKs, rollover, errors).
- `steady`/`resume`: the state a compiled loop (labkit.native._tftp) carries the steady phase
  on with, and takes back when it hands an event to `receive`/`expire` (tests/unit/
  test_tftp_native.py holds the wire byte for byte against this core).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Protocol

from labkit.errors import CodecError
from labkit.protocols.result import NOTHING, Datagram, Result
from labkit.protocols.tftp.base import DEFAULT_LIMITS, READ_LABEL, Label, SessionBase, SessionLimits
from labkit.protocols.tftp.negotiate import Negotiated
from labkit.protocols.tftp.netascii import NetasciiReader
from labkit.protocols.tftp.packets import Error, ErrorCode, decode, encode_data, encode_error, encode_oack

_HEAD = struct.Struct("!HH")  # opcode, block: the ACK compared and the DATA header built by fast_ack
_ACK, _DATA = 4, 3


class Readable(Protocol):
    def read_at(self, offset: int, size: int) -> bytes: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Steady:
    """Where an octet read transfer stands between two events (after the OACK phase)."""

    acked: int  # absolute index of the last block acknowledged
    sent_hi: int  # absolute index of the last block sent
    final: int  # absolute index of the short (last) block, -1 while not read yet
    tries: int  # retransmissions without progress so far
    lengths: tuple[int, ...]  # payload sizes of blocks acked + 1 .. sent_hi
    waiting_oack: bool = False  # the OACK went out and waits for its ACK 0 (acked = sent_hi = 0)


class ReadSession(SessionBase):
    def __init__(self, file: Readable, negotiated: Negotiated, *, netascii: bool = False,
                 label: Label = READ_LABEL, limits: SessionLimits = DEFAULT_LIMITS) -> None:
        super().__init__(negotiated, label, limits)
        self._file = file
        self._read_at = file.read_at
        self._netascii = NetasciiReader(file.read_at, self.blksize) if netascii else None
        self._oack = encode_oack(negotiated.acked) if negotiated.acked else None
        self._waiting_oack = self._oack is not None
        self._acked = 0  # absolute index of the last block the client acknowledged
        self._sent_hi = 0  # absolute index of the last block of the window in flight
        self._final: int | None = None  # absolute index of the short (last) block, once read
        self._lengths: dict[int, int] = {}  # payload size of blocks sent but not yet acknowledged
        self.bytes_acked = 0

    @property
    def lock_step(self) -> bool:
        """A transfer `fast_ack` can carry: windowsize 1, octet."""
        return self.windowsize == 1 and self._netascii is None

    def fast_ack(self, datagram: bytes) -> bytes | None:
        """The next DATA datagram for the ACK of the block in flight (lock-step, octet), the
        retransmission timer to be re-armed as `Timer(self.timeout, "retransmit")`; None when
        `datagram` is anything else, a final ACK or a failing read: call `receive` then."""
        index = self._acked + 1
        if (self._sent_hi != index or self._final == index or self._waiting_oack
                or self.done is not None or datagram != _HEAD.pack(_ACK, index & 0xFFFF)
                or self.windowsize != 1 or self._netascii is not None):
            return None
        blksize = self.blksize
        try:
            payload = self._read_at(index * blksize, blksize)
        except OSError:  # receive() reads again and ends the session as "read-error"
            return None
        self.bytes_acked += self._lengths.pop(index)
        self._acked = index
        self._tries = 0
        index += 1
        size = len(payload)
        self._lengths[index] = size
        if size < blksize:
            self._final = index
        self._sent_hi = index
        return _HEAD.pack(_DATA, index & 0xFFFF) + payload

    @property
    def file(self) -> Readable:
        return self._file

    @property
    def pending_oack(self) -> bytes | None:
        """The OACK while it waits for its ACK 0 (what a retransmission resends), else None."""
        return self._oack if self._waiting_oack else None

    def steady(self) -> Steady | None:
        """The state to hand to a compiled loop, or None: over, or netascii (converted block by
        block here). In the OACK phase (`waiting_oack`) the loop resends `pending_oack`."""
        if self.done is not None or self._netascii is not None:
            return None
        lengths = tuple(self._lengths[i] for i in range(self._acked + 1, self._sent_hi + 1))
        return Steady(self._acked, self._sent_hi, -1 if self._final is None else self._final,
                      self._tries, lengths, self._waiting_oack)

    def resume(self, state: Steady, *, bytes_acked: int, retransmits: int, ignored: int) -> None:
        """Take back the state a compiled loop reached, and the counts it added."""
        self._acked, self._sent_hi, self._tries = state.acked, state.sent_hi, state.tries
        self._waiting_oack = state.waiting_oack
        self._final = None if state.final < 0 else state.final
        self._lengths = {state.acked + 1 + i: n for i, n in enumerate(state.lengths)}
        self.bytes_acked += bytes_acked
        self.retransmits += retransmits
        self.ignored += ignored

    def start(self) -> Result:
        if self._oack is not None:
            return self._start(self._oack)
        window = self._window(first=1)
        return window if window.done else self._start(*(d.data for d in window.send))

    def receive(self, datagram: bytes) -> Result:
        if self.done is not None:
            return NOTHING
        # Hot path: an ACK is 4 bytes; skip building packet objects for it.
        if len(datagram) == 4 and datagram[0] == 0 and datagram[1] == 4:
            return self._on_ack((datagram[2] << 8) | datagram[3])
        try:
            packet = decode(datagram)
        except CodecError:
            self.ignored += 1
            return NOTHING
        if isinstance(packet, Error):
            return self._peer_error(packet.code, packet.message)
        self.ignored += 1  # DATA, a repeated RRQ, an OACK: nothing a sender acts on
        return NOTHING

    # -- internals

    def _progress_counts(self) -> tuple[int, int]:
        return self.bytes_acked, self._acked

    def _closing(self) -> None:
        self._file.close()

    def _retransmit(self) -> Result:
        self._tries += 1
        if self._tries > self.retries:
            return self._finish("timeout", f"no ACK after {self.retries} retransmissions",
                                send=(encode_error(ErrorCode.NOT_DEFINED, "timeout"),))
        if self._oack is not None and self._waiting_oack:
            self.retransmits += 1
            return self._send((self._oack,))
        result = self._window(first=self._acked + 1)
        self.retransmits += len(result.send)
        return result

    def _on_ack(self, wire: int) -> Result:
        if self._waiting_oack:
            if wire != 0:
                self.ignored += 1
                return NOTHING
            self._waiting_oack = False
            self._tries = 0
            return self._window(first=1)
        delta = (wire - self._acked) & 0xFFFF
        if delta == 0 or delta > self._sent_hi - self._acked:
            # A duplicate (or stale) ACK: never resend on it (Sorcerer's Apprentice); the timer
            # resends if the window was really lost.
            self.ignored += 1
            return NOTHING
        if delta == 1:  # the lock-step case, once per block: no loop
            self.bytes_acked += self._lengths.pop(self._acked + 1)
        else:
            for index in range(self._acked + 1, self._acked + delta + 1):
                self.bytes_acked += self._lengths.pop(index)
        self._acked += delta
        self._tries = 0
        if self._netascii is not None:
            self._netascii.forget_before(self._acked + 1)
        if self._acked == self._final:
            return self._finish("ok", f"{self.bytes_acked} bytes in {self._acked} blocks")
        if self._acked < self._sent_hi:  # an ACK inside the window: restart after it
            result = self._window(first=self._acked + 1)
            self.retransmits += len(result.send)
            return result
        if self.windowsize == 1 and self._netascii is None:
            return self._next_block()
        return self._window(first=self._acked + 1)

    def _next_block(self) -> Result:
        """The lock-step hot path: one block, no window bookkeeping beyond its length."""
        index = self._acked + 1
        try:
            payload = self._read_at(self._acked * self.blksize, self.blksize)
        except OSError as exc:  # the file vanished or the disk failed under us
            return self._finish("read-error", f"read error: {exc}",
                                send=(encode_error(ErrorCode.NOT_DEFINED, "read error"),))
        self._lengths[index] = len(payload)
        if len(payload) < self.blksize:
            self._final = index
        self._sent_hi = index
        return Result((Datagram(encode_data(index & 0xFFFF, payload)),), self._rearm)

    def _block(self, index: int) -> bytes:
        if self._netascii is not None:
            return self._netascii.block(index)
        return self._read_at((index - 1) * self.blksize, self.blksize)

    def _window(self, first: int) -> Result:
        last = first + self.windowsize - 1
        if self._final is not None:
            last = min(last, self._final)
        datagrams: list[bytes] = []
        try:
            for index in range(first, last + 1):
                payload = self._block(index)
                self._lengths[index] = len(payload)
                datagrams.append(encode_data(index & 0xFFFF, payload))
                if len(payload) < self.blksize:
                    self._final = index
                    break
        except OSError as exc:  # the file vanished or the disk failed under us
            return self._finish("read-error", f"read error: {exc}",
                                send=(encode_error(ErrorCode.NOT_DEFINED, "read error"),))
        self._sent_hi = first + len(datagrams) - 1
        return self._send(datagrams)
