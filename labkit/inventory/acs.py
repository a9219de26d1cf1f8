"""The inventory's `acs:` section: the TR-069 auto-configuration server and what it does to phones.

    acs:
      port: 7547                       # default: 7547, the default lab's option 43 URL
      https: false                     # true: TLS with the lab CA's certificate on that port
      auth: {user: cpe, password: s3cret, scheme: digest}      # the phone -> ACS
      connection_request: {user: acs, password: knock}          # the ACS -> phone (Digest)
      defaults:                        # every phone; then models, groups, phones (later wins)
        periodic_inform_interval: 300
        set: {Device.DeviceInfo.ProvisioningCode: bench}
      models:
        CP-8851-3PCC:
          downloads: [{file_type: firmware}]        # the model's firmware from the plan
      groups:
        desk: {attributes: {Device.ManagementServer.ConnectionRequestURL: {notification: 2}}}
      phones:
        "00:56:2b:00:03:3c": {reboot: true}

Each level (`AcsActions`) says which parameter values to set, which attributes (notification)
to set, which objects to add or delete, which files to push with Download, the periodic inform
interval, and an optional reboot or factory reset. `labkit.plan.acs` merges the levels into one
ordered list of RPCs per phone; `acs_problems` gives the cross-checks pydantic cannot make.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from labkit.inventory.types import Mac, Port, Strict, Text

if TYPE_CHECKING:
    from labkit.inventory.model import Inventory
    from labkit.inventory.source import Path_

DEFAULT_PORT = 7547  # TR-069's registered port; the default lab's option 43 URL names it
# a TR-069 parameter name (TR-106 §3.1): dot-separated, instance numbers allowed; objects end in "."
_NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
PARAMETER_PATTERN = rf"^{_NAME}(\.({_NAME}|[0-9]+))*$"
OBJECT_PATTERN = rf"^{_NAME}(\.({_NAME}|[0-9]+))*\.$"
ParameterName = Annotated[str, Field(pattern=PARAMETER_PATTERN, max_length=256)]
ObjectName = Annotated[str, Field(pattern=OBJECT_PATTERN, max_length=256)]
XsdType = Literal["string", "int", "unsignedInt", "boolean", "dateTime", "base64"]
FileType = Literal["firmware", "config", "ca"]


class TypedValue(Strict):
    """A value with its xsd type named (`{value: 5, type: int}`); a bare value's type is guessed:
    true/false boolean, a whole number unsignedInt (int when negative), anything else string."""

    value: str | int | bool
    type: XsdType = "string"

    @model_validator(mode="after")
    def _fits(self) -> TypedValue:
        value, kind = self.value, self.type
        if kind in ("int", "unsignedInt"):
            low, high = (-(2**31), 2**31 - 1) if kind == "int" else (0, 2**32 - 1)
            number = value if isinstance(value, int) and not isinstance(value, bool) else None
            if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]{1,20}", value.strip()):
                number = int(value)
            if number is None or not low <= number <= high:
                raise ValueError(f"{value!r} is not an xsd:{kind} ({low}..{high})")
        elif kind == "boolean" and str(value).lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"{value!r} is not an xsd:boolean (true, false, 1, 0)")
        elif kind == "dateTime" and not re.fullmatch(
                r"-?[0-9]{4,}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})?",
                str(value)):
            raise ValueError(f"{value!r} is not an xsd:dateTime such as 2026-01-31T12:00:00Z")
        return self


ParameterValue = Annotated[
    Annotated[TypedValue, Tag("typed")] | Annotated[str | int | bool, Tag("scalar")],
    Discriminator(lambda v: "typed" if isinstance(v, (dict, TypedValue)) else "scalar"),
]


class Attribute(Strict):
    """SetParameterAttributes for one name (TR-069 A.3.2.4): 0 off, 1 passive, 2 active."""

    notification: Literal[0, 1, 2] | None = None
    access_list: list[Text] | None = None  # e.g. [Subscriber]; None leaves the list as it is

    @model_validator(mode="after")
    def _something(self) -> Attribute:
        if self.notification is None and self.access_list is None:
            raise ValueError("an attribute sets `notification`, `access_list` or both")
        return self


class Download(Strict):
    """A file pushed with Download (TR-069 A.3.2.8). Without `url`, the lab's own file:
    firmware: the model's firmware from the plan; config: the phone's own profile as the plan
    renders it; ca: the lab CA certificate (served by the ACS itself)."""

    file_type: FileType
    file_type_name: Text | None = None  # the FileType string sent; default: labkit.plan.acs.FILE_TYPES
    url: Text | None = None
    username: Text | None = None
    password: Text | None = None
    target_file_name: Text | None = None
    delay: Annotated[int, Field(ge=0, le=86400)] = 0  # DelaySeconds
    command_key: Text | None = None  # default: "labkit <file_type>"


class AcsActions(Strict):
    """What the ACS does to the phones of one level, in this order once merged: parameter values,
    the periodic inform interval, attributes, objects added, objects deleted, downloads, then
    a factory reset or a reboot."""

    set: dict[ParameterName, ParameterValue] = Field(default_factory=dict)
    periodic_inform_interval: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None
    attributes: dict[ParameterName, Attribute] = Field(default_factory=dict)
    add_objects: list[ObjectName] = Field(default_factory=list)
    delete_objects: list[ObjectName] = Field(default_factory=list)
    downloads: list[Download] = Field(default_factory=list)
    reboot: bool | None = None
    factory_reset: bool | None = None


class AcsAuth(Strict):
    """What the phone must answer with when it opens a session (Basic or Digest, TR-069 §3.4.5)."""

    user: Text
    password: Text
    scheme: Literal["basic", "digest"] = "digest"
    realm: Text = "labkit-acs"


class ConnectionRequestAuth(Strict):
    """What the ACS answers the phone's Digest challenge with on a Connection Request (§3.2.2)."""

    user: Text
    password: Text


class AcsLimits(Strict):
    sessions: Annotated[int, Field(ge=1, le=65535)] = 256  # sessions open at once
    queue: Annotated[int, Field(ge=1, le=10000)] = 64  # RPCs waiting per phone
    session_timeout: Annotated[float, Field(gt=0, le=3600)] = 30.0  # s between two POSTs of one session
    body_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024  # one envelope


class AcsSection(Strict):
    enabled: bool = True
    bind: IPv4Address | None = None  # default: the lab address
    port: Port = DEFAULT_PORT
    https: bool = False
    path: Annotated[str, Field(pattern=r"^/[^\s?#]*$")] = "/"  # where the ACS answers
    root: Annotated[str, Field(pattern=rf"^{_NAME}$")] = "Device"  # the data model's root object
    auth: AcsAuth | None = None
    connection_request: ConnectionRequestAuth | None = None
    hold_requests: bool = False  # answer InformResponse with HoldRequests true (the CPE speaks first)
    limits: AcsLimits = Field(default_factory=AcsLimits)
    defaults: AcsActions = Field(default_factory=AcsActions)
    models: dict[Text, AcsActions] = Field(default_factory=dict)
    groups: dict[Text, AcsActions] = Field(default_factory=dict)
    phones: dict[Mac, AcsActions] = Field(default_factory=dict)


def _levels(acs: AcsSection) -> Iterator[tuple[Path_, AcsActions]]:
    yield ("acs", "defaults"), acs.defaults
    for kind in ("models", "groups", "phones"):
        for key, actions in getattr(acs, kind).items():
            yield ("acs", kind, key), actions


def acs_problems(inv: Inventory) -> Iterator[tuple[Path_, str, str]]:
    """(path, message, "error" or "warning") for what the fields alone cannot show."""
    acs = inv.acs
    if acs is None:
        return
    phones_by_mac = {p.mac: p for p in inv.phones}
    groups = {p.group for p in inv.phones if p.group}
    for name in acs.models:
        if name not in inv.models:
            yield ("acs", "models", name), f"unknown model {name!r}; models: " + (
                ", ".join(inv.models) or "none defined"), "error"
    for mac in acs.phones:
        if mac not in phones_by_mac:
            yield ("acs", "phones", mac), f"no phone {mac} in `phones`", "error"
    for group in acs.groups:
        if group not in groups:
            yield ("acs", "groups", group), f"no phone is in group {group!r}", "warning"
    for path, actions in _levels(acs):
        yield from _level_problems(inv, path, actions)
    yield from _port_problems(inv, acs)


def _level_problems(inv: Inventory, path: Path_, actions: AcsActions) -> Iterator[tuple[Path_, str, str]]:
    if actions.reboot and actions.factory_reset:
        said = "a factory reset reboots the phone: set one of reboot, factory_reset"
        yield (*path, "factory_reset"), said, "error"
    for name in set(actions.add_objects) & set(actions.delete_objects):
        yield (*path, "delete_objects"), f"{name} is added and deleted at the same level", "error"
    for i, download in enumerate(actions.downloads):
        if download.url is not None and not re.match(r"^(https?|tftp)://", download.url, re.I):
            yield (*path, "downloads", i, "url"), "expected an http://, https:// or tftp:// URL", "error"
        if download.url is None and download.file_type == "firmware":
            models = [path[2]] if path[1] == "models" else _models_at(inv, path)
            bare = [m for m in models if m in inv.models and not inv.models[m].firmware]
            if bare:
                yield (*path, "downloads", i), ("no firmware in the plan for " + ", ".join(bare)
                                                + ": give `url` or a model `firmware`"), "error"


def _models_at(inv: Inventory, path: Path_) -> list[str]:
    """The models of the phones a level reaches (defaults: every phone)."""
    if path[1] == "phones":
        return [p.model for p in inv.phones if p.mac == path[2]]
    if path[1] == "groups":
        return sorted({p.model for p in inv.phones if p.group == path[2]})
    return sorted({p.model for p in inv.phones})


def _port_problems(inv: Inventory, acs: AcsSection) -> Iterator[tuple[Path_, str, str]]:
    """The ACS and a TCP service of the lab on one port and address: the second could not bind."""
    if not acs.enabled:
        return
    standard = {"http": 80, "https": 443, "dns": 53}
    for service, port in standard.items():
        config = getattr(inv.services, service)
        if not config.enabled or (config.port or port) != acs.port:
            continue
        if config.bind is None or acs.bind is None or config.bind == acs.bind:
            yield ("acs", "port"), f"port {acs.port} is also where {service} listens", "error"
