"""netascii on the fly (RFC 764 line ends): LF -> CR LF and CR -> CR NUL on reads, the reverse
on writes, block by block so that a file of any size streams without being held in memory."""

from __future__ import annotations

from collections.abc import Callable

ReadAt = Callable[[int, int], bytes]


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
