"""Dynamic HTTP routes and report uploads (the chapter: "the profile can be generated
dynamically by querying a customer database"; `Report_Rule` uploads with PUT or POST).

A route answers requests whose path matches its glob (`*` within one path segment, `**`
across segments) with a Jinja template rendered per request (sandboxed), fed with what the
request tells (MAC, model and firmware from the User-Agent, source address, path, query, POST
fields) and with the row a lookup finds in a CSV or SQLite file.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from labkit.inventory.types import Strict, Text

RoutePath = Annotated[str, Field(pattern=r"^/[^\s?#]*$")]
KeyName = Annotated[str, Field(pattern=r"^(mac|model|serial|ip|firmware|(query|form)\.[A-Za-z0-9_.-]+)$")]
MIB = 1024 * 1024
Method = Literal["GET", "HEAD", "POST"]
Scheme = Literal["http", "https"]
METHODS: tuple[Method, ...] = ("GET", "HEAD", "POST")
SCHEMES: tuple[Scheme, ...] = ("http", "https")


class Lookup(Strict):
    """The row a request finds: the first one whose `column` equals the request's `key`."""

    file: Text  # a .csv (header first) or SQLite file (.sqlite, .sqlite3, .db), from the inventory's folder
    column: Text  # the column holding the key (MACs compare in any notation)
    key: KeyName = "mac"  # what of the request: mac, model, serial, ip, firmware, query.X, form.X
    table: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None  # SQLite only
    missing: Literal["404", "render"] = "404"  # no row: 404, or render with `row` None


class Route(Strict):
    path: RoutePath
    template: str | None = None  # a file in templates_dir
    body: str | None = None  # or the template inline
    content_type: Text | None = None  # default: by the path's extension (.xml: application/xml)
    lookup: Lookup | None = None
    methods: list[Method] = Field(default_factory=lambda: list(METHODS))
    schemes: list[Scheme] = Field(default_factory=lambda: list(SCHEMES))
    max_bytes: Annotated[int, Field(ge=1, le=16 * MIB)] = MIB  # a rendering larger than this is a 500

    @model_validator(mode="after")
    def _one_source(self) -> Route:
        if (self.template is None) == (self.body is None):
            raise ValueError("give the route either `template` (a file in templates_dir) or `body`, not both")
        return self


class Reports(Strict):
    """Where `Report_Rule` uploads land: `<state dir>/reports/<MA>/`, bounded."""

    enabled: bool = True
    # POST or PUT to these paths is an upload; so is, where nothing is served (no file, no route),
    # a PUT, or a POST whose body is a report (XML, `Salted__`, or Content-Encoding aes128gcm);
    # any other POST is a resync (`--post`)
    paths: list[RoutePath] = Field(default_factory=lambda: ["/report/**", "/reports/**"])
    max_bytes: Annotated[int, Field(ge=1, le=4 * MIB)] = MIB  # one upload; larger: 413 (4 MiB: any body)
    per_phone: Annotated[int, Field(ge=1, le=100_000)] = 100  # kept per phone; the oldest go first
    total_bytes: Annotated[int, Field(ge=1, le=2**40)] = 256 * MIB  # all phones; beyond it: 507
