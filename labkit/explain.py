"""`labkit explain`: what one phone will receive, find and fetch, derived from the Plan only."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from urllib.parse import urlsplit

from labkit import macros
from labkit.errors import CodecError
from labkit.explain_http import cloud_lines, rendered_file, route_for, route_lines
from labkit.formats import flat_profile
from labkit.inventory import names
from labkit.phone import discovery, traits
from labkit.phone.discovery import MPP_PARAMETER_REQUEST_LIST, Candidate, SrvTarget
from labkit.phone.fetching import host_of
from labkit.plan.acs import explain_lines as acs_lines
from labkit.plan.build import PhonePlan, Plan
from labkit.plan.profiles import DEFAULT_PORTS, PlannedFile, phone_identity, served_names
from labkit.protocols.dhcp.explain import hexdump


@dataclass(frozen=True)
class Resolution:
    ok: bool
    detail: str  # what the lab answers for that URL
    file: PlannedFile | None = None


def resolve_url(plan: Plan, url: str) -> Resolution:
    """What this lab serves at `url`: a file of the plan, or why not."""
    inv = plan.inventory
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return Resolution(False, "not a valid URL")
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        return Resolution(False, f"scheme {scheme!r} is not one the phone fetches with")
    service = getattr(inv.services, scheme)
    if not service.enabled:
        return Resolution(False, f"{scheme.upper()} is disabled in this lab (timeout)")
    host = (parts.hostname or "").lower()
    kit = names.kit_addresses(inv)
    if names.is_ip(host):
        address: IPv4Address | None = IPv4Address(host)
    else:
        address = names.address_records(inv).get(host)
        if address is None:
            return Resolution(False, f"{host} does not resolve in the lab's DNS")
    if address not in kit:
        return Resolution(False, f"{host} is {address}, not this kit (timeout)")
    expected = service.port or DEFAULT_PORTS[scheme]
    if (port or DEFAULT_PORTS[scheme]) != expected:
        return Resolution(False, f"port {port} is not where {scheme.upper()} listens ({expected})")
    path = parts.path.lstrip("/")
    dynamic = route_for(plan, url) if scheme != "tftp" else None
    if dynamic is not None:
        route = dynamic[1]
        return Resolution(True, f"dynamic route {route.pattern} ({route.name}), rendered per request")
    planned = plan.files.get(path)
    if planned is None:
        return Resolution(False, "not in the plan: " + ("TFTP error 1" if scheme == "tftp" else "404"))
    return Resolution(True, f"files/{path} ({planned.kind}, {planned.size} bytes)", planned)


def srv_found(plan: Plan, domain: str | None) -> dict[str, list[SrvTarget]]:
    """SRV records the lab's DNS answers for `domain` (the phone's option 15)."""
    inv = plan.inventory
    found: dict[str, list[SrvTarget]] = {}
    if domain is None or domain.lower().rstrip(".") != inv.lab.domain:
        return found
    for srv in inv.dns.srv:
        found.setdefault(srv.service, []).append(
            SrvTarget(srv.priority, srv.weight, srv.port, srv.target)
        )
    return found


def explain_phone(plan: Plan, mac: str, generation: str = traits.DEFAULT_GENERATION) -> str:
    phone_plan = plan.phones[mac]
    phone = phone_plan.phone
    identity = phone_identity(phone)
    lines: list[str] = []
    title = f"{phone.name or phone.mac}: {phone.model}, MAC {phone.mac}"
    lines += [title, "=" * len(title)]
    lines.append(f"sends option 60 {phone_plan.vendor_class!r}, asks (option 55) for "
                 + ",".join(map(str, MPP_PARAMETER_REQUEST_LIST)))
    lines.append(f"gets address {phone.ip or 'from the pool'}")
    firmware = traits.traits(generation)
    lines += factory_names_lines(plan, phone.model, identity, firmware)
    lines += ["", "DHCP options in its ACK (server identifier first, then what it asked for in its"
              " order, then forced ones):"]
    sent = phone_plan.options.for_request(list(MPP_PARAMETER_REQUEST_LIST))
    for planned in sent:
        why = planned.level + (", forced" if planned.forced else "")
        lines.append(f"  [{why}]")
        lines += ["    " + row for row in hexdump(planned.code, planned.payload).splitlines()]
    not_sent = [p for p in phone_plan.options.options.values() if p not in sent]
    for planned in not_sent:
        lines.append(f"  not sent: option {planned.code} {planned.name} ({planned.level}) - the "
                     "phone does not ask for it; list it under `force` to send it anyway")
    decoded = phone_plan.options.decoded()
    sent_codes = {p.code for p in sent}
    offered = {code: value for code, value in decoded.items() if code in sent_codes}
    lines += ["", "Where it looks for its profile (DHCP_Option_To_Use "
              + ",".join(map(str, discovery.DEFAULT_OPTION_ORDER)) + "):"]
    candidates = discovery.dhcp_candidates(offered, identity, tails=firmware.factory_names)
    domain = offered.get(15)
    found = srv_found(plan, domain if isinstance(domain, str) else None)
    if found:
        lines.append(f"  SRV records in {domain} (asked for only when DHCP gives nothing usable):")
        for service, records in found.items():
            for r in discovery.order_srv(records):
                lines.append(f"    {service}.{domain} SRV {r.priority} {r.weight} {r.port} {r.target}")
    if not candidates:
        lines.append("  nothing usable from DHCP: DNS SRV next")
        candidates = discovery.srv_candidates(found, identity, tails=firmware.factory_names)
    if not candidates:
        told, acquired = cloud_lines(plan, mac)
        lines += told
        candidates = [Candidate(acquired, "the emulated cloud's answer")] if acquired else []
    first = _walk(plan, candidates, lines)
    if first is not None and first.file is None:  # a dynamic route: follow what it renders for the phone
        taken = next((c.url for c in candidates if resolve_url(plan, c.url).ok), None)
        first = Resolution(True, first.detail, rendered_file(plan, mac, taken) if taken else None)
    if first is not None and first.file is not None:
        _follow(plan, phone_plan, first.file, lines, identity, offered)
    lines += route_lines(plan, mac, [c.url for c in candidates])
    lines += acs_lines(plan.acs, mac)
    return "\n".join(lines)


def _walk(plan: Plan, candidates: list[Candidate], lines: list[str]) -> Resolution | None:
    """List every candidate with what the lab answers; the first success is the one taken."""
    first: Resolution | None = None
    for n, candidate in enumerate(candidates, start=1):
        res = resolve_url(plan, candidate.url)
        if first is None and res.ok:
            first = res
            mark = "=>"
        elif first is not None:
            mark = "  "  # not reached: an earlier URL already succeeded
        else:
            mark = "x "
        lines.append(f"  {n:2d}. {mark} {candidate.url}  [{candidate.source}]")
        lines.append(f"          {res.detail}" + ("   <- taken: the first success ends the search"
                                                  if mark == "=>" else ""))
    if candidates and first is None:
        lines.append("  none succeeds: the phone retries after Resync_Error_Retry_Delay")
    return first


def _follow(plan: Plan, phone_plan: PhonePlan, first: PlannedFile, lines: list[str],
            identity: dict[str, str], offered: dict[int, object]) -> None:
    """Follow the Profile_Rule and Upgrade_Rule the first profile sets (one hop each)."""
    option66 = offered.get(66)
    # a rule without a server: "the host that requests the URL is used" (reference §3.1)
    server = host_of(option66) if isinstance(option66, str) else None
    try:
        params = flat_profile.parse(first.data or b"") if not first.encrypted else {}
    except CodecError as exc:
        lines.append(f"  the profile does not parse: {exc}")
        return
    rule = params.get("Profile_Rule")
    if rule is not None and rule.value:
        parsed = discovery.parse_simple_rule(rule.value, identity, server)
        res = resolve_url(plan, parsed.url)
        key_note = " (decrypted with --key)" if parsed.key else ""
        lines += ["", "Then it resyncs to its Profile_Rule:",
                  f"  {parsed.url}{key_note}", f"    {res.detail}"]
    upgrade = params.get("Upgrade_Rule")
    if upgrade is not None and upgrade.value:
        parsed = discovery.parse_simple_rule(upgrade.value, identity, server)
        res = resolve_url(plan, parsed.url)
        lines += ["", "And upgrades per its Upgrade_Rule (when the load differs from the running one):",
                  f"  {parsed.url}", f"    {res.detail}"]


def factory_names_lines(plan: Plan, model: str, identity: dict[str, str],
                        firmware: traits.Traits) -> list[str]:
    """The documented factory names this lab serves for the phone, and the ones its firmware
    generation asks for, in its order (issue 11)."""
    served = served_names(plan.inventory, model)
    lines = ["", "Factory profile names this lab serves for it (profiles.factory_names):"]
    for name in traits.FACTORY_NAMES:
        path = macros.expand(name, identity)
        state = f"served as {path}" if name in served else "not served (404 / TFTP error 1)"
        lines.append(f"  {name:<20} {state}")
    asked = ", ".join(f"{n} ({macros.expand(n, identity)})" for n in firmware.factory_names)
    lines.append(f"Its firmware generation {firmware.name} ({firmware.description}) requests, in "
                 f"order: {asked}")
    return lines
