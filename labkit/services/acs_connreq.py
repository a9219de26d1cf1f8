"""The ACS's Connection Request (TR-069 Amendment 3 §3.2.2): an HTTP GET to the Connection
Request URL the CPE gave in its last Inform, answered by the CPE's Digest challenge, then the
same GET with the credentials (`acs.connection_request`). A 200 or 204 means the CPE will open a
session ("6 CONNECTION REQUEST"). One GET, at most one more with credentials, each bounded."""

from __future__ import annotations

import hashlib
import os
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from labkit.protocols.http import parse_digest

TIMEOUT = 10.0  # seconds for each GET


@dataclass(frozen=True)
class Outcome:
    status: int | None  # the CPE's last HTTP status; None when it could not be reached
    detail: str
    ok: bool


def digest_authorization(challenge: str, method: str, uri: str, user: str, password: str,
                         cnonce: str | None = None) -> str:
    """The Authorization header answering a Digest challenge (RFC 7616, MD5, qop=auth)."""
    params = parse_digest(challenge)
    realm, nonce = params.get("realm", ""), params.get("nonce", "")
    cnonce, nc = cnonce or os.urandom(8).hex(), "00000001"

    def md5(text: str) -> str:
        return hashlib.md5(text.encode("utf-8", "surrogatepass"), usedforsecurity=False).hexdigest()

    ha1, ha2 = md5(f"{user}:{realm}:{password}"), md5(f"{method}:{uri}")
    if "auth" in [q.strip() for q in params.get("qop", "").split(",")]:
        response = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        tail = f', qop=auth, nc={nc}, cnonce="{cnonce}"'
    else:
        response, tail = md5(f"{ha1}:{nonce}:{ha2}"), ""
    opaque = f', opaque="{params["opaque"]}"' if "opaque" in params else ""
    return (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'algorithm=MD5, response="{response}"{tail}{opaque}')


async def connection_request(url: str, credentials: tuple[str, str] | None, *, timeout: float = TIMEOUT,
                             ssl_context: ssl.SSLContext | None = None) -> Outcome:
    """Knock on the CPE's Connection Request URL; `credentials`: (user, password) for Digest."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return Outcome(None, f"not an http(s) URL: {url!r}", False)
    uri = parts.path or "/"
    if parts.query:
        uri += "?" + parts.query
    limit = aiohttp.ClientTimeout(total=timeout)
    try:
        async with aiohttp.ClientSession(timeout=limit) as client:
            async with client.get(url, ssl=ssl_context or False, allow_redirects=False) as first:
                status, challenge = first.status, first.headers.get("WWW-Authenticate", "")
            if status != 401:
                return Outcome(status, f"{status} without a challenge", status in (200, 204))
            if credentials is None:
                return Outcome(401, "401: the CPE wants credentials; acs.connection_request has none", False)
            if not challenge.lower().startswith("digest"):
                scheme = challenge.split(" ")[0] or "missing"
                return Outcome(401, f"401 with a {scheme} challenge, not Digest", False)
            header = digest_authorization(challenge, "GET", uri, *credentials)
            async with client.get(url, headers={"Authorization": header}, ssl=ssl_context or False,
                                  allow_redirects=False) as second:
                status = second.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return Outcome(None, f"cannot reach {url}: {exc or type(exc).__name__}", False)
    said = {200: "200: the CPE will open a session", 204: "204: the CPE will open a session",
            401: "401: the CPE refused the credentials"}
    return Outcome(status, said.get(status, f"{status}"), status in (200, 204))
