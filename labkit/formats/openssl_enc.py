"""The `openssl enc -aes-256-cbc -k KEY` file format, as used by `[--key K]` profile rules.

Layout: `Salted__` | 8-byte salt | AES-256-CBC ciphertext of the PKCS#7-padded plaintext.
Key and IV come from OpenSSL's EVP_BytesToKey with one iteration (what `openssl enc`
does without `-pbkdf2`). The digest is MD5 for openssl < 1.1.0 and SHA-256 from 1.1.0
on; which one the phone uses is not documented (reference §4.3), hence `decrypt_any`.
"""

from __future__ import annotations

import hashlib
import os
from typing import Literal, get_args

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from labkit.errors import CodecError

__all__ = ["MAGIC", "Digest", "decrypt", "decrypt_any", "encrypt", "evp_bytes_to_key"]

Digest = Literal["md5", "sha256"]

MAGIC = b"Salted__"
_SALT_LEN = 8
_KEY_LEN = 32
_IV_LEN = 16
_BLOCK = 16
_DIGESTS: tuple[str, ...] = get_args(Digest)


def _check_digest(digest: str) -> None:
    if digest not in _DIGESTS:
        raise CodecError(f"unsupported KDF digest {digest!r}; expected one of {_DIGESTS}")


def evp_bytes_to_key(passphrase: bytes, salt: bytes, digest: Digest) -> tuple[bytes, bytes]:
    """OpenSSL's EVP_BytesToKey, one iteration: return (32-byte key, 16-byte IV).

    D_1 = H(pass | salt), D_i = H(D_{i-1} | pass | salt), concatenated until long enough.
    """
    _check_digest(digest)
    material = b""
    block = b""
    while len(material) < _KEY_LEN + _IV_LEN:
        block = hashlib.new(digest, block + passphrase + salt).digest()
        material += block
    return material[:_KEY_LEN], material[_KEY_LEN : _KEY_LEN + _IV_LEN]


def _passphrase_bytes(passphrase: str) -> bytes:
    # `openssl enc -k` uses the argument's bytes as given; UTF-8 is what a shell passes.
    return passphrase.encode("utf-8")


def encrypt(
    plaintext: bytes,
    passphrase: str,
    *,
    digest: Digest = "md5",
    salt: bytes | None = None,
) -> bytes:
    """Encrypt like `openssl enc -e -aes-256-cbc -md DIGEST -k PASSPHRASE`.

    `salt` None draws a random 8-byte salt; a given salt must be 8 bytes.
    """
    _check_digest(digest)
    if salt is None:
        salt = os.urandom(_SALT_LEN)
    elif len(salt) != _SALT_LEN:
        raise CodecError(f"salt must be {_SALT_LEN} bytes, got {len(salt)}")
    key, iv = evp_bytes_to_key(_passphrase_bytes(passphrase), salt, digest)
    padder = padding.PKCS7(_BLOCK * 8).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return MAGIC + salt + encryptor.update(padded) + encryptor.finalize()


def decrypt(data: bytes, passphrase: str, *, digest: Digest = "md5") -> bytes:
    """Decrypt an `openssl enc -aes-256-cbc` salted file; CodecError on a bad header or
    bad padding.

    A wrong passphrase or digest is usually caught by the padding check, but about one
    time in 256 it yields valid-looking padding and garbage: callers that do not know the
    digest should use `decrypt_any`, which also checks what the plaintext looks like.
    """
    _check_digest(digest)
    header_len = len(MAGIC) + _SALT_LEN
    if len(data) < header_len or not data.startswith(MAGIC):
        raise CodecError("not an openssl salted file (no 'Salted__' header)")
    body = data[header_len:]
    if not body or len(body) % _BLOCK:
        raise CodecError(f"ciphertext length {len(body)} is not a positive multiple of {_BLOCK}")
    key, iv = evp_bytes_to_key(_passphrase_bytes(passphrase), data[len(MAGIC) : header_len], digest)
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(body) + decryptor.finalize()
    unpadder = padding.PKCS7(_BLOCK * 8).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise CodecError("bad PKCS#7 padding (wrong passphrase or digest?)") from exc


_GZIP_MAGIC = b"\x1f\x8b"
_UTF8_BOM = b"\xef\xbb\xbf"
_XML_SPACE = b" \t\r\n"


def _looks_like_profile(plaintext: bytes) -> bool:
    """True for what a phone can go on with: a gzip stream, or XML (optional BOM and
    whitespace, then `<`)."""
    if plaintext.startswith(_GZIP_MAGIC):
        return True
    text = plaintext.removeprefix(_UTF8_BOM).lstrip(_XML_SPACE)
    return text.startswith(b"<")


def decrypt_any(data: bytes, passphrase: str) -> tuple[bytes, Digest]:
    """Decrypt with whichever KDF digest works, as a phone that does not know it would.

    Tries md5 then sha256; a candidate is accepted only when its padding is valid and the
    plaintext starts with a gzip magic or (after optional BOM/whitespace) with `<`.
    Returns (plaintext, digest used); CodecError when neither digest gives such a text.
    """
    digest: Digest
    for digest in ("md5", "sha256"):
        try:
            plaintext = decrypt(data, passphrase, digest=digest)
        except CodecError:
            if not data.startswith(MAGIC):
                raise  # a header problem does not depend on the digest
            continue
        if _looks_like_profile(plaintext):
            return plaintext, digest
    raise CodecError(
        "neither the md5 nor the sha256 key derivation gives a gzip or XML plaintext "
        "(wrong passphrase?)"
    )
