"""Dynamic routes: a Jinja template rendered per request with what the request tells (the
chapter: "the profile can be generated dynamically by querying a customer database").

The template sees `phone` (mac, ma, mau, model, psn, firmware, serial, ip, known, name, group:
from the User-Agent `Cisco-CP-8851-3PCC/11.3.1 (001122334455)`, else the address the phone
holds), `request` (method, path, query, form, body, remote, scheme, host, user_agent), `macros`
(the MPP identity macros MA, MAU, MAC, PN, PSN, SN, IP) and `row` (the lookup's row, or None).
The environment is Jinja's sandbox; the output is bounded; a render error is a 500 and an event,
never a traceback.
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from labkit import macros
from labkit.errors import CodecError
from labkit.plan.cloud import KnownPhone
from labkit.plan.http import LookupPlan, RoutePlan, glob_regex
from labkit.services.http_send import content_type

MAX_FIELDS = 1000  # query or form fields read from one request
MAX_TABLE_BYTES = 64 * 1024 * 1024  # a CSV file read for a lookup
MAX_ROWS = 1_000_000  # rows a lookup reads before giving up


class RouteFailed(Exception):
    """A route that cannot answer this request: a template, lookup or size problem (-> 500)."""


@dataclass(frozen=True)
class RequestFacts:
    """What one request tells a template (and a lookup)."""

    method: str = "GET"
    path: str = "/"
    query: Mapping[str, str] = field(default_factory=dict)
    form: Mapping[str, str] = field(default_factory=dict)
    body: str = ""
    remote: str = ""
    scheme: str = "http"
    host: str = ""
    user_agent: str = ""
    mac: str | None = None  # normalized, from the User-Agent or the address
    model: str | None = None
    firmware: str | None = None
    serial: str | None = None


def parse_fields(text: str) -> dict[str, str]:
    """`a=1&b=2` fields (the last value of a repeated name wins), at most MAX_FIELDS."""
    return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=None)[:MAX_FIELDS])


def form_fields(body: bytes, content_type: str) -> dict[str, str]:
    """POST fields: a form-encoded body, or the phone's `--post` body (the expanded GPP value,
    sent without a form content type) when it reads as `name=value&...`."""
    text = body.decode("utf-8", errors="replace")
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/x-www-form-urlencoded" or (kind in ("", "text/plain") and "=" in text):
        return parse_fields(text.strip())
    return {}


@dataclass(frozen=True)
class Rendered:
    status: int
    body: bytes
    content_type: str
    answer: str  # for the event
    result: str
    row_found: bool | None = None


class DynamicRoutes:
    """The plan's routes, compiled once per plan (start and reload)."""

    def __init__(self, routes: tuple[RoutePlan, ...], phones: Mapping[str, KnownPhone]) -> None:
        self.phones = phones
        self.env = SandboxedEnvironment(loader=jinja2.DictLoader({r.name: r.source for r in routes}),
                                        undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                        autoescape=False)
        self.routes = [(route, glob_regex(route.pattern), *self._compile(route)) for route in routes]

    def _compile(self, route: RoutePlan) -> tuple[jinja2.Template | None, str | None]:
        try:
            return self.env.get_template(route.name), None
        except jinja2.TemplateSyntaxError as exc:
            return None, f"template {route.name} line {exc.lineno}: {exc.message}"
        except jinja2.TemplateError as exc:
            return None, f"template {route.name}: {exc}"

    def match(self, path: str, method: str) -> RoutePlan | None:
        for route, regex, _template, _error in self.routes:
            if method in route.methods and regex.match(path):
                return route
        return None

    def render(self, route: RoutePlan, facts: RequestFacts) -> Rendered:
        """The answer for `facts` (blocking: lookups read files; run it off the event loop)."""
        template, error = next((t, e) for r, _x, t, e in self.routes if r is route)
        kind = route.content_type or content_type(facts.path)
        try:
            if template is None:
                raise RouteFailed(error or "the template does not compile")
            row = lookup_row(route.lookup, facts) if route.lookup is not None else None
            if route.lookup is not None and row is None and route.lookup.missing == "404":
                return Rendered(404, b"not found\n", "text/plain",
                                f"404 (no row in {route.lookup.path.name} for {route.lookup.key}="
                                f"{key_value(route.lookup, facts)})", "not-found", False)
            body = bounded(template, context(facts, row, self.phones), route.max_bytes)
        except RouteFailed as exc:
            return Rendered(500, b"the dynamic route failed; see the kit's event log\n", "text/plain",
                            f"500 {exc}", "error")
        note = "" if route.lookup is None else (" (row found)" if row is not None else " (no row)")
        return Rendered(200, body, kind, f"200 {len(body)} bytes rendered from {route.name}{note}", "ok",
                        None if route.lookup is None else row is not None)


def bounded(template: jinja2.Template, values: dict[str, Any], limit: int) -> bytes:
    """Render `template`, stopping once it passes `limit` bytes; RouteFailed on any error."""
    out: list[bytes] = []
    size = 0
    try:
        for piece in template.generate(**values):
            chunk = piece.encode("utf-8")
            size += len(chunk)
            if size > limit:
                raise RouteFailed(f"the rendering passes {limit} bytes (the route's max_bytes)")
            out.append(chunk)
    except RouteFailed:
        raise
    except jinja2.TemplateError as exc:
        raise RouteFailed(f"{template.name}{_line(exc)}: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # a template can raise anything (1/0, int('x')): report, never a traceback
        raise RouteFailed(f"{template.name}{_line(exc)}: {type(exc).__name__}: {exc}") from None
    return b"".join(out)


def _line(exc: BaseException) -> str:
    """` line N` of the template where `exc` happened (Jinja marks its frames), or ""."""
    lineno = getattr(exc, "lineno", None)
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_filename.startswith("<template>") or "__jinja_template__" in frame.f_globals:
            lineno = tb.tb_lineno
        tb = tb.tb_next
    return f" line {lineno}" if lineno else ""


def context(facts: RequestFacts, row: Mapping[str, Any] | None,
            phones: Mapping[str, KnownPhone]) -> dict[str, Any]:
    """The names a route template sees."""
    known = phones.get(facts.mac) if facts.mac else None
    model = facts.model or (known.model if known else None)
    serial = facts.serial or (known.serial if known else None)
    identity: dict[str, str] = {}
    if facts.mac:
        try:
            identity = macros.identity_macros(mac=facts.mac, model=model or "", serial=serial,
                                              ip=facts.remote or None)
        except CodecError:
            identity = macros.identity_macros(mac=facts.mac, model=model or "", serial=serial)
    phone = {"mac": facts.mac or "", "ma": identity.get("MA", ""), "mau": identity.get("MAU", ""),
             "model": model or "", "psn": identity.get("PSN", ""), "firmware": facts.firmware or "",
             "serial": serial or "", "ip": facts.remote, "known": known is not None,
             "name": (known.name if known else None) or "", "group": (known.group if known else None) or ""}
    request = {"method": facts.method, "path": facts.path, "query": dict(facts.query),
               "form": dict(facts.form), "body": facts.body, "remote": facts.remote, "scheme": facts.scheme,
               "host": facts.host, "user_agent": facts.user_agent}
    return {"phone": phone, "request": request, "row": dict(row) if row is not None else None,
            "macros": identity}


def key_value(lookup: LookupPlan, facts: RequestFacts) -> str | None:
    """What of the request the lookup compares (None: the request does not tell it)."""
    key = lookup.key
    if key.startswith("query."):
        return facts.query.get(key[6:])
    if key.startswith("form."):
        return facts.form.get(key[5:])
    return {"mac": facts.mac, "model": facts.model, "serial": facts.serial, "ip": facts.remote or None,
            "firmware": facts.firmware}.get(key)


def _same(key: str, wanted: str, cell: object) -> bool:
    text = "" if cell is None else str(cell).strip()
    if key == "mac" or key.endswith(".mac"):
        try:
            return macros.normalize_mac(text) == macros.normalize_mac(wanted)
        except CodecError:
            return False
    return text == wanted


def lookup_row(lookup: LookupPlan, facts: RequestFacts) -> dict[str, Any] | None:
    """The first row whose column equals the request's key; None if none (RouteFailed when the
    file cannot be read or lacks the column)."""
    wanted = key_value(lookup, facts)
    if wanted is None:
        return None
    for count, row in enumerate(table_rows(lookup)):
        if count >= MAX_ROWS:
            raise RouteFailed(f"{lookup.path.name}: more than {MAX_ROWS} rows read without a match")
        if _same(lookup.key, wanted, row.get(lookup.column)):
            return row
    return None


def table_rows(lookup: LookupPlan) -> Iterator[dict[str, Any]]:
    """The rows of the lookup's CSV file or SQLite table (RouteFailed if unreadable)."""
    columns = table_columns(lookup)
    if lookup.column not in columns:
        raise RouteFailed(f"{lookup.path.name} has no column {lookup.column!r} (it has {', '.join(columns)})")
    if lookup.kind == "csv":
        with lookup.path.open(newline="", encoding="utf-8", errors="replace") as handle:
            yield from csv.DictReader(handle)
        return
    try:
        with _sqlite(lookup) as db:
            cursor = db.execute(f'SELECT * FROM "{lookup.table}"')
            names = [d[0] for d in cursor.description]
            for values in cursor:
                yield dict(zip(names, values, strict=True))
    except sqlite3.Error as exc:
        raise RouteFailed(f"{lookup.path.name}: {exc}") from None


def table_columns(lookup: LookupPlan) -> list[str]:
    """The column names of the lookup's CSV header or SQLite table (RouteFailed if unreadable)."""
    try:
        if lookup.path.stat().st_size > MAX_TABLE_BYTES and lookup.kind == "csv":
            raise RouteFailed(f"{lookup.path.name} is larger than {MAX_TABLE_BYTES} bytes")
        if lookup.kind == "csv":
            with lookup.path.open(newline="", encoding="utf-8", errors="replace") as handle:
                return [name.strip() for name in next(csv.reader(handle), [])]
        with _sqlite(lookup) as db:
            found = db.execute(f'PRAGMA table_info("{lookup.table}")').fetchall()
    except OSError as exc:
        raise RouteFailed(f"{lookup.path}: {exc.strerror or exc}") from None
    except sqlite3.Error as exc:
        raise RouteFailed(f"{lookup.path.name}: {exc}") from None
    if not found:
        raise RouteFailed(f"{lookup.path.name} has no table {lookup.table!r}")
    return [str(row[1]) for row in found]


class _sqlite:
    def __init__(self, lookup: LookupPlan) -> None:
        if not lookup.path.is_file():
            raise RouteFailed(f"{lookup.path}: no such file")
        self.db = sqlite3.connect(f"{lookup.path.resolve().as_uri()}?mode=ro", uri=True)

    def __enter__(self) -> sqlite3.Connection:
        return self.db

    def __exit__(self, *exc: object) -> None:
        self.db.close()
