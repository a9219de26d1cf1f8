"""Receive one upload (an accepted WRQ), sans-IO: datagrams in, a `Result` out.

Received data goes, in order, to an injected `Writable` (the transport's part file); the upload
is committed (linked into place) only once whole. After the last (short) block is acknowledged
the session dallies for one timeout so that a client whose final ACK was lost gets it again
when it resends the last block (RFC 1350 end).
"""

from __future__ import annotations

from typing import Protocol

from labkit.errors import CodecError
from labkit.protocols.result import NOTHING, Datagram, Result
from labkit.protocols.tftp.base import DEFAULT_LIMITS, WRITE_LABEL, Label, SessionBase, SessionLimits
from labkit.protocols.tftp.negotiate import Negotiated
from labkit.protocols.tftp.netascii import NetasciiDecoder
from labkit.protocols.tftp.packets import (
    Data,
    Error,
    ErrorCode,
    decode,
    encode_ack,
    encode_error,
    encode_oack,
)


class Writable(Protocol):
    def write(self, data: bytes) -> None: ...  # OSError: the session fails with "write-error"

    def commit(self) -> bool: ...  # into place; False: a file of that name appeared meanwhile

    def close(self) -> None: ...  # discard what was not committed


class WriteSession(SessionBase):
    def __init__(self, target: Writable, negotiated: Negotiated, *, netascii: bool = False,
                 label: Label = WRITE_LABEL, limits: SessionLimits = DEFAULT_LIMITS,
                 max_bytes: int = 64 * 1024 * 1024) -> None:
        super().__init__(negotiated, label, limits)
        self._target = target
        self.max_bytes = max_bytes
        self._decoder = NetasciiDecoder() if netascii else None
        self._first = encode_oack(negotiated.acked) if negotiated.acked else encode_ack(0)
        self._last_ack = self._first  # what a timeout or a repeated block resends
        self._expected = 1  # absolute index of the next block wanted
        self._since_ack = 0
        self._gap_reported = False
        self._dallying: str | None = None  # the answer of a finished upload, while dallying
        self.bytes_received = 0

    def start(self) -> Result:
        if self.negotiated.tsize is not None and self.negotiated.tsize > self.max_bytes:
            return self._fail(ErrorCode.DISK_FULL, "upload too large", "too-large")
        return self._start(self._first)

    def receive(self, datagram: bytes) -> Result:
        if self.done is not None:
            return NOTHING
        try:
            packet = decode(datagram)
        except CodecError:
            self.ignored += 1
            return NOTHING
        if isinstance(packet, Error):
            return self._peer_error(packet.code, packet.message)
        if not isinstance(packet, Data):
            self.ignored += 1
            return NOTHING
        delta = (packet.block - self._expected) & 0xFFFF
        if self._dallying is not None or delta != 0:
            return self._out_of_order(packet.block, delta)
        if len(packet.payload) > self.blksize:
            return self._fail(ErrorCode.ILLEGAL_OPERATION, "block larger than blksize", "bad-block")
        return self._in_order(packet)

    def _out_of_order(self, block: int, delta: int) -> Result:
        if (block - self._expected + 1) & 0xFFFF == 0:
            # The block we acknowledged last, sent again: our ACK was lost; say it again.
            # Only for that block, so duplicates cannot multiply (RFC 1123 4.2.3.1).
            self.retransmits += 1
            return Result((Datagram(self._last_ack),))
        if self._dallying is None and delta < 0x8000 and not self._gap_reported:
            # A block from further on: one was lost. Report the last one in order, once per
            # gap (RFC 7440), so the sender restarts there.
            self._gap_reported = True
            self._since_ack = 0
            self._last_ack = encode_ack((self._expected - 1) & 0xFFFF)
            return self._send((self._last_ack,))
        self.ignored += 1
        return NOTHING

    def _in_order(self, packet: Data) -> Result:
        final = len(packet.payload) < self.blksize
        data = packet.payload
        if self._decoder is not None:
            data = self._decoder.feed(data, final)
        self.bytes_received += len(data)
        if self.bytes_received > self.max_bytes:
            return self._fail(ErrorCode.DISK_FULL, "upload too large", "too-large")
        try:
            if data:
                self._target.write(data)
        except OSError as exc:
            return self._finish("write-error", f"write failed: {exc}",
                                send=(encode_error(ErrorCode.DISK_FULL, "write failed"),))
        self._expected += 1
        self._since_ack += 1
        self._tries = 0
        self._gap_reported = False
        if final:
            self._last_ack = encode_ack(packet.block)
            self._dallying = f"{self.bytes_received} bytes in {self._expected - 1} blocks"
            return self._send((self._last_ack,))
        if self._since_ack >= self.windowsize:
            self._since_ack = 0
            self._last_ack = encode_ack(packet.block)
            return self._send((self._last_ack,))
        return NOTHING

    def _retransmit(self) -> Result:
        if self._dallying is not None:
            try:
                committed = self._target.commit()
            except OSError as exc:
                return self._finish("write-error", f"write failed: {exc}")
            if not committed:
                return self._finish("exists", "another upload of this name finished first")
            return self._finish("ok", self._dallying)
        self._tries += 1
        if self._tries > self.retries:
            return self._finish("timeout", f"no DATA after {self.retries} retransmissions",
                                send=(encode_error(ErrorCode.NOT_DEFINED, "timeout"),))
        self.retransmits += 1
        return self._send((self._last_ack,))

    def _expired(self) -> Result:
        if self._dallying is not None:  # whole already: only the dally was cut short
            return self._retransmit()
        return super()._expired()

    def _progress_counts(self) -> tuple[int, int]:
        return self.bytes_received, self._expected - 1

    def _closing(self) -> None:
        self._target.close()
