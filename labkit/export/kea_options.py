"""Plan options as Kea 2.2 `option-data` / `option-def` entries, byte for byte.

Every value goes as hex (`csv-format: false`): Kea sends the exact payload the plan holds.
Containers follow Kea's own model: option 43 holds its sub-options in
`vendor-encapsulated-options-space` (TR-069 names for 1-4), option 125 is `vivso-suboptions`
with the enterprise as data and its sub-options in `vendor-<enterprise>`. Option 159 is left
out here: Kea 2.2 predefines it (v4-portparams) and truncates raw data, so it goes through the
flex_option hook (kea.py). 150 and 160 have no built-in definition and get one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labkit.errors import CodecError
from labkit.protocols.dhcp.options import SubOption, VendorBlock, decode_value

SPACE_43 = "vendor-encapsulated-options-space"
TR069_SUBS = {1: "tr069-acs-url", 2: "tr069-provisioning-code",
              3: "tr069-cwmp-retry-minimum-wait-interval", 4: "tr069-cwmp-retry-interval-multiplier"}
TR111_SUBS = {1: "tr111-device-manufacturer-oui", 2: "tr111-device-serial-number",
              3: "tr111-device-product-class", 4: "tr111-gateway-manufacturer-oui",
              5: "tr111-gateway-serial-number", 6: "tr111-gateway-product-class"}
DEFINED = {  # codes Kea 2.2 has no definition for, defined globally
    150: {"name": "cisco-tftp-servers", "code": 150, "space": "dhcp4", "type": "ipv4-address",
          "array": True},
    160: {"name": "cisco-provisioning-url", "code": 160, "space": "dhcp4", "type": "string"},
}
# what Kea derives itself: subnet mask from the subnet, 51/58/59 from the lifetimes
DERIVED = {1, 51, 58, 59}
FLEX = {159}


class KeaOptionError(Exception):
    """An option value Kea cannot carry as planned; the message is the reason."""


@dataclass
class OptionDefs:
    """Sub-option definitions collected while converting (global `option-def`)."""

    defs: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)

    def sub(self, space: str, code: int, name: str) -> None:
        self.defs.setdefault((space, code), {"name": name, "code": code, "space": space,
                                             "type": "binary"})

    def entries(self) -> list[dict[str, Any]]:
        return [dict(d) for d in DEFINED.values()] + [self.defs[k] for k in sorted(self.defs)]


def _sub_entries(space: str, subs: tuple[SubOption, ...], defs: OptionDefs,
                 names: dict[int, str], prefix: str) -> list[dict[str, Any]]:
    out = []
    for sub in subs:
        name = names.get(sub.code, f"{prefix}-sub-{sub.code}")
        defs.sub(space, sub.code, name)
        out.append({"name": name, "space": space, "code": sub.code, "csv-format": False,
                    "data": sub.data.hex().upper()})
    return out


def option_entries(code: int, payload: bytes, always_send: bool, defs: OptionDefs) -> list[dict[str, Any]]:
    """The option-data entries for one option (a container brings its sub-options)."""
    send = {"always-send": True} if always_send else {}
    if code == 43:
        try:
            subs = decode_value(43, payload)
        except CodecError as exc:
            raise KeaOptionError(f"option 43 is not a sequence of sub-options ({exc})") from None
        return [{"name": "vendor-encapsulated-options", "code": 43, "space": "dhcp4", **send},
                *_sub_entries(SPACE_43, subs, defs, TR069_SUBS, "vso")]
    if code == 125:
        try:
            blocks: tuple[VendorBlock, ...] = decode_value(125, payload)
        except CodecError as exc:
            raise KeaOptionError(f"option 125 is not RFC 3925 vendor blocks ({exc})") from None
        if len(blocks) != 1:
            raise KeaOptionError(f"option 125 holds {len(blocks)} vendor blocks; Kea 2.2 sends one")
        block = blocks[0]
        space = f"vendor-{block.enterprise}"
        names = TR111_SUBS if block.enterprise == 3561 else {}
        # always-send on the sub-options too: Kea 2.2 fills a vivso container only with vendor
        # sub-options the client requests or that are always sent (checked with a phone's DORA)
        return [{"name": "vivso-suboptions", "code": 125, "space": "dhcp4",
                 "data": str(block.enterprise), **send},
                *[{**e, "always-send": True}
                  for e in _sub_entries(space, block.suboptions, defs, names, space)]]
    entry: dict[str, Any] = {"code": code, "space": "dhcp4", "csv-format": False,
                             "data": payload.hex().upper(), **send}
    if code in DEFINED:
        entry = {"name": DEFINED[code]["name"], **entry}
    return [entry]
