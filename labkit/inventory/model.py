"""The inventory's typed model (pydantic v2). Unknown keys are errors everywhere: a typo never passes.

DHCP option values are typed per option (66 text, 150 a list of IPv4, 43 TR-069 sub-options,
125 RFC 3925 vendor blocks, ...); raw bytes only when the user writes `{hex: ...}` or uses a
numeric code the kit has no type for.
"""

from __future__ import annotations

import fnmatch
from ipaddress import IPv4Address, IPv4Interface
from typing import Annotated, Any, Literal

from pydantic import (
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from labkit.faults import FaultRule
from labkit.inventory.types import (
    Domain,
    HexBytes,
    IPv4List,
    Mac,
    Port,
    Strict,
    Text,
    UInt32,
    _domain,
)
from labkit.protocols.dhcp.options import SubOption, Tr069, Tr111, VendorBlock


class Raw(Strict):
    """Escape hatch for any option or sub-option: the exact payload bytes."""

    hex: HexBytes


def _raw_or_typed(value: Any) -> str:
    if isinstance(value, Raw) or (isinstance(value, dict) and "hex" in value):
        return "raw"
    return "typed"


def OrRaw(typed: Any) -> Any:
    """`typed`, or `{hex: ...}` for the exact bytes; errors name only the form the user chose."""
    return Annotated[
        Annotated[typed, Tag("typed")] | Annotated[Raw, Tag("raw")], Discriminator(_raw_or_typed)
    ]


# tags the discriminated unions add to error locations; dropped when locating errors
UNION_TAGS = {"typed", "raw", "spec", "scalar"}
CodeList = list[Annotated[int, Field(ge=1, le=254)]]


# ---------------------------------------------------------------------------------------------
# DHCP options


class Tr069Model(Strict):
    acs_url: Text | None = None
    provisioning_code: Text | None = None
    retry_min_wait: Annotated[int, Field(ge=1, le=65535)] | None = None
    retry_multiplier: Annotated[int, Field(ge=1000, le=65535)] | None = None

    def typed(self) -> Tr069:
        return Tr069(self.acs_url, self.provisioning_code, self.retry_min_wait, self.retry_multiplier)


SubValue = OrRaw(Text)


def _suboptions(subs: dict[int, SubValue]) -> tuple[SubOption, ...]:
    return tuple(
        SubOption(code, v.hex if isinstance(v, Raw) else v.encode("ascii")) for code, v in subs.items()
    )


def _check_subs(subs: dict[int, SubValue]) -> dict[int, SubValue]:
    for code, value in subs.items():
        if not 1 <= code <= 254:
            raise ValueError(f"sub-option code {code} is outside 1..254")
        size = len(value.hex if isinstance(value, Raw) else value)
        if size > 255:
            raise ValueError(f"sub-option {code} is {size} bytes; a sub-option holds at most 255")
    return subs


class Option43(Strict):
    """Option 43: TR-069 ACS discovery sub-options, or raw sub-options; not both."""

    tr069: Tr069Model | None = None
    suboptions: dict[int, SubValue] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Option43:
        if (self.tr069 is None) == (self.suboptions is None):
            raise ValueError("give exactly one of `tr069` or `suboptions`")
        if self.suboptions is not None:
            _check_subs(self.suboptions)
        return self

    def typed(self) -> tuple[SubOption, ...]:
        if self.tr069 is not None:
            return self.tr069.typed().to_suboptions()
        return _suboptions(self.suboptions or {})


class Tr111Model(Strict):
    manufacturer_oui: Text | None = None
    serial_number: Text | None = None
    product_class: Text | None = None
    gateway_manufacturer_oui: Text | None = None
    gateway_serial_number: Text | None = None
    gateway_product_class: Text | None = None


class VendorBlockModel(Strict):
    """One RFC 3925 block: enterprise 3561 with TR-111 sub-options, or any enterprise with raw subs."""

    enterprise: UInt32
    tr111: Tr111Model | None = None
    suboptions: dict[int, SubValue] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> VendorBlockModel:
        if (self.tr111 is None) == (self.suboptions is None):
            raise ValueError("give exactly one of `tr111` or `suboptions`")
        if self.tr111 is not None and self.enterprise != Tr111.ENTERPRISE:
            raise ValueError(f"`tr111` sub-options belong to enterprise {Tr111.ENTERPRISE}")
        if self.suboptions is not None:
            _check_subs(self.suboptions)
        block = self.typed()
        size = sum(2 + len(s.data) for s in block.suboptions)
        if size > 255:
            raise ValueError(f"the block's sub-options take {size} bytes; RFC 3925 allows 255")
        return self

    def typed(self) -> VendorBlock:
        if self.tr111 is not None:
            return Tr111(**self.tr111.model_dump()).to_block()
        return VendorBlock(self.enterprise, _suboptions(self.suboptions or {}))


# option name -> code, for the typed fields below
OPTION_FIELDS: dict[str, int] = {
    "subnet_mask": 1,
    "time_offset": 2,
    "routers": 3,
    "dns_servers": 6,
    "log_servers": 7,
    "domain_name": 15,
    "ntp_servers": 42,
    "vendor_specific": 43,
    "lease_time": 51,
    "renewal_time": 58,
    "rebinding_time": 59,
    "vendor_class": 60,
    "tftp_server_name": 66,
    "vendor_identifying": 125,
    "tftp_servers": 150,
    "provisioning_server": 159,
    "provisioning_url": 160,
}
OPTION_NAMES: dict[int, str] = {code: name for name, code in OPTION_FIELDS.items()}
# codes the server sets itself or that only clients send: not configurable per inventory
RESERVED_CODES = {0, 50, 52, 53, 54, 55, 57, 61, 82, 255}


class Options(Strict):
    """DHCP options at one level (global, vendor class, model or phone).

    Keys are option names or codes (`66` and `tftp_server_name` are the same). A known option
    may also be given as `{hex: ...}`; any other code 1..254 takes `{hex: ...}` or a hex string.
    """

    subnet_mask: OrRaw(IPv4Address) | None = None
    time_offset: OrRaw(Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]) | None = None
    routers: OrRaw(IPv4List) | None = None
    dns_servers: OrRaw(IPv4List) | None = None
    log_servers: OrRaw(IPv4List) | None = None
    domain_name: OrRaw(Domain) | None = None
    ntp_servers: OrRaw(IPv4List) | None = None
    vendor_specific: OrRaw(Option43) | None = None
    lease_time: OrRaw(UInt32) | None = None
    renewal_time: OrRaw(UInt32) | None = None
    rebinding_time: OrRaw(UInt32) | None = None
    vendor_class: OrRaw(Text) | None = None
    tftp_server_name: OrRaw(Text) | None = None
    vendor_identifying: OrRaw(list[VendorBlockModel]) | None = None
    tftp_servers: OrRaw(IPv4List) | None = None
    provisioning_server: OrRaw(Text) | None = None
    provisioning_url: OrRaw(Text) | None = None
    other: dict[int, Raw] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _codes_to_names(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out: dict[str, Any] = {}
        other: dict[int, Any] = {}
        for key, value in data.items():
            code = _as_code(key)
            if code is None:
                out[key] = value  # a name (or a typo, which extra="forbid" reports)
                continue
            if code in RESERVED_CODES or not 1 <= code <= 254:
                raise ValueError(f"option {code} is set by the server or the client, not the inventory")
            name = OPTION_NAMES.get(code)
            if name is None:
                other[code] = value if isinstance(value, dict) else {"hex": value}
            elif name in out:
                raise ValueError(f"option {code} is given twice (as {code} and as {name})")
            else:
                out[name] = value
        if other:
            out["other"] = other
        return out

    def typed(self) -> dict[int, Any]:
        """code -> codec value (or `bytes` for a raw payload), in code order."""
        result: dict[int, Any] = {}
        for name, code in OPTION_FIELDS.items():
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, Raw):
                result[code] = value.hex
            elif code == 43:
                result[code] = value.typed()
            elif code == 125:
                result[code] = tuple(block.typed() for block in value)
            elif isinstance(value, list):
                result[code] = tuple(value)
            else:
                result[code] = value
        for code, raw in self.other.items():
            result[code] = raw.hex
        return dict(sorted(result.items()))


def _as_code(key: Any) -> int | None:
    if isinstance(key, bool):
        return None
    if isinstance(key, int):
        return key
    if isinstance(key, str) and key.isdigit():
        return int(key)
    return None


class VendorClass(Strict):
    """Options for clients whose option 60 matches a shell-style pattern, e.g. `CP-*-3PCC`."""

    match: Text
    options: Options = Field(default_factory=Options)
    force: CodeList = Field(default_factory=list)

    def matches(self, vendor_class: str) -> bool:
        return fnmatch.fnmatchcase(vendor_class, self.match)


class Dhcp(Strict):
    lease_time: Annotated[int, Field(ge=60, le=0xFFFFFFFE)] = 3600
    options: Options = Field(default_factory=Options)
    # sent even when the client does not ask for them (phones never ask for 125)
    force: CodeList = Field(default_factory=list)
    classes: list[VendorClass] = Field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Lab, services, DNS


class Pool(Strict):
    start: IPv4Address
    end: IPv4Address

    @model_validator(mode="after")
    def _ordered(self) -> Pool:
        if int(self.end) < int(self.start):
            raise ValueError("pool end comes before pool start")
        return self

    def __contains__(self, address: IPv4Address) -> bool:
        return int(self.start) <= int(address) <= int(self.end)


class LabSection(Strict):
    name: Text = "lab"
    domain: Domain
    interface: Text | None = None
    address: IPv4Interface  # the kit's own address with prefix, e.g. 10.42.0.1/24
    hostname: Annotated[str, Field(pattern=r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")] = "prov"
    pool: Pool | None = None
    answer: Literal["inventory", "any"] = "inventory"
    firmware_dir: str = "firmware"
    templates_dir: str = "templates"

    @field_validator("address", mode="before")
    @classmethod
    def _needs_prefix(cls, value: Any) -> Any:
        if isinstance(value, str) and "/" not in value:
            raise ValueError("expected the kit's address with its prefix, e.g. 10.42.0.1/24")
        return value


class Service(Strict):
    enabled: bool = True
    bind: IPv4Address | None = None  # default: the lab address
    port: Port | None = None  # default: the standard port


class TftpService(Service):
    upload_dir: str | None = None  # WRQ lands here; without it every write is refused


class HttpAuth(Strict):
    """What phones must answer with `--uid/--pwd` (reference §5: Basic and Digest)."""

    user: Text
    password: Text
    scheme: Literal["basic", "digest"] = "basic"
    realm: Text = "labkit"


class ContentEncryption(Strict):
    """RFC 8188 `Content-Encoding: aes128gcm` for per-phone profiles (firmware >= 11.2(3))."""

    ikm: Text  # the phone's IKM_HTTP_Encrypt_Content, used as its ASCII bytes
    keyid: Text = ""
    record_size: Annotated[int, Field(ge=18, le=2**31 - 1)] = 4096


class Redirect(Strict):
    to: Text  # a path on this server or a full URL
    status: Literal[301, 302, 303, 307, 308] = 302


class ConnectionLimits(Strict):
    """What one HTTP(S) client may hold (slowloris, connection floods)."""

    header_timeout: Annotated[float, Field(gt=0, le=3600)] = 10.0  # s to a complete request head
    body_timeout: Annotated[float, Field(gt=0, le=3600)] = 20.0  # s to a complete request body
    per_client: Annotated[int, Field(ge=1, le=65535)] | None = None  # default: 16, all on loopback
    connections: Annotated[int, Field(ge=1, le=65535)] = 256  # open at once, all clients


class HttpService(Service):
    limits: ConnectionLimits = Field(default_factory=ConnectionLimits)
    auth: HttpAuth | None = None
    encrypt: ContentEncryption | None = None
    # moved profiles: request path -> where it is now (phones follow 301/302 at once, reference §5)
    redirects: dict[Annotated[str, Field(pattern=r"^/")], Redirect] = Field(default_factory=dict)


class Services(Strict):
    dhcp: Service = Field(default_factory=Service)
    dns: Service = Field(default_factory=Service)
    tftp: TftpService = Field(default_factory=TftpService)
    http: HttpService = Field(default_factory=HttpService)
    https: HttpService = Field(default_factory=HttpService)
    syslog: Service = Field(default_factory=Service)


class Srv(Strict):
    service: Literal["_ciscoprov-https._tls", "_ciscoprov-http._tcp"] | Annotated[
        str, Field(pattern=r"^_[A-Za-z0-9-]+\._[A-Za-z0-9-]+$")
    ]
    target: Domain
    port: Port
    priority: Annotated[int, Field(ge=0, le=65535)] = 10
    weight: Annotated[int, Field(ge=0, le=65535)] = 10


class Sinkhole(Strict):
    names: list[Domain] = Field(
        default_factory=lambda: ["activate.cisco.com", "webapps.cisco.com", "activation.webex.com"]
    )
    address: IPv4Address | None = None  # None: NXDOMAIN


class Dns(Strict):
    ttl: Annotated[int, Field(ge=0, le=2**31 - 1)] = 300
    serial: Annotated[int, Field(ge=1, le=0xFFFFFFFF)] | None = None
    records: dict[str, IPv4Address] = Field(default_factory=dict)  # name (relative or FQDN) -> A
    srv: list[Srv] = Field(default_factory=list)
    sinkhole: Sinkhole = Field(default_factory=Sinkhole)

    @field_validator("records")
    @classmethod
    def _names(cls, value: dict[str, IPv4Address]) -> dict[str, IPv4Address]:
        for name in value:
            if name != "@":
                _domain(name)
        return value


class Tls(Strict):
    names: list[Domain] | None = None  # default: SRV targets, provisioning hosts and the domain
    cert: str | None = None  # a PEM certificate of your own (else the lab CA issues one)
    key: str | None = None

    @model_validator(mode="after")
    def _pair(self) -> Tls:
        if (self.cert is None) != (self.key is None):
            raise ValueError("give both `cert` and `key`, or neither")
        return self


# ---------------------------------------------------------------------------------------------
# Profiles, models, phones


class ParamSpec(Strict):
    value: str | int | float | bool
    access: Literal["na", "ro", "rw"] | None = None


ParamValue = Annotated[
    Annotated[ParamSpec, Tag("spec")] | Annotated[str | int | float | bool, Tag("scalar")],
    Discriminator(lambda v: "spec" if isinstance(v, (dict, ParamSpec)) else "scalar"),
]
Params = dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")], ParamValue]


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
