"""The Plan: everything every service will serve, computed once from the inventory.

The Plan is frozen and is the boundary between the inventory and the services: the supervisor
and the services read only its ready fields, never `plan.inventory` (kept, with `plan.loaded`,
for `labkit explain` and the command line).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from labkit.faults.engine import Rule
from labkit.inventory import names
from labkit.inventory.faults import FaultRule
from labkit.inventory.load import LoadedInventory
from labkit.inventory.model import Inventory, Phone
from labkit.plan.acs import AcsPlan, plan_acs
from labkit.plan.dhcp import DhcpPlan, OptionSet, class_option_set, option_set, phone_vendor_class, plan_dhcp
from labkit.plan.faults import plan_faults
from labkit.plan.http import HttpPlan, plan_http
from labkit.plan.profiles import PlannedFile, plan_files
from labkit.plan.proxy import ProxyPlan, plan_proxy
from labkit.plan.tftp import TftpPlan, plan_tftp
from labkit.plan.zones import DnsPlan, Zone, plan_dns, plan_zones

SERVICES = ("dhcp", "dns", "tftp", "http", "https", "syslog", "proxy")


def _frozen(mapping: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)  # one per phone for the whole run: no __dict__
class PhonePlan:
    phone: Phone
    vendor_class: str  # the option 60 the phone is expected to send
    options: OptionSet


@dataclass(frozen=True)
class Listen:
    """Where the inventory puts one service: on or off, its bind address and port (None: defaults)."""

    enabled: bool
    bind: str | None = None  # default: the kit's address
    port: int | None = None  # default: the standard port


@dataclass(frozen=True)
class TlsPlan:
    """Which credentials HTTPS uses: the user's certificate and key (paths resolved against the
    inventory's folder), or a certificate from the lab CA for these names and addresses."""

    lab_name: str
    cert: Path | None = None
    key: Path | None = None
    names: tuple[str, ...] = ()  # DNS names the lab CA's certificate covers
    addresses: tuple[str, ...] = ()  # the kit's addresses the certificate covers

    @property
    def own(self) -> bool:
        return self.cert is not None and self.key is not None


@dataclass(frozen=True)
class Plan:
    loaded: LoadedInventory
    files: Mapping[str, PlannedFile]
    zones: Mapping[str, Zone]
    dns: DnsPlan  # the DNS service's config: the zones as the DNS core's input
    phones: Mapping[str, PhonePlan]  # by normalized MAC
    pool_options: OptionSet  # a pool client whose option 60 matches no class
    dhcp: DhcpPlan  # the DHCP server's ready config
    class_options: Mapping[str, OptionSet] = field(default_factory=lambda: _frozen({}))  # by class pattern
    tls_names: tuple[str, ...] = ()
    faults: tuple[Rule[Any], ...] = ()  # the inventory's rules, then any given on the command line
    tls: TlsPlan = TlsPlan("lab")
    listen: Mapping[str, Listen] = field(default_factory=lambda: _frozen({}))  # by service name
    interface: str | None = None  # lab.interface: the one interface DHCP binds to
    kit_address: str = "127.0.0.1"  # the lab's own address (lab.address)
    kit_addresses: tuple[str, ...] = ()  # every address the kit answers on
    fault_phones: Mapping[str, tuple[str, str | None]] = field(default_factory=lambda: _frozen({}))
    fixed_ips: Mapping[str, str] = field(default_factory=lambda: _frozen({}))  # fixed IP -> MAC
    known_macs: frozenset[str] = frozenset()  # the inventory's phones
    tftp: TftpPlan = field(default_factory=TftpPlan)
    http: HttpPlan = field(default_factory=lambda: HttpPlan("http"))
    https: HttpPlan = field(default_factory=lambda: HttpPlan("https"))
    proxy: ProxyPlan = field(default_factory=ProxyPlan)
    acs: AcsPlan = field(default_factory=AcsPlan)  # the TR-069 ACS (labkit.plan.acs)

    @property
    def inventory(self) -> Inventory:
        return self.loaded.inventory

    def with_faults(self, rules: list[FaultRule]) -> Plan:
        """This plan with `rules` (from `--fault`) after the inventory's own."""
        if not rules:
            return self
        return replace(self, faults=(*self.faults, *plan_faults(rules, first_index=len(self.faults))))


def _tls(loaded: LoadedInventory) -> TlsPlan:
    inv = loaded.inventory
    base = loaded.base_dir
    cert = base / inv.tls.cert if inv.tls.cert else None
    key = base / inv.tls.key if inv.tls.key else None
    addresses = tuple(sorted(str(a) for a in names.kit_addresses(inv)))
    return TlsPlan(inv.lab.name, cert, key, tuple(names.tls_names(inv)), addresses)


def _listen(inv: Inventory) -> Mapping[str, Listen]:
    out = {}
    for service in SERVICES:
        config = getattr(inv.services, service)
        out[service] = Listen(bool(config.enabled), str(config.bind) if config.bind else None, config.port)
    if inv.acs is not None:  # the ACS runs when the inventory has an `acs:` section
        out["acs"] = Listen(inv.acs.enabled, str(inv.acs.bind) if inv.acs.bind else None, inv.acs.port)
    return _frozen(out)


def _fault_phones(inv: Inventory) -> dict[str, tuple[str, str | None]]:
    """MAC -> (model, group), one tuple per distinct pair (held for the run: 56 bytes a phone)."""
    pairs: dict[tuple[str, str | None], tuple[str, str | None]] = {}
    return {p.mac: pairs.setdefault((p.model, p.group), (p.model, p.group)) for p in inv.phones}


def build_plan(loaded: LoadedInventory) -> Plan:
    inv = loaded.inventory
    zones = plan_zones(inv)
    phones = {}
    shared: dict[tuple[str, str], OptionSet] = {}  # phones without options of their own share one set
    for phone in inv.phones:
        vendor_class = phone_vendor_class(phone)
        if phone.options.typed() or phone.force:
            options = option_set(inv, vendor_class=vendor_class, phone=phone)
        else:
            key = (vendor_class, phone.model)
            options = shared.get(key) or shared.setdefault(key, option_set(inv, vendor_class=vendor_class,
                                                                            phone=phone))
        phones[phone.mac] = PhonePlan(phone, vendor_class, options)
    files = plan_files(loaded)
    return Plan(
        loaded=loaded,
        files=_frozen(files),
        zones=_frozen(zones),
        dns=plan_dns(zones),
        phones=_frozen(phones),
        pool_options=option_set(inv),
        dhcp=plan_dhcp(inv),
        class_options=_frozen({cls.match: class_option_set(inv, cls) for cls in inv.dhcp.classes}),
        tls_names=tuple(names.tls_names(inv)),
        faults=plan_faults(inv.faults),
        tls=_tls(loaded),
        listen=_listen(inv),
        interface=inv.lab.interface,
        kit_address=str(names.kit_address(inv)),
        kit_addresses=tuple(sorted(str(a) for a in names.kit_addresses(inv))),
        fault_phones=_frozen(_fault_phones(inv)),
        fixed_ips=_frozen({str(p.ip): p.mac for p in inv.phones if p.ip is not None}),
        known_macs=frozenset(p.mac for p in inv.phones),
        tftp=plan_tftp(loaded),
        http=plan_http(inv.services.http, "http", loaded),
        https=plan_http(inv.services.https, "https", loaded),
        proxy=plan_proxy(inv),
        acs=plan_acs(loaded, {path: f.size for path, f in files.items()}),
    )
