"""Checks that need the plan: a URL the lab gives phones (in a DHCP option or in a profile) that
points at this kit but at a file the plan does not serve would fail at run time with a 404
or a TFTP "file not found". `labkit check` and `labkit up` run these after building the plan
and print them as warnings (the lab still serves everything else).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from urllib.parse import unquote

from labkit import macros
from labkit.inventory import names
from labkit.inventory.load import field_name
from labkit.inventory.model import Options, Phone
from labkit.inventory.source import Path_, Problem
from labkit.plan.build import Plan
from labkit.plan.http import glob_regex
from labkit.plan.profiles import phone_identity

URL = re.compile(r"\b(https?|tftp)://([^/\s\"'<>\]\[|;]+)(/[^\s\"'<>|;?#\]\[]*)?")
URL_OPTIONS = {66: "tftp_server_name", 159: "provisioning_server", 160: "provisioning_url"}
# a URL from DHCP is tried as given, then with these tails (labkit.phone.discovery, reference §1.3):
# it fails only when none of them is served
OPTION_TAILS = ("", "/$PSN.xml", "/Cisco/$PN/$MA.cfg")


def plan_problems(plan: Plan) -> list[Problem]:
    """Every URL that names this kit but a file it does not serve, located where it was written."""
    return [*_option_urls(plan), *_profile_urls(plan)]


def _kit_host(plan: Plan, host: str) -> bool:
    host = host.rsplit("@", 1)[-1].rsplit(":", 1)[0].lower().rstrip(".")
    if names.is_ip(host):
        return host in plan.kit_addresses
    address = names.address_records(plan.inventory).get(host)
    return address is not None and str(address) in plan.kit_addresses


def _served(plan: Plan, scheme: str, path: str) -> bool:
    path = unquote(path)
    if path.lstrip("/") in plan.files:
        return True
    service = plan.https if scheme == "https" else plan.http
    if scheme != "tftp" and any(glob_regex(r.pattern).match(path) for r in service.routes):
        return True  # a dynamic route answers it
    return scheme != "tftp" and path in service.redirects


def missing_urls(plan: Plan, text: str, phones: Iterable[Phone],
                 tails: tuple[str, ...] = ("",)) -> Iterator[str]:
    """URLs in `text` that point at this kit where it serves no file, macros expanded for each of
    `phones` (a URL still holding a macro after that is not judged). With `tails`, a URL counts
    as served when it or any URL it makes with a tail is (the as-given URL only with a path)."""
    skipped = {m.firmware for m in plan.inventory.models.values() if m.firmware}  # warned already
    identities = [phone_identity(p) for p in phones] or [{}]
    seen: set[str] = set()
    for found in URL.finditer(text):
        if not _kit_host(plan, found.group(2)):
            continue
        for identity in identities:
            url = macros.expand(found.group(0), identity)
            tried = [macros.expand(url.rstrip("/") + tail, identity) if tail else url for tail in tails
                     if tail or (found.group(3) or "/") != "/"]
            if not tried or url in seen or any("$" in t for t in tried):
                continue
            if not any(_served_url(plan, t, skipped) for t in tried):
                seen.add(url)
                yield url


def _served_url(plan: Plan, url: str, skipped: set[str]) -> bool:
    found = URL.fullmatch(url)
    if found is None:
        return True  # not a URL this check can read: not judged
    path = found.group(3) or "/"
    return path.lstrip("/") in skipped or _served(plan, found.group(1), path)


def _option_levels(plan: Plan) -> Iterator[tuple[Path_, Options, list[Phone]]]:
    inv = plan.inventory
    yield ("dhcp", "options"), inv.dhcp.options, list(inv.phones)
    for i, cls in enumerate(inv.dhcp.classes):
        yield ("dhcp", "classes", i, "options"), cls.options, list(inv.phones)
    for name, model in inv.models.items():
        yield ("models", name, "options"), model.options, [p for p in inv.phones if p.model == name]
    for i, phone in enumerate(inv.phones):
        yield ("phones", i, "options"), phone.options, [phone]


def _option_urls(plan: Plan) -> Iterator[Problem]:
    loaded = plan.loaded
    for path, options, phones in _option_levels(plan):
        typed = options.typed()
        for code, field in URL_OPTIONS.items():
            value = typed.get(code)
            if not isinstance(value, str):
                continue
            at = next((k for k in ((*path, field), (*path, code), (*path, str(code)))
                       if k in loaded.source.positions), path)
            for url in missing_urls(plan, value, phones, OPTION_TAILS):
                yield Problem(loaded.locate(at), field_name(at),
                              f"option {code} sends phones to {url}, where this lab serves no file "
                              "(nor at its /$PSN.xml or /Cisco/$PN/$MA.cfg, which phones try next)",
                              severity="warning")


def _profile_urls(plan: Plan) -> Iterator[Problem]:
    loaded = plan.loaded
    inv = plan.inventory
    first: dict[tuple[str, str | None, str | None, bytes | None], str] = {}
    by_mac: dict[str, list[Phone]] = {}
    by_model: dict[str, list[Phone]] = {}
    for phone in inv.phones:  # indexed once: a scan per profile is quadratic in phones
        by_mac.setdefault(phone.mac, []).append(phone)
        by_model.setdefault(phone.model, []).append(phone)
    for rel, planned in plan.files.items():  # the plan's order: a profile's main name first
        first.setdefault((planned.kind, planned.mac, planned.model, planned.data), rel)
    for rel, planned in sorted(plan.files.items()):
        if planned.data is None or planned.encrypted or planned.gzipped or planned.kind == "firmware":
            continue
        if first[(planned.kind, planned.mac, planned.model, planned.data)] != rel:
            continue  # the same profile served under another factory name: said once
        text = planned.data.decode("utf-8", errors="replace")
        if planned.mac is not None:
            phones = by_mac.get(planned.mac, [])
            key = "template"
        else:
            phones = by_model.get(planned.model or "", [])
            key = "model_template"
        at: Path_ = ("profiles", key) if getattr(inv.profiles, key) else ("profiles",)
        for url in missing_urls(plan, text, phones):
            yield Problem(loaded.locate(at), field_name(at),
                          f"the {planned.kind} /{rel} points phones at {url}, a file this lab does "
                          "not serve", severity="warning")
