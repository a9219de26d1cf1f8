"""Pure TFTP session cores: datagrams in, a `Step` out (datagrams to send, timer, outcome).

No sockets and no clock (h11's model): the transport feeds `receive(datagram)` for every packet
from the session's peer and `expire()` when the timer it was told to set fires, then carries out
the returned Step. The file is read through an injected `read_at(offset, size)`, block by block,
so a file of any size streams without being held in memory.

Behaviour, with the RFC that asks for it:
- RFC 1350 lock-step transfer, 512-byte blocks when no option is acknowledged (no OACK at all).
- RFC 2347 option negotiation; names compared case-insensitively and echoed as the client sent
  them; unknown or out-of-range options are left out of the OACK (ignored, not refused):
  blksize 8-65464 (RFC 2348), tsize (RFC 2349; answered with the file size on a read, octet
  only), timeout 1-255 s (RFC 2349), windowsize 1-65535 (RFC 7440).
- Retransmission on a fixed timer (the negotiated timeout, else the service default), never on a
  duplicate ACK (RFC 1123 4.2.3.1, the Sorcerer's Apprentice bug); `retries` retransmissions of
  the same packet(s) without progress, then the session fails with result "timeout".
- Windowsize: send a window, wait for the ACK of its last block; an ACK of an earlier block of
  the window restarts the window after that block (RFC 7440 section 4).
- Block numbers wrap from 65535 to 0 (what tftp-hpa, curl, atftp and dnsmasq expect).
- netascii on the fly: LF -> CR LF and CR -> CR NUL on reads, the reverse on writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from labkit.errors import CodecError
from labkit.protocols.tftp.packets import (
    MAX_DATA,
    Data,
    Error,
    ErrorCode,
    Options,
    decode,
    encode_ack,
    encode_data,
    encode_error,
    encode_oack,
)

DEFAULT_BLKSIZE = 512
MIN_BLKSIZE = 8
MAX_BLKSIZE = MAX_DATA
MIN_TIMEOUT, MAX_TIMEOUT = 1, 255
MIN_WINDOWSIZE, MAX_WINDOWSIZE = 1, 65535

ReadAt = Callable[[int, int], bytes]


# ---------------------------------------------------------------------------------------------- modes


def parse_mode(mode: str) -> str | None:
    """'octet' or 'netascii' for a transfer mode we serve, None for anything else ('mail')."""
    lowered = mode.lower()
    return lowered if lowered in ("octet", "netascii") else None


# ---------------------------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Negotiated:
    """What the session runs with, and what goes into the OACK (empty: plain RFC 1350)."""

    blksize: int = DEFAULT_BLKSIZE
    timeout: float = 2.0
    windowsize: int = 1
    tsize: int | None = None
    acked: Options = ()
    ignored: tuple[str, ...] = ()  # "name=value" of every option left out, for the event log

    def as_detail(self) -> dict[str, object]:
        return {"blksize": self.blksize, "timeout": self.timeout, "windowsize": self.windowsize,
                "tsize": self.tsize, "oack": dict(self.acked), "ignored": list(self.ignored)}


def _number(value: str, low: int, high: int) -> int | None:
    # isdigit() alone would accept "+", spaces via int(); bound the length before int().
    if not value or len(value) > 12 or not value.isascii() or not value.isdigit():
        return None
    number = int(value)
    return number if low <= number <= high else None


def negotiate(options: Options, *, write: bool, size: int | None, netascii: bool,
              default_timeout: float, max_blksize: int = MAX_BLKSIZE,
              max_windowsize: int = MAX_WINDOWSIZE) -> Negotiated:
    """Pick the options to acknowledge. `size`: the file size on a read (None when unknown)."""
    blksize, timeout, windowsize, tsize = DEFAULT_BLKSIZE, default_timeout, 1, None
    acked: list[tuple[str, str]] = []
    ignored: list[str] = []
    seen: set[str] = set()
    for name, value in options:
        key = name.lower()
        if key in seen:  # a repeated option: the first one counts
            ignored.append(f"{name}={value}")
            continue
        seen.add(key)
        if key == "blksize":
            number = _number(value, MIN_BLKSIZE, MAX_BLKSIZE)
            if number is not None:
                blksize = min(number, max_blksize)  # RFC 2348 lets the server answer smaller
                acked.append((name, str(blksize)))
                continue
        elif key == "timeout":
            number = _number(value, MIN_TIMEOUT, MAX_TIMEOUT)
            if number is not None:
                timeout = float(number)
                acked.append((name, str(number)))
                continue
        elif key == "windowsize":
            number = _number(value, MIN_WINDOWSIZE, MAX_WINDOWSIZE)
            if number is not None:
                windowsize = min(number, max_windowsize)
                acked.append((name, str(windowsize)))
                continue
        elif key == "tsize" and not netascii:
            # netascii changes the size, so no tsize there (as tftp-hpa and dnsmasq do).
            if write:  # the client announces its size: it must be a number
                tsize = _number(value, 0, 2**63)
            elif size is not None:
                # On a read the value is meaningless (RFC 2349 says 0) and the answer is the
                # file size; like dnsmasq, take any value: atftp sends "tsize enable" verbatim.
                tsize = size
            if tsize is not None:
                acked.append((name, str(tsize)))
                continue
        ignored.append(f"{name}={value}")
    return Negotiated(blksize, timeout, windowsize, tsize, tuple(acked), tuple(ignored))


# ---------------------------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class Outcome:
    """How a session ended: result "ok", "timeout", "aborted" (the peer sent an ERROR), ..."""

    result: str
    answer: str
    bytes: int = 0
    blocks: int = 0
    retransmits: int = 0
    peer_error: str | None = None


@dataclass(slots=True)
class Step:
    """What the transport must do now. `timer`: (re)arm the one timer for that many seconds,
    None leaves it as it is. `write`: bytes received on an upload, to append in order.
    `done`: the session is over; cancel the timer and close after sending `send`."""

    send: list[bytes] = field(default_factory=list)
    timer: float | None = None
    done: Outcome | None = None
    write: bytes = b""


_NOTHING = Step()  # shared, never mutated: the reply to ignored datagrams


# ---------------------------------------------------------------------------------------------- netascii


def to_netascii(raw: bytes) -> bytes:
    # CR first: the CRs that the LF replacement inserts must not become CR NUL.
    return raw.replace(b"\r", b"\r\x00").replace(b"\n", b"\r\n")


def _specials(raw: bytes) -> int:
    return raw.count(b"\r") + raw.count(b"\n")


class NetasciiReader:
    """Blocks of the netascii form of a file, produced on the fly from `read_at`.

    The converted stream is longer than the file, so a block starts at a file offset that is only
    known once the block before it was produced; those starts are kept for the blocks a window
    may have to resend (the session drops them as ACKs arrive). When a CR LF or CR NUL pair
    straddles two blocks, its second byte is carried into the next block.
    """

    def __init__(self, read_at: ReadAt, blksize: int) -> None:
        self._read_at = read_at
        self._blksize = blksize
        self._starts: dict[int, tuple[int, bytes]] = {1: (0, b"")}  # block -> (file offset, carry)

    def block(self, index: int) -> bytes:
        offset, carry = self._starts[index]
        parts = [carry]
        have = len(carry)
        while have < self._blksize:
            want = self._blksize - have
            chunk = self._read_at(offset, want)
            if not chunk:
                break
            size = len(chunk)
            # A prefix whose conversion fits in `want`: shrink by the overflow until it fits
            # (each byte converts to one or two, so this stays >= 0); the outer loop fills
            # whatever room is left. One byte always fits when two bytes of room are left.
            while size and size + _specials(chunk[:size]) > want:
                size -= size + _specials(chunk[:size]) - want
            if not size and want >= 2:
                size = 1
            if size:
                parts.append(to_netascii(chunk[:size]))
                have += size + _specials(chunk[:size])
                offset += size
                continue
            # want == 1 and the next byte is CR or LF: send the CR now, carry the rest.
            parts.append(b"\r")
            have += 1
            offset += 1
            carry = b"\n" if chunk[0] == 0x0A else b"\x00"
            self._starts[index + 1] = (offset, carry)
            return b"".join(parts)
        self._starts[index + 1] = (offset, b"")
        return b"".join(parts)

    def forget_before(self, index: int) -> None:
        for old in [i for i in self._starts if i < index]:
            del self._starts[old]


class NetasciiDecoder:
    """The reverse, for uploads: CR LF -> LF, CR NUL -> CR, a trailing CR held for the next block."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, raw: bytes, final: bool) -> bytes:
        data = self._pending + raw
        self._pending = b""
        if data.endswith(b"\r") and not final:
            self._pending, data = b"\r", data[:-1]
        return data.replace(b"\r\n", b"\n").replace(b"\r\x00", b"\r")


# ---------------------------------------------------------------------------------------------- read


class ReadSession:
    """Serve one file to one client (an accepted RRQ)."""

    def __init__(self, read_at: ReadAt, negotiated: Negotiated, *, netascii: bool = False,
                 retries: int = 5) -> None:
        self.negotiated = negotiated
        self.blksize = negotiated.blksize
        self.windowsize = negotiated.windowsize
        self.timeout = negotiated.timeout
        self.retries = retries
        self._read_at = read_at
        self._netascii = NetasciiReader(read_at, self.blksize) if netascii else None
        self._oack = encode_oack(negotiated.acked) if negotiated.acked else None
        self._waiting_oack = self._oack is not None
        self._acked = 0  # absolute index of the last block the client acknowledged
        self._sent_hi = 0  # absolute index of the last block of the window in flight
        self._final: int | None = None  # absolute index of the short (last) block, once read
        self._lengths: dict[int, int] = {}  # payload size of blocks sent but not yet acknowledged
        self._tries = 0
        self.bytes_acked = 0
        self.retransmits = 0
        self.ignored = 0  # datagrams from the peer that were not useful (duplicates, junk)
        self.done: Outcome | None = None

    # -- the transport's three entry points

    def start(self) -> Step:
        if self._oack is not None:
            return Step([self._oack], self.timeout)
        return self._send_window(first=self._acked + 1)

    def receive(self, datagram: bytes) -> Step:
        if self.done is not None:
            return _NOTHING
        # Hot path: an ACK is 4 bytes; skip building packet objects for it.
        if len(datagram) == 4 and datagram[0] == 0 and datagram[1] == 4:
            return self._on_ack((datagram[2] << 8) | datagram[3])
        try:
            packet = decode(datagram)
        except CodecError:
            self.ignored += 1
            return _NOTHING
        if isinstance(packet, Error):
            return self._finish("aborted", f"client error {packet.code} {packet.message}",
                                peer_error=f"{packet.code} {packet.message}")
        self.ignored += 1  # DATA, a repeated RRQ, an OACK: nothing a sender acts on
        return _NOTHING

    def expire(self) -> Step:
        if self.done is not None:
            return _NOTHING
        self._tries += 1
        if self._tries > self.retries:
            return self._finish("timeout", f"no ACK after {self.retries} retransmissions",
                                send=[encode_error(ErrorCode.NOT_DEFINED, "timeout")])
        if self._waiting_oack:
            assert self._oack is not None
            self.retransmits += 1
            return Step([self._oack], self.timeout)
        step = self._send_window(first=self._acked + 1)
        self.retransmits += len(step.send)
        return step

    # -- internals

    def _on_ack(self, wire: int) -> Step:
        if self._waiting_oack:
            if wire != 0:
                self.ignored += 1
                return _NOTHING
            self._waiting_oack = False
            self._tries = 0
            return self._send_window(first=1)
        delta = (wire - self._acked) & 0xFFFF
        if delta == 0 or delta > self._sent_hi - self._acked:
            # A duplicate (or stale) ACK: never resend on it (Sorcerer's Apprentice); the timer
            # resends if the window was really lost.
            self.ignored += 1
            return _NOTHING
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
            blocks = self._acked
            return self._finish("ok", f"{self.bytes_acked} bytes in {blocks} blocks")
        if self._acked < self._sent_hi:  # an ACK inside the window: restart after it
            step = self._send_window(first=self._acked + 1)
            self.retransmits += len(step.send)
            return step
        return self._send_window(first=self._acked + 1)

    def _block(self, index: int) -> bytes:
        if self._netascii is not None:
            return self._netascii.block(index)
        return self._read_at((index - 1) * self.blksize, self.blksize)

    def _send_window(self, first: int) -> Step:
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
                                send=[encode_error(ErrorCode.NOT_DEFINED, "read error")])
        self._sent_hi = first + len(datagrams) - 1
        return Step(datagrams, self.timeout)

    def _finish(self, result: str, answer: str, *, send: Iterable[bytes] = (),
                peer_error: str | None = None) -> Step:
        self.done = Outcome(result, answer, self.bytes_acked, self._acked, self.retransmits,
                            peer_error)
        return Step(list(send), None, self.done)


# ---------------------------------------------------------------------------------------------- write


class WriteSession:
    """Receive one upload (an accepted WRQ). Data is handed out in `Step.write`, in order.

    After the last (short) block is acknowledged the session dallies for one timeout so that a
    client whose final ACK was lost gets it again when it resends the last block (RFC 1350 end).
    """

    def __init__(self, negotiated: Negotiated, *, netascii: bool = False, retries: int = 5,
                 max_bytes: int = 64 * 1024 * 1024) -> None:
        self.negotiated = negotiated
        self.blksize = negotiated.blksize
        self.windowsize = negotiated.windowsize
        self.timeout = negotiated.timeout
        self.retries = retries
        self.max_bytes = max_bytes
        self._decoder = NetasciiDecoder() if netascii else None
        self._first = encode_oack(negotiated.acked) if negotiated.acked else encode_ack(0)
        self._last_ack = self._first  # what a timeout or a repeated block resends
        self._expected = 1  # absolute index of the next block wanted
        self._since_ack = 0
        self._gap_reported = False
        self._tries = 0
        self._dallying: Outcome | None = None
        self.bytes_received = 0
        self.retransmits = 0
        self.ignored = 0
        self.done: Outcome | None = None

    def start(self) -> Step:
        if self.negotiated.tsize is not None and self.negotiated.tsize > self.max_bytes:
            return self._fail(ErrorCode.DISK_FULL, "upload too large", "too-large")
        return Step([self._first], self.timeout)

    def receive(self, datagram: bytes) -> Step:
        if self.done is not None:
            return _NOTHING
        try:
            packet = decode(datagram)
        except CodecError:
            self.ignored += 1
            return _NOTHING
        if isinstance(packet, Error):
            return self._finish("aborted", f"client error {packet.code} {packet.message}",
                                peer_error=f"{packet.code} {packet.message}")
        if not isinstance(packet, Data):
            self.ignored += 1
            return _NOTHING
        delta = (packet.block - self._expected) & 0xFFFF
        if self._dallying is not None or delta != 0:
            if (packet.block - self._expected + 1) & 0xFFFF == 0:
                # The block we acknowledged last, sent again: our ACK was lost; say it again.
                # Only for that block, so duplicates cannot multiply (RFC 1123 4.2.3.1).
                self.retransmits += 1
                return Step([self._last_ack], None)
            if self._dallying is None and delta < 0x8000 and not self._gap_reported:
                # A block from further on: one was lost. Report the last one in order, once per
                # gap (RFC 7440), so the sender restarts there.
                self._gap_reported = True
                self._since_ack = 0
                self._last_ack = encode_ack((self._expected - 1) & 0xFFFF)
                return Step([self._last_ack], self.timeout)
            self.ignored += 1
            return _NOTHING
        if len(packet.payload) > self.blksize:
            return self._fail(ErrorCode.ILLEGAL_OPERATION, "block larger than blksize", "bad-block")
        final = len(packet.payload) < self.blksize
        data = packet.payload
        if self._decoder is not None:
            data = self._decoder.feed(data, final)
        self.bytes_received += len(data)
        if self.bytes_received > self.max_bytes:
            return self._fail(ErrorCode.DISK_FULL, "upload too large", "too-large")
        self._expected += 1
        self._since_ack += 1
        self._tries = 0
        self._gap_reported = False
        if final:
            self._last_ack = encode_ack(packet.block)
            blocks = self._expected - 1
            self._dallying = Outcome("ok", f"{self.bytes_received} bytes in {blocks} blocks",
                                     self.bytes_received, blocks, self.retransmits)
            return Step([self._last_ack], self.timeout, write=data)
        if self._since_ack >= self.windowsize:
            self._since_ack = 0
            self._last_ack = encode_ack(packet.block)
            return Step([self._last_ack], self.timeout, write=data)
        return Step([], None, write=data)

    def expire(self) -> Step:
        if self.done is not None:
            return _NOTHING
        if self._dallying is not None:
            self.done = self._dallying
            return Step([], None, self.done)
        self._tries += 1
        if self._tries > self.retries:
            return self._finish("timeout", f"no DATA after {self.retries} retransmissions",
                                send=[encode_error(ErrorCode.NOT_DEFINED, "timeout")])
        self.retransmits += 1
        return Step([self._last_ack], self.timeout)

    def _fail(self, code: int, message: str, result: str) -> Step:
        return self._finish(result, f"error {code} {message}", send=[encode_error(code, message)])

    def _finish(self, result: str, answer: str, *, send: Iterable[bytes] = (),
                peer_error: str | None = None) -> Step:
        self.done = Outcome(result, answer, self.bytes_received, self._expected - 1,
                            self.retransmits, peer_error)
        return Step(list(send), None, self.done)


def refusal(code: int, message: str) -> bytes:
    """The ERROR datagram that refuses a request (file not found, access violation, ...)."""
    return encode_error(code, message)

