"""DNS zones: rendered from the Jinja templates in `labkit/zones/` (shipped in the package), then parsed back.

Parsing the rendered text with dnslib's zone reader is the proof that what a person reads in
`labkit render`'s output is exactly what the DNS service will answer from.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from ipaddress import IPv4Address
from pathlib import Path

import jinja2
from dnslib import RR

from labkit.errors import LabkitError
from labkit.inventory import names
from labkit.inventory.model import Inventory
from labkit.protocols.dns.wire import MAX_UDP_DEFAULT
from labkit.protocols.dns.zone import DnsZone

ZONE_TEMPLATES = Path(str(resources.files("labkit") / "zones"))  # package data, as installed
LAB_TEMPLATE = "lab.zone.j2"
SINKHOLE_TEMPLATE = "sinkhole.zone.j2"
CLOUD_TEMPLATE = "cloud.zone.j2"


class ZoneError(LabkitError):
    """A zone template rendered something the zone reader rejects."""


@dataclass(frozen=True)
class Zone:
    name: str  # the origin, without the trailing dot
    text: str  # the zone file as rendered
    records: tuple[RR, ...]  # parsed back from `text`
    sinkhole: bool = False
    sinkhole_address: IPv4Address | None = None

    @property
    def file_name(self) -> str:
        return f"{self.name}.zone"

    def for_dns(self) -> DnsZone:
        """The DNS core's plain input for this zone."""
        return DnsZone(self.name, self.records, self.sinkhole, self.sinkhole_address)


@dataclass(frozen=True)
class DnsPlan:
    """What the DNS service serves: the zones as the DNS core's own input, and the largest UDP
    answer it offers (EDNS)."""

    zones: tuple[DnsZone, ...]
    max_udp: int = MAX_UDP_DEFAULT


def plan_dns(zones: Mapping[str, Zone]) -> DnsPlan:
    """The DNS service's part of the Plan, from the rendered zones (`plan_zones`)."""
    return DnsPlan(tuple(zone.for_dns() for zone in zones.values()))


def _environment(template_dir: Path) -> jinja2.Environment:
    if not (template_dir / LAB_TEMPLATE).is_file():
        raise ZoneError(f"zone templates not found in {template_dir} (expected {LAB_TEMPLATE})")
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def _relative(name: str, zone: str) -> str:
    return "@" if name == zone else name[: -(len(zone) + 1)]


def _serial(inv: Inventory, content: str) -> int:
    # stable for the same records, different when they change: no manual bumping needed
    return inv.dns.serial or (zlib.crc32(content.encode()) or 1)


def plan_zones(inv: Inventory, template_dir: Path = ZONE_TEMPLATES) -> dict[str, Zone]:
    env = _environment(template_dir)
    domain = inv.lab.domain
    common = {
        "ttl": inv.dns.ttl,
        "mname": names.ns_name(inv),
        "rname": f"hostmaster.{domain}",
        "ns": [names.ns_name(inv)],
    }
    a = {_relative(n, domain): str(ip) for n, ip in sorted(names.address_records(inv).items())}
    srv = [
        {"name": _relative(f"{r.service}.{domain}", domain), "priority": r.priority,
         "weight": r.weight, "port": r.port, "target": r.target}
        for r in inv.dns.srv
    ]
    zones: dict[str, Zone] = {}
    lab_context = {"zone": domain, "a": a, "srv": srv, **common}
    serial = _serial(inv, repr(sorted(lab_context.items(), key=str)))
    zones[domain] = _render(env, LAB_TEMPLATE, domain, {**lab_context, "serial": serial})
    emulated = cloud_names(inv)
    for name in dict.fromkeys([*inv.dns.sinkhole.names, *emulated]):
        # an emulated cloud name points at the kit (or cloud.address); the others stay sinkholed
        address = (inv.cloud.address or inv.lab.address.ip) if name in emulated else inv.dns.sinkhole.address
        template = CLOUD_TEMPLATE if name in emulated else SINKHOLE_TEMPLATE
        context = {"zone": name, "address": str(address) if address else None, **common}
        serial = _serial(inv, repr(sorted(context.items(), key=str)))
        zones[name] = _render(env, template, name, {**context, "serial": serial},
                              sinkhole=True, sinkhole_address=address)
    return zones


def cloud_names(inv: Inventory) -> tuple[str, ...]:
    """The activation names the kit answers itself (none unless `cloud.mode` is emulate)."""
    return tuple(inv.cloud.names) if inv.cloud.mode == "emulate" else ()


def _render(env: jinja2.Environment, template: str, zone: str, context: dict[str, object], *,
            sinkhole: bool = False, sinkhole_address: IPv4Address | None = None) -> Zone:
    try:
        text = env.get_template(template).render(**context)
    except jinja2.TemplateError as exc:
        raise ZoneError(f"zone template {template}: {exc}") from None
    try:
        records = tuple(RR.fromZone(text))
    except Exception as exc:  # dnslib raises assorted errors on bad zone text
        raise ZoneError(f"zone {zone} from {template} does not parse: {exc}") from None
    apex = zone + "."
    if not records or records[0].rtype != 6 or str(records[0].rname) != apex:
        raise ZoneError(f"zone {zone} from {template} must start with its SOA at {apex}")
    outside = [str(r.rname) for r in records
               if str(r.rname) != apex and not str(r.rname).endswith("." + apex)]
    if outside:
        raise ZoneError(f"zone {zone} from {template} has records outside it: {', '.join(outside)}")
    return Zone(zone, text, records, sinkhole, sinkhole_address)
