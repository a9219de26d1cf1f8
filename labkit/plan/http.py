"""The HTTP and HTTPS services' ready config: authentication, encryption, redirects, limits.

`plan_http` converts the inventory's `services.http` / `services.https` into plain frozen values;
the service (labkit.services.http) never reads the inventory.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from labkit.inventory.model import HttpService, Inventory, Params, ParamSpec
from labkit.plan.cloud import CloudPlan, KnownPhone, known_phones, plan_cloud

if TYPE_CHECKING:
    from labkit.inventory.load import LoadedInventory

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
class LookupPlan:
    """Where a dynamic route finds its row: the first whose `column` equals the request's `key`."""

    path: Path
    kind: Literal["csv", "sqlite"]
    column: str
    key: str  # mac, model, serial, ip, firmware, query.NAME, form.NAME
    table: str | None = None
    missing: Literal["404", "render"] = "404"


@dataclass(frozen=True)
class RoutePlan:
    """A dynamic route: requests whose path matches `pattern` get `source` rendered (Jinja)."""

    pattern: str  # a glob: `*` within a segment, `**` across segments
    name: str  # the template's file name, or `routes[N]` for an inline body
    source: str
    index: int  # its place in the inventory's `routes`
    content_type: str | None = None
    lookup: LookupPlan | None = None
    methods: frozenset[str] = frozenset({"GET", "HEAD", "POST"})
    max_bytes: int = 1024 * 1024


@dataclass(frozen=True)
class ReportsPlan:
    """Report_Rule uploads: where POST counts as one (PUT always does), the bounds, the IKMs
    aes128gcm uploads are decoded with (per phone, else the service's own)."""

    enabled: bool = True
    paths: tuple[str, ...] = ("/report/**", "/reports/**")
    max_bytes: int = 1024 * 1024
    per_phone: int = 100
    total_bytes: int = 256 * 1024 * 1024
    ikms: Mapping[str, bytes] = field(default_factory=lambda: MappingProxyType({}))  # by MAC
    fallback_ikm: bytes | None = None  # for a phone the inventory does not know

    def ikm_for(self, mac: str | None) -> bytes | None:
        return self.ikms.get(mac, self.fallback_ikm) if mac is not None else self.fallback_ikm


def _no_phones() -> Mapping[str, KnownPhone]:
    return MappingProxyType({})


@dataclass(frozen=True)
class HttpPlan:
    scheme: Scheme
    auth: HttpAuthPlan | None = None
    encrypt: HttpEncryptPlan | None = None
    redirects: Mapping[str, HttpRedirectPlan] = field(default_factory=_no_redirects)  # by request path
    limits: HttpLimits = field(default_factory=HttpLimits)
    routes: tuple[RoutePlan, ...] = ()
    reports: ReportsPlan = field(default_factory=ReportsPlan)
    cloud: CloudPlan | None = None  # the emulated activation service; None: the names are sinkholed
    phones: Mapping[str, KnownPhone] = field(default_factory=_no_phones)  # for the routes' templates


def plan_http(config: HttpService, scheme: Scheme, loaded: LoadedInventory | None = None) -> HttpPlan:
    """The service's config from the inventory's `services.http` or `services.https` (and, with
    `loaded`, its routes, reports and cloud sections)."""
    auth = config.auth
    encrypt = config.encrypt
    given = config.limits
    plan = HttpPlan(
        scheme=scheme,
        auth=HttpAuthPlan(auth.scheme, auth.user, auth.password, auth.realm) if auth is not None else None,
        encrypt=HttpEncryptPlan(encrypt.ikm.encode("ascii"), encrypt.keyid.encode("ascii"),
                                encrypt.record_size) if encrypt is not None else None,
        redirects=MappingProxyType({path: HttpRedirectPlan(r.to, r.status)
                                    for path, r in config.redirects.items()}),
        limits=HttpLimits(given.header_timeout, given.body_timeout, given.per_client, given.connections),
    )
    if loaded is None:
        return plan
    inv = loaded.inventory
    return replace(plan, routes=plan_routes(loaded, scheme), reports=plan_reports(inv, config),
                   cloud=plan_cloud(inv), phones=known_phones(inv))


def glob_regex(pattern: str) -> re.Pattern[str]:
    """`*` matches within one path segment, `**` across segments; the rest is literal."""
    parts = re.split(r"(\*\*|\*)", pattern)
    body = "".join(".*" if p == "**" else "[^/]*" if p == "*" else re.escape(p) for p in parts)
    return re.compile(body + r"\Z")


SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")


def plan_routes(loaded: LoadedInventory, scheme: Scheme) -> tuple[RoutePlan, ...]:
    """The inventory's routes that this scheme serves, templates read now (a reload rereads them)."""
    out = []
    for index, route in enumerate(loaded.inventory.routes):
        if scheme not in route.schemes:
            continue
        if route.template is not None:
            name, source = route.template, read_template(loaded.templates_dir / route.template)
        else:
            name, source = f"routes[{index}]", route.body or ""
        lookup = None
        if route.lookup is not None:
            given = route.lookup
            path = loaded.base_dir / given.file
            kind: Literal["csv", "sqlite"] = "sqlite" if path.suffix.lower() in SQLITE_SUFFIXES else "csv"
            lookup = LookupPlan(path, kind, given.column, given.key, given.table, given.missing)
        out.append(RoutePlan(route.path, name, source, index, route.content_type, lookup,
                             frozenset(route.methods), route.max_bytes))
    return tuple(out)


def read_template(path: Path) -> str:
    """A route template's text ("" when unreadable: `labkit check` has said why already)."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


IKM_PARAM = "IKM_HTTP_Encrypt_Content"  # the phone's RFC 8188 key (reference §4.4)


def _param(params: Params, name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    return str(value.value if isinstance(value, ParamSpec) else value)


def plan_reports(inv: Inventory, config: HttpService) -> ReportsPlan:
    """The reports' bounds and each phone's IKM: its own `IKM_HTTP_Encrypt_Content` (phone, then
    model, then the profiles' params), else the key this service encrypts profiles with."""
    given = inv.reports
    ikms: dict[str, bytes] = {}
    fallback = config.encrypt.ikm if config.encrypt is not None else None
    for phone in inv.phones:
        model = inv.models.get(phone.model)
        found = (_param(phone.params, IKM_PARAM) or (_param(model.params, IKM_PARAM) if model else None)
                 or _param(inv.profiles.params, IKM_PARAM) or fallback)
        if found:
            ikms[phone.mac] = found.encode("ascii", "surrogateescape")
    return ReportsPlan(given.enabled, tuple(given.paths), given.max_bytes, given.per_phone, given.total_bytes,
                       MappingProxyType(ikms), fallback.encode("ascii") if fallback else None)
