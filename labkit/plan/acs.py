"""The ACS service's ready config: where it answers, who may open a session, and per phone the
ordered list of RPCs it sends in that phone's first session (frozen; the service never reads
the inventory).

The inventory's levels merge as `defaults` -> model -> group -> phone: a parameter value or an
attribute set at a later level replaces the earlier one, objects and downloads add up in level
order, the periodic inform interval and reboot/factory reset take the last level that says.
The RPCs then go in a fixed order: SetParameterValues (the periodic inform settings with them),
SetParameterAttributes, AddObject each, DeleteObject each, Download each, and last FactoryReset
or Reboot (a reboot first would end the session before the rest).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from labkit import macros
from labkit.errors import CodecError
from labkit.inventory import names
from labkit.inventory.acs import AcsActions, AcsSection, Download, TypedValue
from labkit.inventory.load import LoadedInventory
from labkit.inventory.model import Inventory, Phone
from labkit.plan.dhcp import option_set
from labkit.plan.http import HttpAuthPlan  # the ACS asks for credentials as the HTTP service does
from labkit.plan.profiles import PHONE_PROFILE_PATH, phone_identity, rule_url
from labkit.protocols.dhcp.vendor import Tr069

CA_PATH = "labkit/ca.pem"  # the lab CA, served by the ACS itself under its own path
# TR-069 A.3.2.8 file types; the custom CA file type is not in the standard's list, the vendor
# chapter only names "custom certificate authority file": a vendor-specific "X <OUI> ..." form
# with Cisco's OUI 00000C [I]; a download's `file_type_name` sends another string
FILE_TYPES = {"firmware": "1 Firmware Upgrade Image", "config": "3 Vendor Configuration File",
              "ca": "X 00000C Custom CA File"}
Xsd = Literal["string", "int", "unsignedInt", "boolean", "dateTime", "base64"]


@dataclass(frozen=True)
class ParamValue:
    name: str
    value: str
    type: Xsd = "string"


@dataclass(frozen=True)
class SetValues:
    params: tuple[ParamValue, ...]
    key: str = "labkit"  # ParameterKey

    def describe(self) -> str:
        return "SetParameterValues " + ", ".join(f"{p.name}={p.value!r} ({p.type})" for p in self.params)


@dataclass(frozen=True)
class AttributeChange:
    name: str
    notification: int | None = None  # None: NotificationChange false
    access_list: tuple[str, ...] | None = None  # None: AccessListChange false


@dataclass(frozen=True)
class SetAttributes:
    changes: tuple[AttributeChange, ...]

    def describe(self) -> str:
        parts = []
        for c in self.changes:
            said = [f"notification={c.notification}"] if c.notification is not None else []
            if c.access_list is not None:
                said.append("access=" + ",".join(c.access_list))
            parts.append(f"{c.name} ({'; '.join(said)})")
        return "SetParameterAttributes " + ", ".join(parts)


@dataclass(frozen=True)
class AddObject:
    name: str
    key: str = "labkit"

    def describe(self) -> str:
        return f"AddObject {self.name}"


@dataclass(frozen=True)
class DeleteObject:
    name: str
    key: str = "labkit"

    def describe(self) -> str:
        return f"DeleteObject {self.name}"


@dataclass(frozen=True)
class DownloadFile:
    file_type: str  # the TR-069 FileType string, e.g. "1 Firmware Upgrade Image"
    url: str
    command_key: str
    file_size: int = 0
    target_file_name: str = ""
    delay: int = 0
    username: str = ""
    password: str = ""
    source: str = ""  # where the file comes from, for people ("the plan's firmware", ...)

    def describe(self) -> str:
        said = f"Download {self.file_type!r} {self.url}"
        extra = [f"{self.file_size} bytes"] if self.file_size else []
        if self.delay:
            extra.append(f"after {self.delay} s")
        if self.source:
            extra.append(self.source)
        return said + (f" ({', '.join(extra)})" if extra else "")


@dataclass(frozen=True)
class Reboot:
    key: str = "labkit reboot"

    def describe(self) -> str:
        return "Reboot"


@dataclass(frozen=True)
class FactoryReset:
    def describe(self) -> str:
        return "FactoryReset"


AcsRpc = SetValues | SetAttributes | AddObject | DeleteObject | DownloadFile | Reboot | FactoryReset


@dataclass(frozen=True)
class AcsLimitsPlan:
    sessions: int = 256
    queue: int = 64
    session_timeout: float = 30.0
    body_bytes: int = 1024 * 1024


def _no_actions() -> Mapping[str, tuple[AcsRpc, ...]]:
    return MappingProxyType({})


@dataclass(frozen=True)
class AcsPlan:
    enabled: bool = False  # the inventory has an `acs:` section, enabled
    url: str = ""  # the ACS's URL as phones reach it (for people: explain, the banner)
    path: str = "/"
    https: bool = False
    root: str = "Device"
    auth: HttpAuthPlan | None = None
    connection_request: tuple[str, str] | None = None  # (user, password) for the phone's Digest
    hold_requests: bool = False
    limits: AcsLimitsPlan = AcsLimitsPlan()
    actions: Mapping[str, tuple[AcsRpc, ...]] = field(default_factory=_no_actions)  # by MAC, in order
    ca_path: str = CA_PATH
    serials: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # serial -> MAC
    # by MAC: the ACS URL DHCP option 43 gives the phone when it sends "<model> dslforum.org"
    discovered: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def connection_request_url_name(self) -> str:
        return f"{self.root}.ManagementServer.ConnectionRequestURL"


def xsd_value(value: TypedValue | str | int | bool) -> ParamValue:
    """A value and its xsd type as the RPC carries them (the name is filled in by the caller)."""
    if isinstance(value, TypedValue):
        raw, kind = value.value, value.type
    elif isinstance(value, bool):
        raw, kind = value, "boolean"
    elif isinstance(value, int):
        raw, kind = value, "unsignedInt" if value >= 0 else "int"
    else:
        raw, kind = value, "string"
    text = ("true" if raw else "false") if isinstance(raw, bool) else str(raw)
    return ParamValue("", text, kind)


def levels_for(acs: AcsSection, phone: Phone) -> list[AcsActions]:
    """The levels that reach `phone`, first to last."""
    out = [acs.defaults]
    if phone.model in acs.models:
        out.append(acs.models[phone.model])
    if phone.group is not None and phone.group in acs.groups:
        out.append(acs.groups[phone.group])
    if phone.mac in acs.phones:
        out.append(acs.phones[phone.mac])
    return out


def _last(levels: Iterable[AcsActions], name: str) -> object:
    found = None
    for level in levels:
        value = getattr(level, name)
        if value is not None:
            found = value
    return found


def phone_rpcs(inv: Inventory, acs: AcsSection, phone: Phone, sizes: Mapping[str, int]) -> tuple[AcsRpc, ...]:
    """The ordered RPCs for one phone (`sizes`: the plan's file sizes by path)."""
    levels = levels_for(acs, phone)
    values: dict[str, ParamValue] = {}
    attributes: dict[str, AttributeChange] = {}
    for level in levels:
        for name, value in level.set.items():
            typed = xsd_value(value)
            values[name] = ParamValue(name, typed.value, typed.type)
        for name, attr in level.attributes.items():
            access = tuple(attr.access_list) if attr.access_list is not None else None
            attributes[name] = AttributeChange(name, attr.notification, access)
    interval = _last(levels, "periodic_inform_interval")
    if isinstance(interval, int):
        enable, every = (f"{acs.root}.ManagementServer.PeriodicInform{n}" for n in ("Enable", "Interval"))
        values[enable] = ParamValue(enable, "true", "boolean")
        values[every] = ParamValue(every, str(interval), "unsignedInt")
    out: list[AcsRpc] = []
    if values:
        out.append(SetValues(tuple(values.values())))
    if attributes:
        out.append(SetAttributes(tuple(attributes.values())))
    out += [AddObject(name) for level in levels for name in level.add_objects]
    out += [DeleteObject(name) for level in levels for name in level.delete_objects]
    out += [_download(inv, acs, phone, d, sizes) for level in levels for d in level.downloads]
    if _last(levels, "factory_reset"):
        out.append(FactoryReset())
    elif _last(levels, "reboot"):
        out.append(Reboot())
    return tuple(out)


def acs_url(inv: Inventory, acs: AcsSection, path: str = "") -> str:
    """The ACS's own URL as phones reach it (the provisioning host, the ACS's port)."""
    scheme = "https" if acs.https else "http"
    base = acs.path.rstrip("/")
    return f"{scheme}://{names.provisioning_host(inv)}:{acs.port}{base}/{path.lstrip('/')}"


def _download(inv: Inventory, acs: AcsSection, phone: Phone, given: Download,
              sizes: Mapping[str, int]) -> DownloadFile:
    url, size, source = given.url, 0, "given"
    if url is None:
        if given.file_type == "firmware":
            firmware = inv.models[phone.model].firmware or ""
            url, size, source = rule_url(inv, "/" + firmware), sizes.get(firmware, 0), "the plan's firmware"
        elif given.file_type == "config":
            path = macros.expand(PHONE_PROFILE_PATH, phone_identity(phone))
            url, size = rule_url(inv, path), sizes.get(path.lstrip("/"), 0)
            source = "the phone's own profile"
        else:
            url, source = acs_url(inv, acs, CA_PATH), "the lab CA"
    kind = given.file_type_name or FILE_TYPES[given.file_type]
    return DownloadFile(kind, url, given.command_key or f"labkit {given.file_type}", size,
                        given.target_file_name or "", given.delay, given.username or "",
                        given.password or "", source)


def plan_acs(loaded: LoadedInventory, sizes: Mapping[str, int] | None = None) -> AcsPlan:
    """The ACS's config; an inventory without `acs:` gives the defaults and no actions."""
    inv = loaded.inventory
    acs = inv.acs
    if acs is None:
        return AcsPlan()
    sizes = sizes or {}
    auth = acs.auth
    actions = {p.mac: rpcs for p in inv.phones if (rpcs := phone_rpcs(inv, acs, p, sizes))}
    limits = acs.limits
    return AcsPlan(
        enabled=acs.enabled, url=acs_url(inv, acs),
        path=acs.path, https=acs.https, root=acs.root,
        auth=HttpAuthPlan(auth.scheme, auth.user, auth.password, auth.realm) if auth else None,
        connection_request=((acs.connection_request.user, acs.connection_request.password)
                            if acs.connection_request else None),
        hold_requests=acs.hold_requests,
        limits=AcsLimitsPlan(limits.sessions, limits.queue, limits.session_timeout, limits.body_bytes),
        actions=MappingProxyType(actions),
        serials=MappingProxyType({p.serial: p.mac for p in inv.phones if p.serial}),
        discovered=MappingProxyType({p.mac: url for p in inv.phones if (url := option43_url(inv, p))}),
    )


def option43_url(inv: Inventory, phone: Phone) -> str | None:
    """The ACS URL in the option 43 the lab gives `phone` when TR-069 is on (option 60
    "<model> dslforum.org", labkit's default form [I]), or None."""
    options = option_set(inv, vendor_class=f"{phone.model} dslforum.org", model=phone.model, phone=phone)
    planned = options.options.get(43)
    if planned is None:
        return None
    try:
        return Tr069.from_suboptions(planned.decoded()).acs_url
    except (CodecError, TypeError):
        return None  # option 43 that is not TR-069's sub-options


def explain_lines(acs: AcsPlan, mac: str) -> list[str]:
    """What the ACS will do to the phone at `mac`, in order (`labkit explain --phone`)."""
    if not acs.url:
        return []  # no `acs:` section: nothing to say
    if not acs.enabled:
        return ["", "TR-069: the ACS is disabled in this lab (acs.enabled: false)"]
    auth = f", {acs.auth.scheme} authentication as {acs.auth.user!r}" if acs.auth else ""
    lines = ["", f"TR-069: the ACS at {acs.url}{auth}"]
    found = acs.discovered.get(mac)
    lines.append(f"  with TR-069 on, DHCP option 43 names {found}" if found else
                 "  with TR-069 on, DHCP gives it no option 43 ACS URL: its profile's ACS_URL must name it")
    rpcs = acs.actions.get(mac, ())
    if not rpcs:
        lines.append("  answers its Informs and sends it nothing of its own (operator commands only)")
        return lines
    lines.append("  in its first session (and again after a BOOTSTRAP Inform), one request at a time:")
    lines += [f"  {n:2d}. {rpc.describe()}" for n, rpc in enumerate(rpcs, start=1)]
    if acs.hold_requests:
        lines.append("  (InformResponse holds requests: the phone speaks first, then gets these)")
    return lines
