"""The HTTP and HTTPS services' ready config: authentication, encryption, redirects, limits.

`plan_http` converts the inventory's `services.http` / `services.https` into plain frozen values;
the service (labkit.services.http) never reads the inventory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from labkit.inventory.model import HttpService

Scheme = Literal["http", "https"]


@dataclass(frozen=True)
class HttpAuthPlan:
    scheme: Literal["basic", "digest"]
    user: str
    password: str
    realm: str


@dataclass(frozen=True)
class HttpEncryptPlan:
    """RFC 8188 `Content-Encoding: aes128gcm` of per-phone profiles."""

    ikm: bytes
    keyid: bytes
    record_size: int


@dataclass(frozen=True)
class HttpRedirectPlan:
    to: str
    status: int


@dataclass(frozen=True)
class HttpLimits:
    """What a client may hold: slowloris and connection floods end here (issue 10, item 4).

    header_timeout: seconds from the connection (or the end of the previous response) to a
    complete request head; also the TLS handshake's bound and the keep-alive idle time.
    body_timeout: seconds to receive a request body (POST), or to drain an unread one.
    per_client: connections one address may hold at once; None is 16 on a LAN and `total` on
    loopback, where every virtual phone shares 127.0.0.1.
    total: connections the service holds at once: file handles are shared with TFTP (512
    sessions) and DNS, under a soft RLIMIT_NOFILE that is often 1024.
    """

    header_timeout: float = 10.0
    body_timeout: float = 20.0
    per_client: int | None = None
    total: int = 256

    def per_client_on(self, loopback: bool) -> int:
        if self.per_client is not None:
            return self.per_client
        return self.total if loopback else LAN_PER_CLIENT


LAN_PER_CLIENT = 16  # a phone uses one or two connections; a bench PC with a browser a few more


def _no_redirects() -> Mapping[str, HttpRedirectPlan]:
    return MappingProxyType({})


@dataclass(frozen=True)
class HttpPlan:
    scheme: Scheme
    auth: HttpAuthPlan | None = None
    encrypt: HttpEncryptPlan | None = None
    redirects: Mapping[str, HttpRedirectPlan] = field(default_factory=_no_redirects)  # by request path
    limits: HttpLimits = field(default_factory=HttpLimits)


def plan_http(config: HttpService, scheme: Scheme) -> HttpPlan:
    """The service's config from the inventory's `services.http` or `services.https`."""
    auth = config.auth
    encrypt = config.encrypt
    given = config.limits
    return HttpPlan(
        scheme=scheme,
        auth=HttpAuthPlan(auth.scheme, auth.user, auth.password, auth.realm) if auth is not None else None,
        encrypt=HttpEncryptPlan(encrypt.ikm.encode("ascii"), encrypt.keyid.encode("ascii"),
                                encrypt.record_size) if encrypt is not None else None,
        redirects=MappingProxyType({path: HttpRedirectPlan(r.to, r.status)
                                    for path, r in config.redirects.items()}),
        limits=HttpLimits(given.header_timeout, given.body_timeout, given.per_client, given.connections),
    )
