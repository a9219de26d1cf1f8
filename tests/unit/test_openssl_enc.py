"""`openssl enc -aes-256-cbc -k KEY` files (reference §4.3), checked against real openssl."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.errors import CodecError
from labkit.formats.openssl_enc import (
    MAGIC,
    decrypt,
    decrypt_any,
    encrypt,
    evp_bytes_to_key,
)
from tests.conftest import require_tool

PROFILE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<flat-profile>\n  <GPP_A>x</GPP_A>\n</flat-profile>\n'
)
DIGESTS = ["md5", "sha256"]


def _openssl(args: list[str], data: bytes, tmp_path: Path) -> bytes:
    """Run `openssl enc ARGS` on files (the way an admin makes a profile) and return output."""
    openssl = require_tool("openssl")
    src, dst = tmp_path / "in.bin", tmp_path / "out.bin"
    src.write_bytes(data)
    subprocess.run(
        [openssl, "enc", *args, "-in", str(src), "-out", str(dst)],
        check=True,
        capture_output=True,  # openssl 3 warns on stderr about the legacy KDF
        timeout=30,
    )
    return dst.read_bytes()


# --- interop with the real openssl binary ---------------------------------------------


@pytest.mark.parametrize("digest", DIGESTS)
@pytest.mark.parametrize(
    ("plaintext", "key"),
    [
        (PROFILE, "secret"),
        (b"", "k"),
        (b"x" * 16, "a key with spaces"),
        (bytes(range(256)) * 5, "Ünïcødé-key"),
    ],
)
def test_openssl_decrypts_ours(tmp_path: Path, digest: str, plaintext: bytes, key: str) -> None:
    ours = encrypt(plaintext, key, digest=digest)  # type: ignore[arg-type]
    back = _openssl(["-d", "-aes-256-cbc", "-md", digest, "-k", key], ours, tmp_path)
    assert back == plaintext


@pytest.mark.parametrize("digest", DIGESTS)
@pytest.mark.parametrize(
    ("plaintext", "key"),
    [(PROFILE, "secret"), (b"", "k"), (b"y" * 31, "Ünïcødé-key"), (gzip.compress(PROFILE), "z")],
)
def test_we_decrypt_openssl(tmp_path: Path, digest: str, plaintext: bytes, key: str) -> None:
    theirs = _openssl(["-e", "-aes-256-cbc", "-md", digest, "-k", key], plaintext, tmp_path)
    assert theirs.startswith(MAGIC)
    assert decrypt(theirs, key, digest=digest) == plaintext  # type: ignore[arg-type]


@pytest.mark.parametrize("digest", DIGESTS)
def test_same_salt_gives_openssl_bytes(tmp_path: Path, digest: str) -> None:
    salt = bytes.fromhex("0102030405060708")
    theirs = _openssl(
        ["-e", "-aes-256-cbc", "-md", digest, "-k", "secret", "-S", salt.hex()], PROFILE, tmp_path
    )
    # OpenSSL 3 writes no `Salted__` header when the salt is given with -S (1.1 did).
    if not theirs.startswith(MAGIC):
        theirs = MAGIC + salt + theirs
    assert encrypt(PROFILE, "secret", digest=digest, salt=salt) == theirs  # type: ignore[arg-type]


@pytest.mark.parametrize("digest", DIGESTS)
def test_decrypt_any_finds_openssl_digest(tmp_path: Path, digest: str) -> None:
    for plaintext in (PROFILE, gzip.compress(PROFILE), b"\xef\xbb\xbf \r\n<flat-profile/>"):
        theirs = _openssl(["-e", "-aes-256-cbc", "-md", digest, "-k", "k3y"], plaintext, tmp_path)
        assert decrypt_any(theirs, "k3y") == (plaintext, digest)


# --- the key derivation --------------------------------------------------------------


def test_evp_bytes_to_key_by_hand() -> None:
    # D1 = H(pass|salt), D2 = H(D1|pass|salt), D3 = H(D2|pass|salt): key = first 32 bytes.
    salt, password = b"saltsalt", b"pw"
    d1 = hashlib.md5(password + salt).digest()
    d2 = hashlib.md5(d1 + password + salt).digest()
    d3 = hashlib.md5(d2 + password + salt).digest()
    assert evp_bytes_to_key(password, salt, "md5") == (d1 + d2, d3)
    s1 = hashlib.sha256(password + salt).digest()
    s2 = hashlib.sha256(s1 + password + salt).digest()
    assert evp_bytes_to_key(password, salt, "sha256") == (s1, s2[:16])


# --- our own properties ----------------------------------------------------------------


@given(
    plaintext=st.binary(max_size=300),
    key=st.text(max_size=20),
    digest=st.sampled_from(DIGESTS),
    salt=st.none() | st.binary(min_size=8, max_size=8),
)
def test_round_trip(plaintext: bytes, key: str, digest: str, salt: bytes | None) -> None:
    data = encrypt(plaintext, key, digest=digest, salt=salt)  # type: ignore[arg-type]
    assert data[:8] == MAGIC
    if salt is not None:
        assert data[8:16] == salt
    assert (len(data) - 16) % 16 == 0 and len(data) - 16 > len(plaintext)
    assert decrypt(data, key, digest=digest) == plaintext  # type: ignore[arg-type]


@given(
    body=st.sampled_from([PROFILE, gzip.compress(PROFILE, mtime=0)]),
    key=st.text(max_size=20),
    digest=st.sampled_from(DIGESTS),
)
def test_decrypt_any_round_trip(body: bytes, key: str, digest: str) -> None:
    assert decrypt_any(encrypt(body, key, digest=digest), key) == (body, digest)  # type: ignore[arg-type]


def test_random_salt_differs() -> None:
    assert encrypt(PROFILE, "k") != encrypt(PROFILE, "k")


def test_decrypt_any_rejects_non_profile_plaintext() -> None:
    # Correct key and digest, but the plaintext is neither XML nor gzip.
    with pytest.raises(CodecError):
        decrypt_any(encrypt(b"plain text", "k", digest="sha256"), "k")


def test_decrypt_any_rejects_wrong_key() -> None:
    with pytest.raises(CodecError):
        decrypt_any(encrypt(PROFILE, "right"), "wrong")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"Salted__",
        b"Salted__12345678",  # no ciphertext
        b"Salted__12345678" + b"\x00" * 15,  # not a whole block
        b"salted__12345678" + b"\x00" * 16,  # wrong magic
        b"\x00" * 32,
    ],
)
def test_decrypt_rejects_bad_headers(data: bytes) -> None:
    with pytest.raises(CodecError):
        decrypt(data, "k")
    with pytest.raises(CodecError):
        decrypt_any(data, "k")


def test_bad_arguments() -> None:
    with pytest.raises(CodecError):
        encrypt(b"x", "k", salt=b"short")
    with pytest.raises(CodecError):
        encrypt(b"x", "k", digest="sha1")  # type: ignore[arg-type]
    with pytest.raises(CodecError):
        decrypt(encrypt(b"x", "k"), "k", digest="sha512")  # type: ignore[arg-type]


def test_codec_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        decrypt(b"junk", "k")


@settings(max_examples=300)
@given(
    data=st.binary(max_size=80) | st.binary(max_size=64).map(lambda b: MAGIC + b),
    key=st.text(max_size=8),
)
def test_arbitrary_bytes_raise_only_codec_error(data: bytes, key: str) -> None:
    for digest in DIGESTS:
        with contextlib.suppress(CodecError):
            decrypt(data, key, digest=digest)  # type: ignore[arg-type]
    try:
        plaintext, digest_used = decrypt_any(data, key)
    except CodecError:
        return
    assert digest_used in DIGESTS and isinstance(plaintext, bytes)
