"""Phones, their models, lines and provisioning-profile parameters."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag, field_validator

from labkit.inventory.dhcp import CodeList, Options
from labkit.inventory.types import Mac, Strict, Text


class ParamSpec(Strict):
    value: str | int | float | bool
    access: Literal["na", "ro", "rw"] | None = None


ParamValue = Annotated[
    Annotated[ParamSpec, Tag("spec")] | Annotated[str | int | float | bool, Tag("scalar")],
    Discriminator(lambda v: "spec" if isinstance(v, (dict, ParamSpec)) else "scalar"),
]
Params = dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")], ParamValue]


# The profile names the vendor chapter tells an administrator to place on a server (reference
# §1.3, §2; issue 11): two per model (the bootstrap profile), two per phone (its full profile).
FactoryName = Literal["/$PSN.xml", "/$PN.cfg", "/Cisco/$MA.cfg", "/Cisco/$PN/$MA.cfg"]
ALL_FACTORY_NAMES: tuple[FactoryName, ...] = ("/$PSN.xml", "/$PN.cfg", "/Cisco/$MA.cfg", "/Cisco/$PN/$MA.cfg")


def _factory_names(value: list[FactoryName] | None) -> list[FactoryName] | None:
    if value is None:
        return None
    if len(set(value)) != len(value):
        raise ValueError("a name is listed twice")
    if not {"/Cisco/$MA.cfg", "/Cisco/$PN/$MA.cfg"} & set(value):
        raise ValueError("serve at least one per-phone name (/Cisco/$MA.cfg or /Cisco/$PN/$MA.cfg): "
                         "the phone's full profile lives there")
    return value


class Encryption(Strict):
    key: Text
    digest: Literal["md5", "sha256"] = "md5"


class Profiles(Strict):
    template: str | None = None  # per-phone template in templates_dir; None: the built-in one
    model_template: str | None = None  # per-model ($PSN.xml) template; None: the built-in one
    scheme: Literal["tftp", "http", "https"] = "http"  # how the rules the kit writes fetch
    host: str | None = None  # host in those rules; default: the lab hostname FQDN
    params: Params = Field(default_factory=dict)
    encryption: Encryption | None = None
    gzip: bool = False
    # which of the documented factory names exist on the kit's TFTP and HTTP(S) servers
    factory_names: list[FactoryName] = Field(default_factory=lambda: list(ALL_FACTORY_NAMES))

    _names = field_validator("factory_names")(classmethod(lambda cls, v: _factory_names(v)))


class Line(Strict):
    extension: Text | None = None
    user_id: Text | None = None
    display_name: Text | None = None
    password: Text | None = None
    auth_id: Text | None = None
    proxy: Text | None = None


class PhoneModel(Strict):
    firmware: str | None = None  # the .loads file, in firmware_dir
    firmware_version: str | None = None  # e.g. sip88xx.12-0-1MPP-0001; default: the file stem
    options: Options = Field(default_factory=Options)
    force: CodeList = Field(default_factory=list)
    params: Params = Field(default_factory=dict)
    factory_names: list[FactoryName] | None = None  # this model's phones; None: profiles.factory_names

    _names = field_validator("factory_names")(classmethod(lambda cls, v: _factory_names(v)))

    @field_validator("firmware")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        if value is not None and ("/" in value or "\\" in value or value in ("", ".", "..")):
            raise ValueError("expected a file name in firmware_dir, without folders")
        return value


class Phone(Strict):
    mac: Mac
    model: str
    group: Text | None = None  # for fault rules that target a group of phones
    serial: Text | None = None
    name: Text | None = None
    ip: IPv4Address | None = None
    lines: list[Line] = Field(default_factory=list)
    options: Options = Field(default_factory=Options)
    force: CodeList = Field(default_factory=list)
    params: Params = Field(default_factory=dict)
