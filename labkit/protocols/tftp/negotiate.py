"""TFTP option negotiation (RFC 2347/2348/2349/7440) and transfer modes, pure.

Option names are compared case-insensitively and echoed as the client sent them; unknown or
out-of-range options are left out of the OACK (ignored, not refused): blksize 8-65464
(RFC 2348), tsize (RFC 2349; answered with the file size on a read, octet only), timeout
1-255 s (RFC 2349), windowsize 1-65535 (RFC 7440).
"""

from __future__ import annotations

from dataclasses import dataclass

from labkit.protocols.tftp.packets import MAX_DATA, Options

DEFAULT_BLKSIZE = 512
MIN_BLKSIZE = 8
MAX_BLKSIZE = MAX_DATA
MIN_TIMEOUT, MAX_TIMEOUT = 1, 255
MIN_WINDOWSIZE, MAX_WINDOWSIZE = 1, 65535

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
