"""RFC 8188 Encrypted Content-Encoding (`Content-Encoding: aes128gcm`).

Body = salt(16) | rs (u32 BE) | idlen (u8) | keyid | records. Every record but the last
is exactly `rs` bytes of ciphertext (plaintext | delimiter | zero padding, plus a 16-byte
GCM tag); the delimiter is 0x01 in non-final records and 0x02 in the final one, which is
what stops an attacker from truncating the body at a record boundary (RFC 8188 §2).
CEK and nonce come from HKDF-SHA256 keyed with the header salt (§2.2, §2.3). MPP
firmware ≥ 11.2(3) uses this with the IKM from `IKM_HTTP_Encrypt_Content` (reference §4.4).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from labkit.errors import CodecError

__all__ = ["Header", "decrypt", "encrypt", "encrypt_records", "parse_header"]

SALT_LEN = 16
TAG_LEN = 16
MIN_RECORD_SIZE = 18  # a tag, a delimiter and at least one byte of content (RFC 8188 §2.1)
MAX_RECORD_SIZE = 2**32 - 1
MAX_KEYID_LEN = 255
_FIXED_HEADER = struct.Struct("!16sIB")
_CEK_INFO = b"Content-Encoding: aes128gcm\x00"
_NONCE_INFO = b"Content-Encoding: nonce\x00"
_DELIM_MORE = 0x01
_DELIM_LAST = 0x02


@dataclass(frozen=True)
class Header:
    """The aes128gcm header; `length` is its size in bytes (where the records begin)."""

    salt: bytes
    record_size: int
    keyid: bytes

    @property
    def length(self) -> int:
        return _FIXED_HEADER.size + len(self.keyid)

    def to_bytes(self) -> bytes:
        return _FIXED_HEADER.pack(self.salt, self.record_size, len(self.keyid)) + self.keyid


def parse_header(data: bytes) -> Header:
    """Parse (and sanity-check) the header at the start of an aes128gcm body.

    Useful on its own to read the keyid before choosing an IKM.
    """
    if len(data) < _FIXED_HEADER.size:
        raise CodecError(f"aes128gcm body too short for a header ({len(data)} bytes)")
    salt, record_size, idlen = _FIXED_HEADER.unpack_from(data)
    if len(data) < _FIXED_HEADER.size + idlen:
        raise CodecError(f"aes128gcm body too short for its {idlen}-byte keyid")
    if record_size < MIN_RECORD_SIZE:
        raise CodecError(f"aes128gcm record size {record_size} < {MIN_RECORD_SIZE}")
    keyid = bytes(data[_FIXED_HEADER.size : _FIXED_HEADER.size + idlen])
    return Header(salt=salt, record_size=record_size, keyid=keyid)


def _derive(salt: bytes, ikm: bytes) -> tuple[AESGCM, bytes]:
    """(AEAD keyed with the CEK, base nonce) for this salt and IKM (RFC 8188 §2.2-2.3)."""

    def hkdf(info: bytes, length: int) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)

    return AESGCM(hkdf(_CEK_INFO, 16)), hkdf(_NONCE_INFO, 12)


def _record_nonce(base: bytes, seq: int) -> bytes:
    # The 96-bit base nonce XOR the record sequence number, big-endian (§2.3).
    return (int.from_bytes(base, "big") ^ seq).to_bytes(12, "big")


def _check_params(salt: bytes, record_size: int, keyid: bytes) -> None:
    if len(salt) != SALT_LEN:
        raise CodecError(f"salt must be {SALT_LEN} bytes, got {len(salt)}")
    if not MIN_RECORD_SIZE <= record_size <= MAX_RECORD_SIZE:
        raise CodecError(f"record size {record_size} outside {MIN_RECORD_SIZE}..{MAX_RECORD_SIZE}")
    if len(keyid) > MAX_KEYID_LEN:
        raise CodecError(f"keyid is {len(keyid)} bytes; at most {MAX_KEYID_LEN} fit")


def encrypt_records(
    records: Iterable[tuple[bytes, int]],
    ikm: bytes,
    *,
    salt: bytes | None = None,
    record_size: int = 4096,
    keyid: bytes = b"",
) -> bytes:
    """Encrypt with explicit record boundaries: each item is (content, padding length).

    For tests and for reproducing other encoders byte for byte (RFC 8188 §3.2 pads its
    first record). Every record but the last must fill `record_size` exactly; there must
    be at least one record.
    """
    if salt is None:
        salt = os.urandom(SALT_LEN)
    _check_params(salt, record_size, keyid)
    items = list(records)
    if not items:
        raise CodecError("aes128gcm needs at least one record")
    aead, base_nonce = _derive(salt, ikm)
    out = [Header(salt=salt, record_size=record_size, keyid=keyid).to_bytes()]
    for seq, (content, pad) in enumerate(items):
        last = seq == len(items) - 1
        if pad < 0:
            raise CodecError(f"record {seq}: negative padding")
        size = len(content) + 1 + pad + TAG_LEN
        if size > record_size or (not last and size != record_size):
            raise CodecError(
                f"record {seq} is {size} bytes encrypted; "
                f"{'at most' if last else 'exactly'} {record_size} required"
            )
        delimiter = _DELIM_LAST if last else _DELIM_MORE
        plain = content + bytes([delimiter]) + bytes(pad)
        out.append(aead.encrypt(_record_nonce(base_nonce, seq), plain, None))
    return b"".join(out)


def encrypt(
    plaintext: bytes,
    ikm: bytes,
    *,
    salt: bytes | None = None,
    record_size: int = 4096,
    keyid: bytes = b"",
) -> bytes:
    """Encrypt `plaintext` as an aes128gcm body, filling records and adding no padding.

    `salt` None draws a random 16-byte salt. An empty plaintext gives one record that
    holds only the final delimiter.
    """
    if not MIN_RECORD_SIZE <= record_size <= MAX_RECORD_SIZE:
        raise CodecError(f"record size {record_size} outside {MIN_RECORD_SIZE}..{MAX_RECORD_SIZE}")
    chunk = record_size - TAG_LEN - 1
    pieces = [plaintext[k : k + chunk] for k in range(0, len(plaintext), chunk)] or [b""]
    return encrypt_records(
        ((piece, 0) for piece in pieces), ikm, salt=salt, record_size=record_size, keyid=keyid
    )


def _unpad(plain: bytes, last: bool, seq: int) -> bytes:
    # A record's plaintext is content | delimiter | zeros (RFC 8188 §2).
    stripped = plain.rstrip(b"\x00")
    delimiter = stripped[-1] if stripped else None
    if delimiter not in (_DELIM_MORE, _DELIM_LAST):
        raise CodecError(f"record {seq} has no padding delimiter")
    if last and delimiter == _DELIM_MORE:
        raise CodecError(f"last record {seq} has delimiter 0x01 (body truncated?)")
    if not last and delimiter == _DELIM_LAST:
        raise CodecError(f"record {seq} has delimiter 0x02 but more records follow")
    return stripped[:-1]


def decrypt(data: bytes, ikm: bytes) -> bytes:
    """Decrypt an aes128gcm body; CodecError on anything malformed, a failed tag check,
    a wrong delimiter or a body with no records (which could be a truncation)."""
    header = parse_header(data)
    body = memoryview(data)[header.length :]
    if not body:
        raise CodecError("aes128gcm body has no records")
    aead, base_nonce = _derive(header.salt, ikm)
    rs = header.record_size
    out: list[bytes] = []
    for seq, start in enumerate(range(0, len(body), rs)):
        record = body[start : start + rs]
        last = start + rs >= len(body)
        if len(record) <= TAG_LEN:
            raise CodecError(f"record {seq} is {len(record)} bytes, too short for a tag")
        try:
            plain = aead.decrypt(_record_nonce(base_nonce, seq), bytes(record), None)
        except InvalidTag as exc:
            raise CodecError(f"record {seq} fails authentication (wrong IKM?)") from exc
        out.append(_unpad(plain, last, seq))
    return b"".join(out)
