"""The cloud stand-in: what the kit does with the activation names phones ask when DHCP and DNS
SRV gave them nothing (reference §1.4: DHCP → DNS SRV → EDOS → GDS activation).

`mode: sinkhole` (the default) answers those names NXDOMAIN (or `dns.sinkhole.address`), as
before. `mode: emulate` makes the kit answer them itself: their A records point at the kit,
HTTPS presents a certificate from the lab CA naming them, and the lab activation service answers
`GET /lab/v1/activation?mac=..&model=..&serial=..[&code=..]` with the provisioning URL this
section gives the phone, or 404 `no service provider`. Cisco's cloud protocol is not public:
this request shape is labkit's own [I].
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Annotated, Literal

from pydantic import Field

from labkit.inventory.types import Domain, Mac, Strict, Text

CLOUD_NAMES = ("activate.cisco.com", "webapps.cisco.com", "activation.webex.com")
ActivationCodeText = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]


class ActivationCode(Strict):
    """One activation code (`gds://CODE`, or `code=` in the activation request)."""

    url: Text | None = None  # None: the phone's own URL from this section (phones/groups/models/default)
    phones: list[Mac] | None = None  # None: any phone may redeem it


class Cloud(Strict):
    mode: Literal["sinkhole", "emulate"] = "sinkhole"
    names: list[Domain] = Field(default_factory=lambda: list(CLOUD_NAMES))
    address: IPv4Address | None = None  # where the names point when emulated; default: the kit's address
    # the provisioning URL per phone, by the most specific match: phone, then group, then model,
    # then `default`; MPP macros ($MA, $PN, $PSN, $SN, ...) are expanded for the asking phone
    phones: dict[Mac, Text] = Field(default_factory=dict)
    groups: dict[str, Text] = Field(default_factory=dict)
    models: dict[str, Text] = Field(default_factory=dict)
    default: Text | None = None  # None: a phone nothing above names gets 404 `no service provider`
    codes: dict[ActivationCodeText, Text | ActivationCode] = Field(default_factory=dict)  # code: URL/rule
