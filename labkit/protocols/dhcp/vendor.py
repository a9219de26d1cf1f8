"""Typed views of the Broadband Forum vendor options: TR-069 sub-options in option 43, and the
RFC 3925 V-I vendor blocks of option 125 with TR-111 (enterprise 3561) inside, so inventories
declare them instead of hand-typing hex. Pure, like every codec here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from labkit.errors import CodecError
from labkit.protocols.dhcp.tlv import (
    MAX_TLV_DATA,
    SubOption,
    check_int,
    check_text,
    coerce_suboption,
    decode_text,
    encode_tlvs,
    is_int,
    subs_by_code,
)

# --------------------------------------------------------------------------- TR-069 (option 43)

# Wire encoding of TR-069 sub-options 3 and 4: ASCII decimal strings ("5", "2000"), like 1 and 2,
# not binary integers. Sources (searched, the TR-069 PDF itself was not readable here):
#  - devolo/tr069 gateway/inserts/bin/015_start_bind_and_dhcp.sh (the PR "Add ACS
#    autoconfiguration using DHCP option 125/43", devolo/tr069#3) builds option 43 sub 3/4 by
#    hex-dumping the printf'd decimal value;
#  - USP (TR-369) R-DIS.1a, quoted in BroadbandForum/usp#20, which carries the same DHCP fields
#    forward: "The Agent MUST decode all received options as strings (provisioning code, wait
#    interval, and interval multiplier are not decoded as numeric fields)."
# Counter-example seen: one vendor's CPE client parses its DHCPv6 equivalents with
# strtol(hex, 16), i.e. as binary. A binary value therefore does not decode as TR-069 here;
# explain.py then shows it as a plain "sub N".
_DECIMAL = re.compile(rb"[0-9]{1,10}")


def _check_sub_text(value: object, what: str) -> str:
    text = check_text(value, what)
    if len(text) > MAX_TLV_DATA:
        raise CodecError(f"{what}: {len(text)} characters; a sub-option holds at most 255")
    return text


def _decode_decimal(data: bytes, lo: int, hi: int, what: str) -> int:
    digits = data.rstrip(b"\x00")
    if not _DECIMAL.fullmatch(digits):
        raise CodecError(f"{what}: {data!r} is not an ASCII decimal number")
    return check_int(int(digits), lo, hi, what)


@dataclass(frozen=True)
class Tr069:
    """Typed view of the TR-069 (Broadband Forum) sub-options of option 43."""

    acs_url: str | None = None  # sub 1, ManagementServer.URL
    provisioning_code: str | None = None  # sub 2, DeviceInfo.ProvisioningCode
    retry_min_wait: int | None = None  # sub 3, CWMPRetryMinimumWaitInterval (1..65535)
    retry_multiplier: int | None = None  # sub 4, CWMPRetryIntervalMultiplier (1000..65535)

    # Ranges from the TR-098/TR-181 data model of the two ManagementServer parameters.
    RETRY_MIN_WAIT: ClassVar[tuple[int, int]] = (1, 65535)
    RETRY_MULTIPLIER: ClassVar[tuple[int, int]] = (1000, 65535)

    def __post_init__(self) -> None:
        if self.acs_url is not None:
            _check_sub_text(self.acs_url, "TR-069 acs_url (sub 1)")
        if self.provisioning_code is not None:
            _check_sub_text(self.provisioning_code, "TR-069 provisioning_code (sub 2)")
        if self.retry_min_wait is not None:
            check_int(
                self.retry_min_wait, *self.RETRY_MIN_WAIT, "TR-069 retry_min_wait (sub 3)"
            )
        if self.retry_multiplier is not None:
            check_int(
                self.retry_multiplier, *self.RETRY_MULTIPLIER, "TR-069 retry_multiplier (sub 4)"
            )

    def to_suboptions(self) -> tuple[SubOption, ...]:
        subs: list[SubOption] = []
        if self.acs_url is not None:
            subs.append(SubOption(1, self.acs_url.encode("ascii")))
        if self.provisioning_code is not None:
            subs.append(SubOption(2, self.provisioning_code.encode("ascii")))
        if self.retry_min_wait is not None:
            subs.append(SubOption(3, str(self.retry_min_wait).encode("ascii")))
        if self.retry_multiplier is not None:
            subs.append(SubOption(4, str(self.retry_multiplier).encode("ascii")))
        return tuple(subs)

    @classmethod
    def from_suboptions(cls, subs: Sequence[SubOption]) -> Tr069:
        found = subs_by_code(subs, range(1, 5), "TR-069 option 43")
        return cls(
            acs_url=decode_text(found[1], "TR-069 sub 1 (ACS URL)") if 1 in found else None,
            provisioning_code=(
                decode_text(found[2], "TR-069 sub 2 (ProvisioningCode)") if 2 in found else None
            ),
            retry_min_wait=(
                _decode_decimal(found[3], *cls.RETRY_MIN_WAIT, "TR-069 sub 3 (retry min wait)")
                if 3 in found
                else None
            ),
            retry_multiplier=(
                _decode_decimal(found[4], *cls.RETRY_MULTIPLIER, "TR-069 sub 4 (retry multiplier)")
                if 4 in found
                else None
            ),
        )


# --------------------------------------------------------------------------- option 125 (RFC 3925)


@dataclass(frozen=True)
class VendorBlock:
    """One RFC 3925 V-I vendor-specific block: enterprise u32, data-len u8, sub-option TLVs."""

    enterprise: int
    suboptions: tuple[SubOption, ...]

    def __post_init__(self) -> None:
        if not is_int(self.enterprise) or not 0 <= self.enterprise <= 0xFFFFFFFF:
            raise CodecError(f"enterprise number {self.enterprise!r} is out of range 0..2**32-1")
        if isinstance(self.suboptions, str | bytes) or not isinstance(self.suboptions, Iterable):
            raise CodecError(f"enterprise {self.enterprise}: suboptions must be a sequence")
        # Accept a list but store a tuple, so that blocks stay hashable and compare equal.
        subs = tuple(coerce_suboption(s) for s in self.suboptions)
        size = sum(2 + len(s.data) for s in subs)
        if size > MAX_TLV_DATA:
            raise CodecError(
                f"vendor block for enterprise {self.enterprise} is too long: its sub-options "
                f"take {size} bytes, RFC 3925 allows at most 255"
            )
        object.__setattr__(self, "suboptions", subs)

    def data(self) -> bytes:
        """The block's data field (the sub-option TLVs)."""
        return encode_tlvs(self.suboptions)


_OUI = re.compile(r"[0-9A-Fa-f]{6}")


def _check_oui(value: object, what: str) -> str:
    text = _check_sub_text(value, what)
    if not _OUI.fullmatch(text):
        raise CodecError(f"{what}: {text!r} is not an OUI (6 hexadecimal digits)")
    return text


@dataclass(frozen=True)
class Tr111:
    """Typed view of option 125 enterprise 3561 (Broadband Forum TR-111) sub-options 1..6."""

    manufacturer_oui: str | None = None  # 1 DeviceManufacturerOUI
    serial_number: str | None = None  # 2 DeviceSerialNumber
    product_class: str | None = None  # 3 DeviceProductClass
    gateway_manufacturer_oui: str | None = None  # 4 GatewayManufacturerOUI
    gateway_serial_number: str | None = None  # 5 GatewaySerialNumber
    gateway_product_class: str | None = None  # 6 GatewayProductClass
    ENTERPRISE: ClassVar[int] = 3561  # IANA PEN of the Broadband Forum (ex DSL Forum)
    _FIELDS: ClassVar[tuple[str, ...]] = (
        "manufacturer_oui",
        "serial_number",
        "product_class",
        "gateway_manufacturer_oui",
        "gateway_serial_number",
        "gateway_product_class",
    )

    def __post_init__(self) -> None:
        for code, name in enumerate(self._FIELDS, start=1):
            value = getattr(self, name)
            if value is None:
                continue
            what = f"TR-111 {name} (sub {code})"
            if name.endswith("manufacturer_oui"):
                _check_oui(value, what)
            else:
                _check_sub_text(value, what)

    def to_block(self) -> VendorBlock:
        subs = [
            SubOption(code, getattr(self, name).encode("ascii"))
            for code, name in enumerate(self._FIELDS, start=1)
            if getattr(self, name) is not None
        ]
        return VendorBlock(self.ENTERPRISE, tuple(subs))

    @classmethod
    def from_block(cls, block: VendorBlock) -> Tr111:
        if not isinstance(block, VendorBlock):
            raise CodecError(f"expected a VendorBlock, got {type(block).__name__}")
        if block.enterprise != cls.ENTERPRISE:
            raise CodecError(f"TR-111 lives in enterprise {cls.ENTERPRISE}, not {block.enterprise}")
        found = subs_by_code(block.suboptions, range(1, 7), "TR-111 option 125")
        values = {
            name: decode_text(found[code], f"TR-111 sub {code} ({name})")
            for code, name in enumerate(cls._FIELDS, start=1)
            if code in found
        }
        return cls(**values)
