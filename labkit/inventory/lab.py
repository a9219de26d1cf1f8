"""The lab itself: its network (address, pool, folders), its DNS zone and its TLS names."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from labkit.inventory.types import Domain, Port, Strict, Text, _domain


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
    # seconds the DHCP preflight listens for another server (dnsmasq pings ~3 s before it offers)
    rival_dhcp_listen: Annotated[float, Field(ge=1, le=120)] = 6.0
    on_rival_dhcp: Literal["warn", "stop"] = "warn"  # another server heard while serving: stop answering?
    firmware_dir: str = "firmware"
    templates_dir: str = "templates"

    @field_validator("address", mode="before")
    @classmethod
    def _needs_prefix(cls, value: Any) -> Any:
        if isinstance(value, str) and "/" not in value:
            raise ValueError("expected the kit's address with its prefix, e.g. 10.42.0.1/24")
        return value


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
    # False: let the certificate miss the lab domain on purpose, to reproduce an SRV phone's
    # refusal (reference §2: the certificate must contain the DHCP provided domain name)
    require_domain: bool = True

    @model_validator(mode="after")
    def _pair(self) -> Tls:
        if (self.cert is None) != (self.key is None):
            raise ValueError("give both `cert` and `key`, or neither")
        return self
