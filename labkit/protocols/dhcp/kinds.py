"""The DHCP option kinds table: every option labkit knows, by code and inventory name, and how
its payload maps to a Python value (`Kind`). Codes not in the table are opaque bytes.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from labkit.errors import CodecError
from labkit.protocols.dhcp.tlv import is_int

# --------------------------------------------------------------------------- option table


class Kind(enum.Enum):
    """How an option payload maps to a Python value."""

    IPV4 = "ipv4"  # IPv4Address
    IPV4_LIST = "ipv4_list"  # tuple[IPv4Address, ...], at least one
    TEXT = "text"  # str, ASCII, no NUL, non-empty
    UINT8 = "uint8"  # int
    UINT16 = "uint16"  # int
    UINT32 = "uint32"  # int
    INT32 = "int32"  # int (signed)
    UINT8_LIST = "uint8_list"  # tuple[int, ...], at least one
    BYTES = "bytes"  # bytes
    SUBOPTIONS = "suboptions"  # tuple[SubOption, ...]
    VIVSO = "vivso"  # tuple[VendorBlock, ...] (RFC 3925)


@dataclass(frozen=True)
class OptionSpec:
    code: int
    name: str  # snake_case inventory key
    title: str  # human title
    kind: Kind


_SPEC_LIST: tuple[OptionSpec, ...] = (
    OptionSpec(1, "subnet_mask", "Subnet mask", Kind.IPV4),
    OptionSpec(2, "time_offset", "Time offset", Kind.INT32),
    OptionSpec(3, "routers", "Routers", Kind.IPV4_LIST),
    OptionSpec(6, "dns_servers", "DNS servers", Kind.IPV4_LIST),
    OptionSpec(7, "log_servers", "Log servers", Kind.IPV4_LIST),
    OptionSpec(12, "host_name", "Host name", Kind.TEXT),
    OptionSpec(15, "domain_name", "Domain name", Kind.TEXT),
    OptionSpec(28, "broadcast_address", "Broadcast address", Kind.IPV4),
    OptionSpec(42, "ntp_servers", "NTP servers", Kind.IPV4_LIST),
    OptionSpec(43, "vendor_specific", "Vendor-specific information", Kind.SUBOPTIONS),
    OptionSpec(50, "requested_address", "Requested IP address", Kind.IPV4),
    OptionSpec(51, "lease_time", "IP address lease time", Kind.UINT32),
    OptionSpec(52, "overload", "Option overload", Kind.UINT8),
    OptionSpec(53, "message_type", "DHCP message type", Kind.UINT8),
    OptionSpec(54, "server_id", "Server identifier", Kind.IPV4),
    OptionSpec(55, "parameter_request_list", "Parameter request list", Kind.UINT8_LIST),
    OptionSpec(57, "max_message_size", "Maximum DHCP message size", Kind.UINT16),
    OptionSpec(58, "renewal_time", "Renewal (T1) time", Kind.UINT32),
    OptionSpec(59, "rebinding_time", "Rebinding (T2) time", Kind.UINT32),
    OptionSpec(60, "vendor_class", "Vendor class identifier", Kind.TEXT),
    OptionSpec(61, "client_id", "Client identifier", Kind.BYTES),
    OptionSpec(66, "tftp_server_name", "TFTP server name", Kind.TEXT),
    OptionSpec(82, "relay_agent_info", "Relay agent information", Kind.SUBOPTIONS),
    OptionSpec(125, "vendor_identifying", "V-I vendor-specific information", Kind.VIVSO),
    OptionSpec(150, "tftp_servers", "TFTP server addresses", Kind.IPV4_LIST),
    # IANA lists 159 as OPTION_V4_PORTPARAMS (RFC 7618) and 160 as the deprecated captive-portal
    # option (RFC 7710); Cisco MPP phones use both as text "provisioning server/URL".
    OptionSpec(159, "provisioning_server", "Provisioning server (Cisco MPP)", Kind.TEXT),
    OptionSpec(160, "provisioning_url", "Provisioning URL (Cisco MPP)", Kind.TEXT),
)

SPECS: Mapping[int, OptionSpec] = MappingProxyType({s.code: s for s in _SPEC_LIST})
BY_NAME: Mapping[str, OptionSpec] = MappingProxyType({s.name: s for s in _SPEC_LIST})


def spec_for(code: int) -> OptionSpec:
    """The spec of `code`; codes we do not know are opaque bytes."""
    if not is_int(code) or not 0 <= code <= 255:
        raise CodecError(f"option code {code!r} is out of range 0..255")
    spec = SPECS.get(code)
    if spec is None:
        return OptionSpec(code, f"option_{code}", f"Option {code}", Kind.BYTES)
    return spec
