"""Names and addresses an inventory implies: the lab zone's A records, the kit's addresses, TLS names.

Derived once from the model and shared by the cross-checks, the plan and the explain view.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address, ip_address
from urllib.parse import urlsplit

from labkit.inventory.model import Inventory


def fqdn(name: str, domain: str) -> str:
    """`prov` -> `prov.lab.example`; `prov.lab.example` and `x.other.` stay absolute; `@` is the apex."""
    if name == "@":
        return domain
    if name.endswith("."):
        return name.rstrip(".").lower()
    name = name.lower()
    if name == domain or name.endswith("." + domain):
        return name
    return f"{name}.{domain}"


def in_zone(name: str, zone: str) -> bool:
    return name == zone or name.endswith("." + zone)


def kit_address(inv: Inventory) -> IPv4Address:
    return inv.lab.address.ip


def kit_addresses(inv: Inventory) -> set[IPv4Address]:
    """Every address a kit service listens on (the lab address and any service `bind`)."""
    addresses = {inv.lab.address.ip}
    for name in ("dhcp", "dns", "tftp", "http", "https", "syslog", "proxy"):
        bind = getattr(inv.services, name).bind
        if bind is not None and not bind.is_unspecified:
            addresses.add(bind)
    return addresses


def ns_name(inv: Inventory) -> str:
    return f"ns.{inv.lab.domain}"


def host_name(inv: Inventory) -> str:
    """The kit's own provisioning host name, e.g. prov.lab.example."""
    return f"{inv.lab.hostname}.{inv.lab.domain}"


def address_records(inv: Inventory) -> dict[str, IPv4Address]:
    """A records of the lab zone: the inventory's own plus the kit's host name and `ns`."""
    records: dict[str, IPv4Address] = {}
    for name, address in inv.dns.records.items():
        records[fqdn(name, inv.lab.domain)] = address
    records.setdefault(host_name(inv), inv.lab.address.ip)
    records.setdefault(ns_name(inv), inv.lab.address.ip)
    return records


def provisioning_host(inv: Inventory) -> str:
    """The host the profile rules written by the kit point at."""
    return inv.profiles.host or host_name(inv)


def tls_names(inv: Inventory) -> list[str]:
    """Names the HTTPS server certificate must carry (explicit `tls.names` win).

    The first one becomes the certificate's CN: the provisioning host, because MPP phones check
    that a DNS lookup of the certificate's name gives the server's address (reference §5)."""
    if inv.tls.names is not None:
        return list(dict.fromkeys(inv.tls.names))
    names = [provisioning_host(inv), host_name(inv), inv.lab.domain]
    names += [srv.target for srv in inv.dns.srv]
    return list(dict.fromkeys(n for n in names if not is_ip(n)))


def name_covered(name: str, patterns: list[str]) -> bool:
    """Does a certificate name list cover `name` (exact, or a one-label `*.` wildcard)?"""
    name = name.lower().rstrip(".")
    for pattern in patterns:
        pattern = pattern.lower().rstrip(".")
        if pattern == name:
            return True
        if pattern.startswith("*.") and "." in name and name.split(".", 1)[1] == pattern[2:]:
            return True
    return False


def is_ip(text: str) -> bool:
    try:
        ip_address(text)
    except ValueError:
        return False
    return True


def hosts_in_value(value: str) -> Iterator[str]:
    """Hosts named in a provisioning option value: `url`, `host`, `ip`, or `a;b` of those."""
    for part in value.split(";"):
        part = part.strip()
        if not part:
            continue
        if "://" in part:
            try:
                host = urlsplit(part).hostname
            except ValueError:
                host = None
            if host:
                yield host
        else:
            yield part.split("/", 1)[0].rsplit(":", 1)[0] if part.count(":") == 1 else part.split("/", 1)[0]
