"""`labkit explain` for the HTTP extras: what the emulated cloud answers a phone, and what each
dynamic route renders for it (as the phone's own request would be: its User-Agent, its address)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from labkit.phone.core import PhoneConfig
from labkit.plan.build import Plan
from labkit.plan.cloud import ACTIVATION_PATH, activation
from labkit.plan.http import HttpPlan, RoutePlan
from labkit.plan.profiles import PlannedFile
from labkit.services.http_dynamic import DynamicRoutes, RequestFacts

MAX_SHOWN_LINES = 40  # of one rendering


def cloud_lines(plan: Plan, mac: str) -> tuple[list[str], str | None]:
    """What the cloud activation names give this phone (the emulated service's answer, or the
    sinkhole), and the provisioning URL it acquires if any."""
    cloud = plan.https.cloud
    if cloud is None:
        return ["  no SRV records either: the phone tries the cloud activation names, which this lab "
                "sinkholes (cloud.mode sinkhole), and stays unprovisioned"], None
    phone = plan.phones[mac].phone
    query = {"mac": mac.replace(":", ""), "model": phone.model, "serial": phone.serial or ""}
    answer = activation(cloud, query)
    asked = f"GET https://{cloud.names[0]}{ACTIVATION_PATH}?mac={query['mac']}&model={phone.model}" \
        f"&serial={query['serial']}"
    lines = ["  no SRV records either: the phone asks the cloud activation names, which this lab "
             f"answers itself (cloud.mode emulate: {', '.join(cloud.names)}):", f"    {asked}",
             f"    -> {answer.status} {answer.body}   [{answer.why}]"]
    lines.append("    customization state: " + ("Acquired; the phone fetches that URL" if answer.status == 200
                                                 else "Unavailable; it starts again from DHCP"))
    for code, entry in sorted(cloud.codes.items()):
        if entry.phones is None or mac in entry.phones:
            coded = activation(cloud, {**query, "code": code})
            lines.append(f"    with activation code {code} (gds://{code}): {coded.status} {coded.body}")
    return lines, answer.body if answer.status == 200 else None


def route_for(plan: Plan, url: str) -> tuple[HttpPlan, RoutePlan] | None:
    """The dynamic route (and its service's plan) that answers `url`, if one does."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return None
    service = plan.https if scheme == "https" else plan.http
    route = DynamicRoutes(service.routes, service.phones).match(parts.path or "/", "GET")
    return (service, route) if route is not None else None


def route_lines(plan: Plan, mac: str, requested: list[str]) -> list[str]:
    """Each dynamic route rendered for this phone: at a URL it requests when one matches, else at
    the route's pattern with the phone's $MA for each `*`."""
    seen: set[tuple[str, int]] = set()
    lines: list[str] = []
    for service in (plan.http, plan.https):
        if not service.routes:
            continue
        routes = DynamicRoutes(service.routes, service.phones)
        for route in service.routes:
            if (route.pattern, route.index) in seen:
                continue
            seen.add((route.pattern, route.index))
            path = next((urlsplit(u).path for u in requested if urlsplit(u).scheme == service.scheme
                         and routes.match(urlsplit(u).path, "GET") is route), None)
            how = "the phone requests it" if path else "an example path: the phone's discovery does not"
            path = path or re.sub(r"\*\*?", mac.replace(":", ""), route.pattern)
            rendered = routes.render(route, phone_facts(plan, mac, path, service.scheme))
            lines += ["", f"Dynamic route routes[{route.index}] {route.pattern} ({route.name}), "
                      f"GET {service.scheme}://…{path} ({how}):", f"  {rendered.answer}"]
            text = rendered.body.decode("utf-8", errors="replace").splitlines()
            lines += ["    | " + row for row in text[:MAX_SHOWN_LINES]]
            if len(text) > MAX_SHOWN_LINES:
                lines.append(f"    | ... ({len(text) - MAX_SHOWN_LINES} more lines)")
    return lines


def rendered_file(plan: Plan, mac: str, url: str) -> PlannedFile | None:
    """What the dynamic route at `url` renders for this phone, as a file `explain` can follow;
    None when no route answers there or it does not answer 200."""
    found = route_for(plan, url)
    if found is None:
        return None
    service, route = found
    path = urlsplit(url).path
    rendered = DynamicRoutes(service.routes, service.phones).render(route, phone_facts(plan, mac, path,
                                                                                       service.scheme))
    if rendered.status != 200:
        return None
    return PlannedFile(path.lstrip("/"), "dynamic profile", rendered.body, mac=mac)


def phone_facts(plan: Plan, mac: str, path: str, scheme: str) -> RequestFacts:
    """The request the virtual phone would send for `path`: its User-Agent, its address."""
    phone = plan.phones[mac].phone
    config = PhoneConfig(mac, phone.model, phone.serial)
    return RequestFacts(method="GET", path=path, remote=str(phone.ip or ""), scheme=scheme,
                        host=plan.kit_address, user_agent=config.user_agent, mac=mac, model=phone.model,
                        firmware=config.ua_version, serial=phone.serial)
