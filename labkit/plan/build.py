"""The Plan: everything every service will serve, computed once from the inventory."""

from __future__ import annotations

from dataclasses import dataclass, field

from labkit.inventory import names
from labkit.inventory.load import LoadedInventory
from labkit.inventory.model import Inventory, Phone
from labkit.plan.dhcp import OptionSet, class_option_set, option_set, phone_vendor_class
from labkit.plan.http import HttpPlan, plan_http
from labkit.plan.profiles import PlannedFile, plan_files
from labkit.plan.zones import Zone, plan_zones


@dataclass(frozen=True)
class PhonePlan:
    phone: Phone
    vendor_class: str  # the option 60 the phone is expected to send
    options: OptionSet


@dataclass
class Plan:
    loaded: LoadedInventory
    files: dict[str, PlannedFile]
    zones: dict[str, Zone]
    phones: dict[str, PhonePlan]  # by normalized MAC
    pool_options: OptionSet  # a pool client whose option 60 matches no class
    class_options: dict[str, OptionSet] = field(default_factory=dict)  # by class pattern
    tls_names: list[str] = field(default_factory=list)
    http: HttpPlan = field(default_factory=lambda: HttpPlan("http"))
    https: HttpPlan = field(default_factory=lambda: HttpPlan("https"))

    @property
    def inventory(self) -> Inventory:
        return self.loaded.inventory


def build_plan(loaded: LoadedInventory) -> Plan:
    inv = loaded.inventory
    phones = {}
    for phone in inv.phones:
        vendor_class = phone_vendor_class(phone)
        phones[phone.mac] = PhonePlan(
            phone, vendor_class, option_set(inv, vendor_class=vendor_class, phone=phone)
        )
    return Plan(
        loaded=loaded,
        files=plan_files(loaded),
        zones=plan_zones(inv),
        phones=phones,
        pool_options=option_set(inv),
        class_options={cls.match: class_option_set(inv, cls) for cls in inv.dhcp.classes},
        tls_names=names.tls_names(inv),
        http=plan_http(inv.services.http, "http"),
        https=plan_http(inv.services.https, "https"),
    )
