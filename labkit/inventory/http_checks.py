"""Checks of the HTTP extras that the model cannot make field by field: the emulated cloud's names
and URLs, each dynamic route's template (it parses, in Jinja's sandbox) and lookup (the file is
there, holds the key column, and every `row.NAME` the template reads is a column).

Each check gives (path in the inventory, message, severity); `labkit.inventory.checks` locates
them (file:line:field) with the rest.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import jinja2
from jinja2 import nodes
from jinja2.sandbox import SandboxedEnvironment

from labkit.inventory import names
from labkit.inventory.source import Path_

if TYPE_CHECKING:
    from labkit.inventory.load import LoadedInventory
    from labkit.inventory.model import Route

Severity = Literal["error", "warning"]
Found = tuple[Path_, str, Severity]


def http_problems(loaded: LoadedInventory) -> Iterator[Found]:
    yield from cloud_problems(loaded)
    for index, route in enumerate(loaded.inventory.routes):
        yield from route_problems(loaded, index, route)


def cloud_problems(loaded: LoadedInventory) -> Iterator[Found]:
    inv = loaded.inventory
    cloud = inv.cloud
    for i, name in enumerate(cloud.names):
        if names.in_zone(name, inv.lab.domain) or names.in_zone(inv.lab.domain, name):
            yield ("cloud", "names", i), f"cloud name {name} overlaps the lab zone {inv.lab.domain}", "error"
    if cloud.mode != "emulate":
        return
    if not inv.services.https.enabled:
        yield ("cloud", "mode"), "the emulated cloud answers over HTTPS, which this lab disables", "error"
    if cloud.address is not None and cloud.address not in names.kit_addresses(inv):
        yield ("cloud", "address"), f"{cloud.address} is not an address of this kit: the cloud names will " \
            "point where no lab activation service answers", "warning"
    urls: list[tuple[Path_, str]] = [(("cloud", k, key), url) for k in ("phones", "groups", "models")
                                     for key, url in getattr(cloud, k).items()]
    if cloud.default is not None:
        urls.append((("cloud", "default"), cloud.default))
    for code, given in cloud.codes.items():
        url = given if isinstance(given, str) else given.url
        if url is not None:
            urls.append((("cloud", "codes", code), url))
    for path, url in urls:
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("http", "https", "tftp"):
            yield path, f"{url!r} is not a provisioning URL (http://, https:// or tftp://)", "error"
    groups = {p.group for p in inv.phones}
    for group in cloud.groups:
        if group not in groups:
            yield ("cloud", "groups", group), f"no phone of the inventory is in group {group!r}", "warning"
    for model in cloud.models:
        if model not in inv.models:
            yield ("cloud", "models", model), f"{model!r} is not a model of the inventory; only phones " \
                "that say so in their activation request get this URL", "warning"


def route_problems(loaded: LoadedInventory, index: int, route: Route) -> Iterator[Found]:
    from labkit.plan.http import SQLITE_SUFFIXES, LookupPlan
    from labkit.services.http_dynamic import RouteFailed, table_columns

    where: Path_ = ("routes", index, "template" if route.template is not None else "body")
    if route.template is not None:
        path = loaded.templates_dir / route.template
        if not path.is_file():
            yield where, f"template {route.template!r} not found in {loaded.templates_dir}", "error"
            return
        try:
            source, name = path.read_text(encoding="utf-8"), route.template
        except (OSError, UnicodeDecodeError) as exc:
            yield where, f"template {route.template!r} does not read: {exc}", "error"
            return
    else:
        source, name = route.body or "", f"routes[{index}].body"
    try:
        tree = SandboxedEnvironment().parse(source, name)
    except jinja2.TemplateSyntaxError as exc:
        yield where, f"template {name} line {exc.lineno}: {exc.message}", "error"
        return
    lookup = route.lookup
    if lookup is None:
        if _uses_row(tree):
            yield where, f"template {name} reads `row` but the route has no `lookup`", "error"
        return
    file = loaded.base_dir / lookup.file
    at: Path_ = ("routes", index, "lookup")
    sqlite = file.suffix.lower() in SQLITE_SUFFIXES
    if sqlite and lookup.table is None:
        yield (*at, "file"), f"{lookup.file} is a SQLite file: name its `table`", "error"
        return
    if not sqlite and lookup.table is not None:
        yield (*at, "table"), f"{lookup.file} is read as CSV (by its name), which has no tables; " \
            "a SQLite file ends in .sqlite, .sqlite3 or .db", "error"
        return
    if not file.is_file():
        yield (*at, "file"), f"no such file: {file}", "error"
        return
    plan = LookupPlan(file, "sqlite" if sqlite else "csv", lookup.column, lookup.key, lookup.table)
    try:
        columns = table_columns(plan)
    except RouteFailed as exc:
        yield (*at, "file"), str(exc), "error"
        return
    if lookup.column not in columns:
        has = ", ".join(columns)
        yield (*at, "column"), f"{lookup.file} has no column {lookup.column!r} (it has: {has})", "error"
    for used, line in _row_names(tree):
        if used not in columns:
            yield where, f"template {name} line {line} reads row.{used}, which {lookup.file} has no column " \
                f"for (it has: {', '.join(columns)})", "error"


def _uses_row(tree: nodes.Template) -> bool:
    return any(node.name == "row" for node in tree.find_all(nodes.Name))


def _row_names(tree: nodes.Template) -> list[tuple[str, int]]:
    """The `row.NAME` and `row['NAME']` a template reads, with their lines."""
    found = []
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = getattr(node, "node", None)
        if not (isinstance(target, nodes.Name) and target.name == "row"):
            continue
        if isinstance(node, nodes.Getattr):
            found.append((node.attr, node.lineno))
        elif isinstance(node, nodes.Getitem) and isinstance(key := getattr(node.arg, "value", None), str):
            found.append((key, node.lineno))
    return found
