"""DHCP option TLVs, pure: runs of code/length/value (RFC 2132, long options split and joined as
RFC 3396 says), the sub-option TLVs inside 43 and 82, and the input checks every codec shares.

Every failure on bad input is a `CodecError` whose message names the option and the fault.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from labkit.errors import CodecError

PAD = 0
END = 255
MAX_TLV_DATA = 255  # one length byte

# --------------------------------------------------------------------------- small helpers


def is_int(value: object) -> bool:
    # bool is an int subclass; True as a lease time is a bug, not a value.
    return isinstance(value, int) and not isinstance(value, bool)


def as_bytes(value: object, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise CodecError(f"{what} must be bytes, got {type(value).__name__}")


def to_int(value: object, lo: int, hi: int, what: str) -> int:
    if isinstance(value, str):
        # Inventories are YAML; a quoted "3600" is still clearly a number.
        try:
            value = int(value.strip(), 10)
        except ValueError:
            raise CodecError(f"{what}: {value!r} is not a decimal integer") from None
    return check_int(value, lo, hi, what)


def check_int(value: object, lo: int, hi: int, what: str) -> int:
    """`value` as an int in lo..hi (no strings: typed values only), or CodecError."""
    if not is_int(value):
        raise CodecError(f"{what}: expected an integer, got {type(value).__name__}")
    assert isinstance(value, int)
    if not lo <= value <= hi:
        raise CodecError(f"{what}: {value} is out of range {lo}..{hi}")
    return value


def check_text(text: object, what: str) -> str:
    """A canonical TEXT value: non-empty ASCII without NUL (RFC 2132 NVT ASCII)."""
    if not isinstance(text, str):
        raise CodecError(f"{what}: expected a string, got {type(text).__name__}")
    if not text:
        raise CodecError(f"{what}: empty string (at least one character is required)")
    if not text.isascii():
        bad = next(i for i, ch in enumerate(text) if not ch.isascii())
        raise CodecError(f"{what}: non-ASCII character {text[bad]!r} at position {bad}")
    if "\x00" in text:
        raise CodecError(f"{what}: NUL character at position {text.index(chr(0))}")
    return text


def decode_text(data: bytes, what: str) -> str:
    # RFC 2132 s2: receivers must be prepared to delete trailing NULs; some clients send them.
    stripped = data.rstrip(b"\x00")
    if not stripped:
        raise CodecError(f"{what}: empty text")
    if b"\x00" in stripped:
        raise CodecError(f"{what}: NUL byte inside the text at offset {stripped.index(0)}")
    try:
        return stripped.decode("ascii")
    except UnicodeDecodeError as exc:
        raise CodecError(
            f"{what}: non-ASCII byte 0x{stripped[exc.start]:02x} at offset {exc.start}"
        ) from None


# --------------------------------------------------------------------------- sub-options


@dataclass(frozen=True)
class SubOption:
    """One TLV inside option 43, option 82, or an RFC 3925 vendor block (125)."""

    code: int
    data: bytes

    def __post_init__(self) -> None:
        if not is_int(self.code) or not 0 <= self.code <= 255:
            raise CodecError(f"sub-option code {self.code!r} is out of range 0..255")
        data = as_bytes(self.data, f"sub-option {self.code} data")
        if len(data) > MAX_TLV_DATA:
            raise CodecError(
                f"sub-option {self.code} data is {len(data)} bytes; at most 255 fit a TLV"
            )
        object.__setattr__(self, "data", data)


def coerce_suboption(item: object) -> SubOption:
    if isinstance(item, SubOption):
        return item
    if isinstance(item, tuple) and len(item) == 2:
        code, data = item
        if isinstance(data, str):
            data = check_text(data, f"sub-option {code}").encode("ascii")
        return SubOption(code, data)  # validated by SubOption
    raise CodecError(f"expected a SubOption or a (code, data) pair, got {item!r}")


def encode_tlvs(subs: Iterable[SubOption]) -> bytes:
    out = bytearray()
    for sub in subs:
        out += bytes((sub.code, len(sub.data))) + sub.data
    return bytes(out)


def decode_tlvs(data: bytes, what: str) -> tuple[SubOption, ...]:
    """Plain TLVs, every byte pair is code+length.

    RFC 2132 s8.4 lets option 43 contain PAD/END, but TR-069 never uses them and treating
    0 and 255 as ordinary codes keeps decode/encode exactly reversible.
    """
    subs: list[SubOption] = []
    i = 0
    while i < len(data):
        if i + 2 > len(data):
            raise CodecError(f"{what}: sub-option {data[i]} at offset {i} has no length byte")
        code, length = data[i], data[i + 1]
        if i + 2 + length > len(data):
            raise CodecError(
                f"{what}: sub-option {code} at offset {i} claims {length} bytes, "
                f"only {len(data) - i - 2} left"
            )
        subs.append(SubOption(code, data[i + 2 : i + 2 + length]))
        i += 2 + length
    return tuple(subs)


def subs_by_code(subs: Sequence[SubOption], allowed: range, what: str) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    for sub in subs:
        if not isinstance(sub, SubOption):
            raise CodecError(f"{what}: expected SubOption, got {type(sub).__name__}")
        if sub.code not in allowed:
            raise CodecError(
                f"{what}: sub-option {sub.code} is not defined "
                f"(expected {allowed.start}..{allowed.stop - 1})"
            )
        if sub.code in found:
            raise CodecError(f"{what}: sub-option {sub.code} appears twice")
        found[sub.code] = sub.data
    return found


# --------------------------------------------------------------------------- TLV runs


def encode_options(options: Iterable[tuple[int, bytes]]) -> bytes:
    """(code, payload) pairs -> TLVs in the given order, without END.

    A payload longer than 255 bytes becomes several consecutive TLVs of the same code
    (RFC 3396); an empty payload becomes a zero-length TLV.
    """
    out = bytearray()
    for code, payload in options:
        # the common case first, on every reply the server sends: a short bytes payload
        short = type(payload) is bytes and 0 < len(payload) <= MAX_TLV_DATA
        if short and type(code) is int and 0 < code < 255:
            out.append(code)
            out.append(len(payload))
            out += payload
            continue
        if not is_int(code) or not 1 <= code <= 254:
            raise CodecError(
                f"option code {code!r} cannot be sent (valid: 1..254; 0 is PAD, 255 is END)"
            )
        data = as_bytes(payload, f"option {code} payload")
        if not data:
            out += bytes((code, 0))
        for start in range(0, len(data), MAX_TLV_DATA):
            chunk = data[start : start + MAX_TLV_DATA]
            out += bytes((code, len(chunk))) + chunk
    return bytes(out)


def decode_options(data: bytes) -> dict[int, bytes]:
    """TLVs -> {code: payload}, skipping PAD, stopping at END.

    Repeated codes are concatenated in order (RFC 3396); the dict keeps first-appearance order.
    """
    data = as_bytes(data, "options")
    found: dict[int, bytes] = {}
    size = len(data)
    i = 0
    while i < size:
        code = data[i]
        if code == PAD:
            i += 1
            continue
        if code == END:
            break
        if i + 2 > size:
            raise CodecError(f"option {code} at offset {i} has no length byte")
        end = i + 2 + data[i + 1]
        if end > size:
            raise CodecError(
                f"option {code} at offset {i} claims {data[i + 1]} bytes, only {size - i - 2} left"
            )
        payload = data[i + 2 : end]
        # a repeated code is a long option split in parts (RFC 3396): rare, so join only then
        found[code] = found[code] + payload if code in found else payload
        i = end
    return found
