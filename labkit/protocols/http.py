"""Pure HTTP helpers: who is asking (User-Agent), are they allowed (Basic/Digest), which bytes (Range)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass

from labkit.errors import CodecError

# `Cisco-CP-7832-3PCC/11.0.1 (00562b043615)` (reference §5); some firmware adds a serial in a
# second parenthesis, as the SPA ancestors did: `(0002FDFF2103)(CBT141400UK)`
_UA = re.compile(
    r"^Cisco-(?P<model>[A-Za-z0-9-]+)/(?P<version>\S+)\s*\((?P<mac>[0-9A-Fa-f]{12})\)"
    r"(?:\s*\((?P<serial>[^)]*)\))?"
)


@dataclass(frozen=True)
class PhoneAgent:
    model: str  # CP-7832-3PCC
    version: str  # 11.0.1
    mac: str  # 00:56:2b:04:36:15
    serial: str | None = None


def parse_user_agent(value: str | None) -> PhoneAgent | None:
    """The phone an MPP User-Agent names, or None for anything else."""
    if not value:
        return None
    match = _UA.match(value.strip())
    if match is None:
        return None
    digits = match["mac"].lower()
    mac = ":".join(digits[i : i + 2] for i in range(0, 12, 2))
    return PhoneAgent(match["model"], match["version"], mac, match["serial"])


# -- byte ranges (RFC 9110 §14) ---------------------------------------------------------------


class RangeNotSatisfiable(CodecError):
    """A Range that starts past the end: 416 (RFC 9110 §15.5.17)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive for a single `bytes=` range; None to send the whole body.

    Multiple ranges are answered with the whole body (allowed by RFC 9110; phones ask for one).
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first_text == "":
            suffix = int(last_text)
            if suffix <= 0:
                raise RangeNotSatisfiable("empty suffix range")
            return (max(0, size - suffix), size - 1) if size else _unsatisfiable()
        first = int(first_text)
        last = int(last_text) if last_text else size - 1
    except ValueError:
        return None  # a malformed Range header is ignored (RFC 9110 §14.2)
    if first < 0 or (last < first and last_text):
        return None  # an invalid range is ignored: the whole body (RFC 9110 §14.2)
    if first >= size:
        _unsatisfiable()
    return first, min(last, size - 1)


def _unsatisfiable() -> tuple[int, int]:
    raise RangeNotSatisfiable("range starts past the end")


# -- authentication (RFC 7617 Basic, RFC 7616 Digest with MD5, qop=auth) -------------------------


def check_basic(header: str | None, user: str, password: str) -> bool:
    if not header or not header.lower().startswith("basic "):
        return False
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return False
    given_user, _, given_password = decoded.partition(":")
    user_ok = _same(given_user, user)  # both compared, whatever the first says (constant time)
    return _same(given_password, password) and user_ok


def _bytes(text: str) -> bytes:
    """UTF-8 of any str, lone surrogates included (header values can carry undecodable bytes)."""
    return text.encode("utf-8", "surrogatepass")


def _same(given: str, expected: str) -> bool:
    """Constant-time equality of two strings, non-ASCII included: `hmac.compare_digest` raises
    TypeError on non-ASCII str, so it compares their bytes."""
    return hmac.compare_digest(_bytes(given), _bytes(expected))


def basic_challenge(realm: str) -> str:
    return f'Basic realm="{realm}", charset="UTF-8"'


_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))\s*,?')


def parse_digest(header: str) -> dict[str, str]:
    if not header.lower().startswith("digest "):
        return {}
    params: dict[str, str] = {}
    for match in _PARAM.finditer(header[7:]):
        value = match.group(2) if match.group(2) is not None else match.group(3)
        params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
    return params


def _md5(text: str) -> str:
    return hashlib.md5(_bytes(text), usedforsecurity=False).hexdigest()


class DigestAuth:
    """Stateless Digest: the nonce is a timestamp signed with a per-process secret."""

    def __init__(self, user: str, password: str, realm: str, *, lifetime: float = 300.0,
                 secret: bytes | None = None) -> None:
        self.user, self.password, self.realm = user, password, realm
        self.lifetime = lifetime
        self.secret = secret or secrets.token_bytes(16)
        self.opaque = hashlib.sha256(self.secret + b"opaque").hexdigest()[:32]

    def _sign(self, stamp: str) -> str:
        return hmac.new(self.secret, _bytes(stamp), hashlib.sha256).hexdigest()[:32]

    def make_nonce(self, now: float) -> str:
        stamp = f"{int(now):x}"
        return f"{stamp}.{self._sign(stamp)}"

    def challenge(self, now: float, *, stale: bool = False) -> str:
        return (f'Digest realm="{self.realm}", qop="auth", algorithm=MD5, '
                f'nonce="{self.make_nonce(now)}", opaque="{self.opaque}"'
                + (", stale=true" if stale else ""))

    def check(self, header: str | None, method: str, now: float) -> tuple[bool, bool]:
        """(ok, stale): stale means a good answer to an expired nonce (re-challenge, don't fail)."""
        params = parse_digest(header or "")
        required = ("username", "realm", "nonce", "uri", "response")
        if not all(k in params for k in required):
            return False, False
        if params["username"] != self.user or params["realm"] != self.realm:
            return False, False
        stamp, _, signature = params["nonce"].partition(".")
        if not _same(signature, self._sign(stamp)):
            return False, False
        ha1 = _md5(f"{self.user}:{self.realm}:{self.password}")
        ha2 = _md5(f"{method}:{params['uri']}")
        qop = params.get("qop")
        if qop == "auth":
            if "nc" not in params or "cnonce" not in params:
                return False, False
            expected = _md5(f"{ha1}:{params['nonce']}:{params['nc']}:{params['cnonce']}:auth:{ha2}")
        elif qop is None:
            expected = _md5(f"{ha1}:{params['nonce']}:{ha2}")  # RFC 2069 compatibility
        else:
            return False, False
        if not _same(expected, params["response"].lower()):
            return False, False
        try:
            issued = int(stamp, 16)
        except ValueError:
            return False, False
        if now - issued > self.lifetime:
            return False, True
        return True, False


def digest_authorization(challenge: str, method: str, uri: str, user: str, password: str,
                         *, cnonce: str | None = None, scheme: str = "Digest") -> str:
    """The client's answer to a Digest challenge (RFC 7616, MD5, qop=auth when offered);
    `scheme` "Digest" for Authorization and Proxy-Authorization alike (the header name differs)."""
    params = parse_digest(challenge)
    realm, nonce = params.get("realm", ""), params.get("nonce", "")
    cnonce, nc = cnonce or os.urandom(8).hex(), "00000001"
    ha1, ha2 = _md5(f"{user}:{realm}:{password}"), _md5(f"{method}:{uri}")
    if "auth" in [q.strip() for q in params.get("qop", "").split(",")]:
        response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        tail = f', qop=auth, nc={nc}, cnonce="{cnonce}"'
    else:
        response, tail = _md5(f"{ha1}:{nonce}:{ha2}"), ""
    opaque = f', opaque="{params["opaque"]}"' if "opaque" in params else ""
    return (f'{scheme} username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'algorithm=MD5, response="{response}"{tail}{opaque}')


def auth_challenge(header: str | None, method: str, now: float, *, user: str, password: str,
                   realm: str, digest: DigestAuth | None) -> str | None:
    """A server's decision on an Authorization header: None when it passes, else the
    WWW-Authenticate challenge to answer 401 with (Digest when `digest`, else Basic)."""
    if digest is not None:
        ok, stale = digest.check(header, method, now)
        return None if ok else digest.challenge(now, stale=stale)
    return None if check_basic(header, user, password) else basic_challenge(realm)
