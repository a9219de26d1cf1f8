"""RFC 8188 aes128gcm (reference §4.4): the RFC's own examples, properties, and http_ece."""

from __future__ import annotations

import base64
import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.errors import CodecError
from labkit.formats.aes128gcm import (
    Header,
    decrypt,
    encrypt,
    encrypt_records,
    parse_header,
)
from tests.conftest import require_module


def b64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# RFC 8188 §3.1 "Encryption of a Response": one record, rs 4096, no keyid.
RFC_3_1_IKM = b64u("yqdlZ-tYemfogSmv7Ws5PQ")
RFC_3_1_BODY = b64u("I1BsxtFttlv3u_Oo94xnmwAAEAAA-NAVub2qFgBEuQKRapoZu-IxkIva3MEB1PD-ly8Thjg")
# RFC 8188 §3.2 "Encryption with Multiple Records": rs 25, keyid "a1", the first record
# ("I am th") carrying one byte of padding, the second "e walrus".
RFC_3_2_IKM = b64u("BO3ZVPxUlnLORbVGMpbT1Q")
RFC_3_2_BODY = b64u(
    "uNCkWiNYzKTnBN9ji3-qWAAAABkCYTHOG8chz_gnvgOqdGYovxyjuqRyJFjEDyoF1Fvkj6hQPdPHI51OEUKEpgz3SsLWIqS_uA"
)
WALRUS = b"I am the walrus"


def test_rfc8188_3_1_decrypt() -> None:
    assert decrypt(RFC_3_1_BODY, RFC_3_1_IKM) == WALRUS


def test_rfc8188_3_1_encrypt_byte_exact() -> None:
    assert parse_header(RFC_3_1_BODY) == Header(
        salt=b64u("I1BsxtFttlv3u_Oo94xnmw"), record_size=4096, keyid=b""
    )
    body = encrypt(WALRUS, RFC_3_1_IKM, salt=RFC_3_1_BODY[:16], record_size=4096)
    assert body == RFC_3_1_BODY


def test_rfc8188_3_2_decrypt() -> None:
    header = parse_header(RFC_3_2_BODY)
    assert (header.record_size, header.keyid, header.length) == (25, b"a1", 23)
    assert decrypt(RFC_3_2_BODY, RFC_3_2_IKM) == WALRUS


def test_rfc8188_3_2_encrypt_byte_exact() -> None:
    body = encrypt_records(
        [(b"I am th", 1), (b"e walrus", 0)],
        RFC_3_2_IKM,
        salt=RFC_3_2_BODY[:16],
        record_size=25,
        keyid=b"a1",
    )
    assert body == RFC_3_2_BODY


def test_encrypt_fills_records() -> None:
    # rs 25 leaves 8 bytes of content per record: 15 bytes -> 8 + 7, two records.
    body = encrypt(WALRUS, RFC_3_2_IKM, salt=bytes(16), record_size=25, keyid=b"a1")
    assert len(body) == 23 + 25 + 24
    assert decrypt(body, RFC_3_2_IKM) == WALRUS


def test_exact_multiple_ends_on_a_full_final_record() -> None:
    body = encrypt(b"x" * 16, b"k" * 16, salt=bytes(16), record_size=25)
    assert len(body) == 21 + 2 * 25
    assert decrypt(body, b"k" * 16) == b"x" * 16


def test_empty_plaintext_is_one_delimiter_only_record() -> None:
    body = encrypt(b"", b"k", salt=bytes(16))
    assert len(body) == 21 + 1 + 16
    assert decrypt(body, b"k") == b""


@given(
    plaintext=st.binary(max_size=200),
    ikm=st.binary(max_size=40),
    record_size=st.integers(min_value=18, max_value=80) | st.just(4096),
    keyid=st.binary(max_size=10),
    salt=st.none() | st.binary(min_size=16, max_size=16),
)
def test_round_trip(
    plaintext: bytes, ikm: bytes, record_size: int, keyid: bytes, salt: bytes | None
) -> None:
    body = encrypt(plaintext, ikm, salt=salt, record_size=record_size, keyid=keyid)
    header = parse_header(body)
    assert header.record_size == record_size and header.keyid == keyid
    if salt is not None:
        assert header.salt == salt
    assert decrypt(body, ikm) == plaintext


@given(
    chunks=st.lists(st.binary(max_size=10), min_size=1, max_size=5),
    last_pad=st.integers(min_value=0, max_value=5),
)
def test_padding_is_stripped(chunks: list[bytes], last_pad: int) -> None:
    rs = 16 + 1 + 10 + 5
    records = [(c, rs - 17 - len(c)) for c in chunks[:-1]] + [(chunks[-1], last_pad)]
    body = encrypt_records(records, b"ikm", record_size=rs)
    assert decrypt(body, b"ikm") == b"".join(chunks)


def test_wrong_ikm_fails_authentication() -> None:
    with pytest.raises(CodecError, match="authentication"):
        decrypt(RFC_3_1_BODY, RFC_3_2_IKM)


def test_truncation_at_a_record_boundary_is_detected() -> None:
    body = encrypt(b"y" * 30, b"k", record_size=25)  # records of 8: 4 records
    header_len = 21
    for records in (1, 2, 3):
        with pytest.raises(CodecError, match="delimiter"):
            decrypt(body[: header_len + 25 * records], b"k")
    with pytest.raises(CodecError, match="no records"):
        decrypt(body[:header_len], b"k")


def test_reordered_records_fail() -> None:
    body = encrypt(b"z" * 16, b"k", record_size=25)
    swapped = body[:21] + body[46:71] + body[21:46]
    with pytest.raises(CodecError):
        decrypt(swapped, b"k")


def test_tampering_anywhere_fails() -> None:
    body = RFC_3_1_BODY
    for index in range(len(body)):
        if 16 <= index < 20:
            continue  # rs is not authenticated: with one record, another rs still decrypts
        tampered = bytearray(body)
        tampered[index] ^= 0x01
        with pytest.raises(CodecError):
            decrypt(bytes(tampered), RFC_3_1_IKM)


def _seal_raw(plain_records: list[bytes], ikm: bytes, rs: int) -> bytes:
    """Encrypt records whose plaintext (delimiter included) we choose, to test the decoder."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    salt = bytes(16)

    def hkdf(info: bytes, n: int) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=n, salt=salt, info=info).derive(ikm)

    aead = AESGCM(hkdf(b"Content-Encoding: aes128gcm\x00", 16))
    base = int.from_bytes(hkdf(b"Content-Encoding: nonce\x00", 12), "big")
    out = salt + struct.pack("!IB", rs, 0)
    for seq, plain in enumerate(plain_records):
        out += aead.encrypt((base ^ seq).to_bytes(12, "big"), plain, None)
    return out


@pytest.mark.parametrize(
    ("records", "problem"),
    [
        ([b"abc\x01"], "delimiter 0x01"),  # a lone record marked non-final: truncated
        ([b"abc\x02" + bytes(7), b"d\x02"], "delimiter 0x02"),  # "final" record, then more
        ([b"abc\x00"], "no padding delimiter"),
        ([b"\x00\x00"], "no padding delimiter"),
        ([b"abc\x03"], "no padding delimiter"),
    ],
)
def test_bad_delimiters(records: list[bytes], problem: str) -> None:
    rs = 16 + 11
    with pytest.raises(CodecError, match=problem):
        decrypt(_seal_raw(records, b"k", rs), b"k")


def test_seal_raw_helper_agrees_with_encrypt() -> None:
    assert _seal_raw([b"abc\x02"], b"k", 4096) == encrypt(b"abc", b"k", salt=bytes(16))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes(20),  # short of the 21-byte fixed header
        bytes(16) + struct.pack("!IB", 4096, 5) + b"ab",  # keyid runs past the end
        bytes(16) + struct.pack("!IB", 17, 0) + bytes(40),  # rs below 18
        bytes(16) + struct.pack("!IB", 4096, 0),  # no records
        bytes(16) + struct.pack("!IB", 4096, 0) + bytes(16),  # record too short for a tag
        bytes(16) + struct.pack("!IB", 18, 0) + bytes(18 + 10),  # a 10-byte last record
    ],
)
def test_malformed_bodies(data: bytes) -> None:
    with pytest.raises(CodecError):
        decrypt(data, b"k")


def test_bad_encrypt_arguments() -> None:
    with pytest.raises(CodecError):
        encrypt(b"x", b"k", salt=bytes(15))
    with pytest.raises(CodecError):
        encrypt(b"x", b"k", record_size=17)
    with pytest.raises(CodecError):
        encrypt(b"x", b"k", record_size=2**32)
    with pytest.raises(CodecError):
        encrypt(b"x", b"k", keyid=bytes(256))
    with pytest.raises(CodecError):
        encrypt_records([], b"k")
    with pytest.raises(CodecError):
        encrypt_records([(b"short", 0), (b"x", 0)], b"k", record_size=25)  # non-final not full
    with pytest.raises(CodecError):
        encrypt_records([(b"x" * 9, 0)], b"k", record_size=25)  # over rs
    with pytest.raises(CodecError):
        encrypt_records([(b"x", -1)], b"k")


@settings(max_examples=300)
@given(
    data=st.binary(max_size=120)
    | st.tuples(
        st.binary(min_size=16, max_size=16),
        st.integers(min_value=0, max_value=60),
        st.binary(max_size=4),
        st.binary(max_size=100),
    ).map(lambda t: t[0] + struct.pack("!IB", t[1], len(t[2])) + t[2] + t[3]),
    ikm=st.binary(max_size=16),
)
def test_arbitrary_bytes_raise_only_codec_error(data: bytes, ikm: bytes) -> None:
    with contextlib.suppress(CodecError):
        decrypt(data, ikm)
    with contextlib.suppress(CodecError):
        parse_header(data)


# --- cross-check with the http_ece package (test extra) ------------------------------


@given(
    plaintext=st.binary(min_size=1, max_size=200),
    ikm=st.binary(min_size=16, max_size=16),
    record_size=st.integers(min_value=18, max_value=60) | st.just(4096),
    keyid=st.text(alphabet="abcdefghij0123456789", max_size=8),
)
@settings(max_examples=50)
def test_http_ece_cross_check(plaintext: bytes, ikm: bytes, record_size: int, keyid: str) -> None:
    http_ece = require_module("http_ece")
    ours = encrypt(plaintext, ikm, record_size=record_size, keyid=keyid.encode())
    assert http_ece.decrypt(ours, key=ikm, version="aes128gcm") == plaintext
    theirs = http_ece.encrypt(
        plaintext, salt=bytes(16), key=ikm, keyid=keyid, rs=record_size, version="aes128gcm"
    )
    assert decrypt(theirs, ikm) == plaintext
    # Both fill records and add no padding, so with the same salt they agree byte for byte.
    assert theirs == encrypt(
        plaintext, ikm, salt=bytes(16), record_size=record_size, keyid=keyid.encode()
    )


def test_http_ece_empty_plaintext_difference() -> None:
    # http_ece encodes b"" as a header with no record at all; we write one record holding
    # just the final delimiter and refuse a record-less body, which is indistinguishable
    # from a body truncated right after its header. Each side reads the other's b"" body
    # only in one direction.
    http_ece = require_module("http_ece")
    ours = encrypt(b"", b"k" * 16)
    assert http_ece.decrypt(ours, key=b"k" * 16, version="aes128gcm") == b""
    theirs = http_ece.encrypt(b"", salt=bytes(16), key=b"k" * 16, version="aes128gcm")
    assert len(theirs) == 21
    with pytest.raises(CodecError, match="no records"):
        decrypt(theirs, b"k" * 16)


def test_http_ece_rfc_vectors() -> None:
    http_ece = require_module("http_ece")
    assert http_ece.decrypt(RFC_3_1_BODY, key=RFC_3_1_IKM, version="aes128gcm") == WALRUS
    assert http_ece.decrypt(RFC_3_2_BODY, key=RFC_3_2_IKM, version="aes128gcm") == WALRUS
