"""The phone's TFTP client, sans-IO: one read (RRQ) as a session that returns `Result`s.

The transport sends `start()`'s RRQ to the server's port, feeds every datagram with its source
to `receive(datagram, source)` and calls `expire()` when the "retransmit" timer it was told to
set fires. Datagrams with `to=None` go to the server's request port until the server's transfer
port (its TID) is known, then to that port.

- Options: blksize, tsize (asked as 0, RFC 2349), windowsize (RFC 7440) when asked for; an OACK
  is answered with ACK 0; a server that answers with DATA 1 instead ignored the options
  (RFC 2347), and the transfer runs with 512-byte blocks.
- Every in-order block is acknowledged at the end of each window (every block without
  windowsize) and at the last (short) block; a block from further on is answered, once per
  gap, with the ACK of the last block in order, so that the server restarts there.
- A repeated block (our ACK was lost) is acknowledged again.
- Retransmission of the last packet sent (the RRQ or the last ACK) on a fixed timer, `retries`
  times without progress, then the read fails ("timeout").
- Block numbers wrap from 65535 to 0.
- A datagram from another port than the transfer's gets ERROR 5 and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from labkit.errors import CodecError
from labkit.protocols.result import NOTHING, Datagram, Fact, Result, Timer
from labkit.protocols.tftp.packets import (
    Data,
    Error,
    ErrorCode,
    OptionAck,
    ReadRequest,
    decode,
    encode,
    encode_ack,
    encode_error,
)

RETRANSMIT = "retransmit"
Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class ClientOptions:
    blksize: int | None = None  # ask for this block size (None: plain 512)
    windowsize: int | None = None  # ask for this window (None: lock-step)
    tsize: bool = True  # ask for the file's size
    timeout: float = 2.0  # seconds between retransmissions
    retries: int = 3  # retransmissions without progress, then "timeout"
    mode: str = "octet"


PLAIN = ClientOptions()


class ClientSession:
    """Read one file. `status` once done: 200, 404 (error 1), 403 (other errors) or None."""

    def __init__(self, path: str, options: ClientOptions = PLAIN) -> None:
        self.path = path
        self.options = options
        self.blksize = 512
        self.windowsize = 1
        self.tsize: int | None = None
        self.peer: Address | None = None
        self.status: int | None = None
        self.error: str | None = None
        self.done: Fact | None = None
        self.retransmits = 0
        self._chunks: list[bytes] = []
        self._expected = 1  # absolute index of the next block wanted
        self._since_ack = 0
        self._gap_reported = False
        self._tries = 0
        self._last = self._request()
        self._rearm = (Timer(options.timeout, RETRANSMIT),)

    @property
    def content(self) -> bytes:
        return b"".join(self._chunks)

    @property
    def blocks(self) -> int:
        return self._expected - 1

    def _request(self) -> bytes:
        asked: list[tuple[str, str]] = []
        if self.options.blksize is not None:
            asked.append(("blksize", str(self.options.blksize)))
        if self.options.tsize:
            asked.append(("tsize", "0"))
        if self.options.windowsize is not None:
            asked.append(("windowsize", str(self.options.windowsize)))
        return encode(ReadRequest(self.path, self.options.mode, tuple(asked)))

    def start(self) -> Result:
        return Result((Datagram(self._last),), self._rearm)

    def receive(self, datagram: bytes, source: Address) -> Result:
        if self.done is not None:
            return NOTHING
        if self.peer is None:
            self.peer = source  # the server's transfer ID (RFC 1350)
        elif source != self.peer:
            return Result((Datagram(encode_error(ErrorCode.UNKNOWN_TID, "unknown transfer ID"), source),))
        try:
            packet = decode(datagram)
        except CodecError as exc:
            return self._finish(None, f"TFTP: {exc}", "malformed")
        if isinstance(packet, Error):
            status = 404 if packet.code == ErrorCode.FILE_NOT_FOUND else 403
            return self._finish(status, f"TFTP error {packet.code}: {packet.message}", "error")
        if isinstance(packet, OptionAck):
            return self._on_oack(packet)
        if isinstance(packet, Data):
            return self._on_data(packet)
        return self._finish(None, f"TFTP: unexpected {type(packet).__name__}", "unexpected")

    def expire(self, key: str = RETRANSMIT) -> Result:
        if self.done is not None:
            return NOTHING
        self._tries += 1
        if self._tries > self.options.retries:
            return self._finish(None, f"TFTP timeout after block {self.blocks}", "timeout")
        self.retransmits += 1
        return self._send(self._last)

    # -- internals

    def _send(self, datagram: bytes) -> Result:
        self._last = datagram
        return Result((Datagram(datagram, self.peer),), self._rearm)

    def _on_oack(self, packet: OptionAck) -> Result:
        if self._expected != 1:
            return NOTHING  # a late copy of the OACK: the transfer is under way
        acked = {name.lower(): value for name, value in packet.options}
        try:
            self.blksize = int(acked.get("blksize", "512"))
            self.windowsize = int(acked.get("windowsize", "1"))
            self.tsize = int(acked["tsize"]) if "tsize" in acked else None
        except ValueError:
            return self._finish(None, "TFTP: bad option value in OACK", "malformed")
        self._tries = 0
        return self._send(encode_ack(0))

    def _on_data(self, packet: Data) -> Result:
        wanted = self._expected & 0xFFFF
        if packet.block != wanted:
            if packet.block == (wanted - 1) & 0xFFFF:
                # A block we acknowledged, sent again: our ACK was lost (or its window). Again.
                return self._send(encode_ack(packet.block))
            if ((packet.block - wanted) & 0xFFFF) < 0x8000 and not self._gap_reported:
                self._gap_reported = True  # one was lost: restart after the last in order
                self._since_ack = 0
                return self._send(encode_ack((wanted - 1) & 0xFFFF))
            return NOTHING
        self._chunks.append(packet.payload)
        self._expected += 1
        self._since_ack += 1
        self._tries = 0
        self._gap_reported = False
        if len(packet.payload) < self.blksize:
            ack = encode_ack(packet.block)
            end = self._finish(200, None, "ok")
            return Result((Datagram(ack, self.peer),), (), end.facts, True)
        if self._since_ack >= self.windowsize:
            self._since_ack = 0
            return self._send(encode_ack(packet.block))
        return NOTHING

    def _finish(self, status: int | None, error: str | None, result: str) -> Result:
        self.status, self.error = status, error
        answer = f"{len(self.content)} bytes in {self.blocks} blocks" if status == 200 else str(error)
        self.done = Fact("get", self.path, answer, result, None,
                         {"status": status, "retransmits": self.retransmits, "blksize": self.blksize,
                          "windowsize": self.windowsize})
        return Result((), (), (self.done,), True)
