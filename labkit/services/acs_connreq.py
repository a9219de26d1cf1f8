"""The ACS's Connection Request (TR-069 Amendment 3 §3.2.2): an HTTP GET to the Connection
Request URL the CPE gave in its last Inform, answered by the CPE's Digest challenge, then the
same GET with the credentials (`acs.connection_request`). A 200 or 204 means the CPE will open a
session ("6 CONNECTION REQUEST"). One GET, at most one more with credentials, each bounded."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from labkit.protocols.http import digest_authorization

TIMEOUT = 10.0  # seconds for each GET


@dataclass(frozen=True)
class Outcome:
    status: int | None  # the CPE's last HTTP status; None when it could not be reached
    detail: str
    ok: bool


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
