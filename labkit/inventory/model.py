"""The inventory's typed model (pydantic v2). Unknown keys are errors everywhere: a typo never passes.

The sections live by subject: `dhcp` (options, vendor classes), `lab` (network, DNS, TLS),
`services` (what listens where), `phones` (phones, models, profiles). Every class is re-exported
here, so `from labkit.inventory.model import X` works for all of them.
"""

from __future__ import annotations

from pydantic import Field

from labkit.inventory.acs import AcsSection
from labkit.inventory.cloud import ActivationCode, Cloud
from labkit.inventory.dhcp import (
    OPTION_FIELDS,
    OPTION_NAMES,
    RESERVED_CODES,
    UNION_TAGS,
    CodeList,
    Dhcp,
    Option43,
    Options,
    OrRaw,
    Raw,
    SubValue,
    Tr069Model,
    Tr111Model,
    VendorBlockModel,
    VendorClass,
)
from labkit.inventory.faults import FaultRule
from labkit.inventory.lab import Dns, LabSection, Pool, Sinkhole, Srv, Tls
from labkit.inventory.phones import (
    Encryption,
    Line,
    Params,
    ParamSpec,
    ParamValue,
    Phone,
    PhoneModel,
    Profiles,
)
from labkit.inventory.routes import Lookup, Reports, Route
from labkit.inventory.services import (
    ConnectionLimits,
    ContentEncryption,
    HttpAuth,
    HttpService,
    Redirect,
    Service,
    Services,
    TftpService,
)
from labkit.inventory.types import Strict

__all__ = [
    "OPTION_FIELDS", "OPTION_NAMES", "RESERVED_CODES", "UNION_TAGS", "AcsSection", "ActivationCode", "Cloud",
    "CodeList",
    "ConnectionLimits", "ContentEncryption",
    "Dhcp", "Dns", "Encryption", "FaultRule", "HttpAuth", "HttpService", "Inventory", "LabSection",
    "Line", "Lookup", "Option43", "Options", "OrRaw", "ParamSpec", "ParamValue", "Params", "Phone",
    "PhoneModel", "Pool", "Profiles", "Raw", "Redirect", "Reports", "Route", "Service", "Services",
    "Sinkhole", "Srv", "SubValue",
    "TftpService", "Tls", "Tr069Model", "Tr111Model", "VendorBlockModel", "VendorClass",
]


class Inventory(Strict):
    lab: LabSection
    services: Services = Field(default_factory=Services)
    dhcp: Dhcp = Field(default_factory=Dhcp)
    dns: Dns = Field(default_factory=Dns)
    tls: Tls = Field(default_factory=Tls)
    profiles: Profiles = Field(default_factory=Profiles)
    models: dict[str, PhoneModel] = Field(default_factory=dict)
    phones: list[Phone] = Field(default_factory=list)
    faults: list[FaultRule] = Field(default_factory=list)  # misbehave on purpose (labkit.faults)
    cloud: Cloud = Field(default_factory=Cloud)  # the activation names: sinkhole or emulate
    routes: list[Route] = Field(default_factory=list)  # dynamic HTTP(S) answers (Jinja, per request)
    reports: Reports = Field(default_factory=Reports)  # Report_Rule uploads kept in the state folder
    acs: AcsSection | None = None  # the TR-069 ACS (labkit.inventory.acs); None: no ACS
