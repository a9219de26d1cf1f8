"""DHCP options and vendor classes as the inventory writes them (typed per option, `{hex: ...}` raw).

Option values are typed per option (66 text, 150 a list of IPv4, 43 TR-069 sub-options, 125
RFC 3925 vendor blocks, ...); raw bytes only when the user writes `{hex: ...}` or uses a numeric
code the kit has no type for.
"""

from __future__ import annotations

import fnmatch
from ipaddress import IPv4Address
from typing import Annotated, Any, TypeVar

from pydantic import Discriminator, Field, Tag, model_validator

from labkit.inventory.types import Domain, HexBytes, IPv4List, Strict, Text, UInt32
from labkit.protocols.dhcp.options import SubOption, Tr069, Tr111, VendorBlock


class Raw(Strict):
    """Escape hatch for any option or sub-option: the exact payload bytes."""

    hex: HexBytes


def _raw_or_typed(value: Any) -> str:
    if isinstance(value, Raw) or (isinstance(value, dict) and "hex" in value):
        return "raw"
    return "typed"


_T = TypeVar("_T")
# `OrRaw[X]`: X, or `{hex: ...}` for the exact bytes; errors name only the form the user chose
OrRaw = Annotated[Annotated[_T, Tag("typed")] | Annotated[Raw, Tag("raw")], Discriminator(_raw_or_typed)]


# tags the discriminated unions add to error locations; dropped when locating errors
UNION_TAGS = {"typed", "raw", "spec", "scalar"}
CodeList = list[Annotated[int, Field(ge=1, le=254)]]


class Tr069Model(Strict):
    acs_url: Text | None = None
    provisioning_code: Text | None = None
    retry_min_wait: Annotated[int, Field(ge=1, le=65535)] | None = None
    retry_multiplier: Annotated[int, Field(ge=1000, le=65535)] | None = None

    def typed(self) -> Tr069:
        return Tr069(self.acs_url, self.provisioning_code, self.retry_min_wait, self.retry_multiplier)


SubValue = OrRaw[Text]


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

    subnet_mask: OrRaw[IPv4Address] | None = None
    time_offset: OrRaw[Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]] | None = None
    routers: OrRaw[IPv4List] | None = None
    dns_servers: OrRaw[IPv4List] | None = None
    log_servers: OrRaw[IPv4List] | None = None
    domain_name: OrRaw[Domain] | None = None
    ntp_servers: OrRaw[IPv4List] | None = None
    vendor_specific: OrRaw[Option43] | None = None
    lease_time: OrRaw[UInt32] | None = None
    renewal_time: OrRaw[UInt32] | None = None
    rebinding_time: OrRaw[UInt32] | None = None
    vendor_class: OrRaw[Text] | None = None
    tftp_server_name: OrRaw[Text] | None = None
    vendor_identifying: OrRaw[list[VendorBlockModel]] | None = None
    tftp_servers: OrRaw[IPv4List] | None = None
    provisioning_server: OrRaw[Text] | None = None
    provisioning_url: OrRaw[Text] | None = None
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
            if not 1 <= code <= 254:
                raise ValueError(f"option {code} does not exist: DHCP option codes run from 1 to 254 "
                                 "(0 is padding and 255 ends the options)")
            if code in RESERVED_CODES:
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
