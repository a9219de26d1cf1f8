"""One resync request as the phone makes it: the status table, redirects, credentials, decoding.

The status table (reference §5, S1): 200 → success (category A); 301/302 → retry at Location at
once; 401/407 → retry with credentials, at most twice; 404 and a corrupt profile → category B
("file not found or the profile is corrupt"); anything else → category C.
"""

from __future__ import annotations

import gzip
import random
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from labkit import macros
from labkit.errors import CodecError
from labkit.formats import aes128gcm, flat_profile, openssl_enc
from labkit.phone.effects import Fetch, FetchResult, Log, Now
from labkit.phone.proxy import with_wire
from labkit.phone.state import Outcome, PhoneConfig, Step

MAX_REDIRECTS = 5
MAX_AUTH_RETRIES = 2  # reference §5: 401/407 retried with credentials at most twice

Flow = Generator[Any, Any, Any]  # a sub-step of the logic: yields effects, returns its result
Params = dict[str, flat_profile.Param]


@dataclass(frozen=True)
class Failure:
    code: str  # "B" (file not found, corrupt profile) or "C" (anything else): reference §5
    error: str
    not_found: bool = False  # a 404 / TFTP file-not-found: Resync_Fails_On_FNF decides


@dataclass(frozen=True)
class Tls:
    """HTTPS name checks for one fetch: SRV provisioning validates the certificate against the
    DHCP-supplied domain and "tests the server IP address against a DNS lookup of the server
    name in the certificate" (reference §2, §5)."""

    cert_domain: str | None = None
    check_cert_address: bool = False


NO_TLS_CHECKS = Tls()


def host_of(value: str | None) -> str | None:
    """The host in a server value: `http://h:8080/p` → `h`, `10.0.0.1` → itself, `a;b` → a's."""
    if not value:
        return None
    first = value.split(";")[0].strip()
    if "://" in first:
        try:
            return urlsplit(first).hostname
        except ValueError:
            return None
    return first.split("/")[0].split(":")[0] or None


class PhoneBase:
    """The phone's state and its request helpers; the flows build on it."""

    def __init__(self, config: PhoneConfig) -> None:
        self.config = config
        self.traits = config.traits
        self.outcome = Outcome(config.mac, firmware=config.load)
        self.identity = config.identity
        self.random = random.Random(f"{config.mac}/{config.seed}")
        self.user_agent = config.user_agent
        # "If no server name is specified, the host that requests the URL is used" (reference
        # §3.1, S4/S5): the host the phone last talked to, first the DHCP-supplied server.
        self.last_host: str | None = None

    # -- timeline and log ------------------------------------------------------------------------
    def _step(self, kind: str, detail: str, ok: bool = True) -> Flow:
        now = yield Now()
        self.outcome.timeline.append(Step.of(float(now), kind, detail, ok, self.config.mac))

    def _log(self, text: str) -> Flow:
        yield Log(f"{self.config.model} {self.identity['MAC']} -- {text}")

    # -- one request -----------------------------------------------------------------------------
    def _request(self, url: str, method: str, body: bytes, uid: str | None, pwd: str | None,
                 tls: Tls) -> Fetch:
        """Every request the phone makes is built here: the proxy of its profile (the chapter's
        proxy set-up, `proxy.with_wire`) and its certificate checks: every HTTPS name is checked
        against a DNS lookup (reference §9.6), under SRV against the DHCP domain too (`tls`)."""
        fetch = Fetch(url, method, body, uid, pwd, self.user_agent)
        return with_wire(fetch, self.outcome.params, tls.cert_domain, self.config.check_cert_names)

    def _fetch(self, url: str, *, method: str = "GET", body: bytes = b"", uid: str | None = None,
               pwd: str | None = None, tls: Tls = NO_TLS_CHECKS) -> Flow:
        """One request with the reference's status handling (§5). A 301 is remembered: "a 301
        changes the URL of future requests" (issue 11; a firmware trait)."""
        uid, pwd = uid or self.config.uid, pwd or self.config.pwd
        current = self.outcome.moved.get(url, url)
        if current != url:
            yield from self._step("fetch", f"{url} moved permanently (301): asking {current}")
        redirects, auth_tries = 0, 0
        while True:
            send_auth = auth_tries > 0
            result: FetchResult = yield self._request(current, method, body, uid if send_auth else None,
                                                      pwd if send_auth else None, tls)
            status = result.status
            if status is None:
                return Failure("C", result.error or "no answer")
            self.last_host = urlsplit(current).hostname or self.last_host
            if status == 200 or (status == 206 and method == "GET"):
                return result
            if status in (301, 302):
                location = result.header("Location")
                if not location or redirects >= MAX_REDIRECTS:
                    return Failure("C", f"{status} without a usable Location")
                target = urljoin(current, location)
                if status == 301 and self.traits.remember_301:
                    self.outcome.moved[url] = target
                current, redirects = target, redirects + 1
                yield from self._step("fetch", f"{status} -> {current}")
                continue
            if status in (401, 407):
                if uid is None or auth_tries >= MAX_AUTH_RETRIES:
                    why = "no credentials" if uid is None else "credentials refused"
                    return Failure("C", f"{status} {why}")
                auth_tries += 1
                continue
            if status == 404:
                return Failure("B", "404 not found", not_found=True)
            return Failure("C", f"HTTP {status}")

    def _decode(self, result: FetchResult, key: str | None) -> Params:
        body = result.body
        # with a --key, AES-CBC wins regardless of the IKM (reference §4.3)
        if (result.header("Content-Encoding") or "").lower() == "aes128gcm" and key is None:
            if self.config.ikm is None:
                raise CodecError("aes128gcm body but no IKM configured")
            body = aes128gcm.decrypt(body, self.config.ikm)
        if key is not None:
            body, _ = openssl_enc.decrypt_any(body, key)
        if body[:2] == b"\x1f\x8b":  # gzip is detected by its magic, not by name or header
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError) as exc:
                raise CodecError(f"bad gzip: {exc}") from None
        return flat_profile.parse(body)

    def _resync(self, url: str, key: str | None = None, uid: str | None = None, pwd: str | None = None,
                post: str | None = None, tls: Tls = NO_TLS_CHECKS) -> Flow:
        """Fetch and read one profile: its parameters, or a `Failure`."""
        yield from self._log(f"Requesting resync {url}")
        body = macros.expand(f"${post.upper()}", self.identity).encode() if post else b""
        result = yield from self._fetch(url, method="POST" if post else "GET", body=body, uid=uid,
                                        pwd=pwd, tls=tls)
        if isinstance(result, Failure):
            yield from self._step("fetch", f"{url}: failure {result.code} ({result.error})", ok=False)
            yield from self._log(f"Resync failed: {result.error}")
            return result
        try:
            params = self._decode(result, key)
        except CodecError as exc:
            # "B: file not found or the profile is corrupt" (reference §5, S1 status table)
            failure = Failure("B", f"profile unreadable: {exc}")
            yield from self._step("profile", f"{url}: failure B ({failure.error})", ok=False)
            yield from self._log(f"Resync failed: {failure.error}")
            return failure
        yield from self._step("profile", f"{url}: {len(params)} parameters")
        yield from self._log(f"Successful resync {url}")
        return params
