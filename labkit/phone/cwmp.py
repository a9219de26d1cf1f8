"""The virtual phone's TR-069 settings, ACS discovery from its lease, and the effects its CWMP
flow yields (plain data; `cwmp_flow` decides, `cwmp_driver` performs).

Chapter (all editions): the phone finds its ACS through DHCP option 43 (the ACS URL), says who it
is with option 60 `dslforum.org`, and reads option 125 for gateway association (reference §1.5).
What is not published is made configurable here, with labkit's default marked [I]:
- the option 60 bytes: `append` (" dslforum.org" after the MPP class, as other vendors send it,
  reference §1.1) by default, or `replace` (just "dslforum.org");
- the flat-profile names that enable TR-069 and hold the ACS settings (from the web page's
  labels: "Enable TR-069", "ACS URL", ...);
- the Connection Request path and port (TR-069's customary 7547).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from labkit.errors import CodecError
from labkit.phone.cwmp_tree import TreeRules
from labkit.protocols.cwmp import rpc
from labkit.protocols.dhcp.vendor import Tr069, Tr111, VendorBlock

DSLFORUM = "dslforum.org"  # TR-069 Amendment 3 §3.1: the vendor class of a CWMP device
BBF_ENTERPRISE = 3561  # option 125: the Broadband Forum's IANA enterprise number
SUB125_ACS_URL = 11  # option 125 ACS discovery sub-options 11.. (TR-069 Amendment 5) [I for MPP]

# flat-profile parameter names [I]: the web page's labels with spaces as underscores
PROFILE_NAMES = {
    "enable": "Enable_TR-069",
    "acs_url": "ACS_URL",
    "username": "ACS_Username",
    "password": "ACS_Password",
    "cr_username": "Connection_Request_Username",
    "cr_password": "Connection_Request_Password",
    "periodic_enable": "Periodic_Inform_Enable",
    "periodic_interval": "Periodic_Inform_Interval",
}
YES = ("yes", "true", "1", "on", "enable", "enabled")


def vendor_class(base: str, mode: Literal["append", "replace"]) -> str:
    """Option 60 when TR-069 is on: "<base> dslforum.org" or "dslforum.org" [I]."""
    return DSLFORUM if mode == "replace" else f"{base} {DSLFORUM}"


@dataclass(frozen=True)
class AcsDiscovery:
    """What the lease says about the ACS (option 43 first, then option 125)."""

    url: str | None = None
    provisioning_code: str | None = None
    retry_min_wait: int | None = None
    retry_multiplier: int | None = None
    gateway: Tr111 | None = None  # option 125 gateway association (GatewayManufacturerOUI, ...)
    source: str = ""  # "option 43", "option 125" or ""


def discover(options: Mapping[int, Any]) -> AcsDiscovery:
    """The ACS the DHCP options point to; unreadable sub-options count as absent."""
    tr: Tr069 | None = None
    subs43 = options.get(43)
    if isinstance(subs43, tuple):
        try:
            tr = Tr069.from_suboptions(subs43)
        except CodecError:
            tr = None
    url = tr.acs_url if tr is not None else None
    source = "option 43" if url else ""
    gateway, url125 = _from_125(options.get(125))
    if not url and url125:
        url, source = url125, "option 125"
    return AcsDiscovery(url, tr.provisioning_code if tr else None, tr.retry_min_wait if tr else None,
                        tr.retry_multiplier if tr else None, gateway, source)


def _from_125(blocks: object) -> tuple[Tr111 | None, str | None]:
    if not isinstance(blocks, tuple):
        return None, None
    for block in blocks:
        if isinstance(block, VendorBlock) and block.enterprise == BBF_ENTERPRISE:
            url = next((s.data.decode("ascii", "replace") for s in block.suboptions
                        if s.code == SUB125_ACS_URL), None)
            trimmed = VendorBlock(block.enterprise, tuple(s for s in block.suboptions if s.code <= 6))
            try:
                return Tr111.from_block(trimmed), url
            except CodecError:
                return None, url
    return None, None


@dataclass(frozen=True)
class CwmpSettings:
    enabled: bool = False  # the inventory's switch; the profile's Enable_TR-069 also turns it on
    vendor_class_mode: Literal["append", "replace"] = "append"
    acs_url: str | None = None  # overrides DHCP and the profile
    username: str | None = None  # ManagementServer.Username/Password (the ACS's Basic/Digest)
    password: str | None = None
    cr_username: str = "labkit"  # ConnectionRequestUsername/Password (Digest on the listener)
    cr_password: str = "labkit"
    cr_port: int = 7547  # the listener's port; on loopback an alternate one
    cr_path: str = "/cwmp-cr"
    cr_host: str | None = None  # the address the ConnectionRequestURL names (default: the lease's)
    cr_listen: str | None = None  # where the listener binds (default: the advertised address)
    periodic_enable: bool = True
    periodic_interval: int = 3600
    duration: float = 0.0  # phone seconds to keep managing after the first session (0: one session)
    max_sessions: int = 20  # bound on sessions per run, retries included
    retry_min_wait: int = 5  # CWMPRetryMinimumWaitInterval (TR-069 §3.2.1.1)
    retry_multiplier: int = 2000  # CWMPRetryIntervalMultiplier
    manufacturer: str = "Cisco Systems, Inc."
    ca_file_type: str = rpc.CUSTOM_CA  # the Download FileType the phone takes as a custom CA [I]
    tree: TreeRules = field(default_factory=TreeRules)

    @classmethod
    def from_profile(cls, params: Mapping[str, str], base: CwmpSettings | None = None) -> CwmpSettings:
        """The settings with the profile's TR-069 parameters applied over `base`."""
        base = base or cls()
        get = {key: params.get(name) for key, name in PROFILE_NAMES.items()}
        values: dict[str, Any] = {}
        if get["enable"] is not None:
            values["enabled"] = base.enabled or get["enable"].strip().lower() in YES
        for key in ("acs_url", "username", "password", "cr_username", "cr_password"):
            if get[key]:
                values[key] = get[key]
        if get["periodic_enable"] is not None:
            values["periodic_enable"] = get["periodic_enable"].strip().lower() in YES
        interval = (get["periodic_interval"] or "").strip()
        if interval.isdigit() and int(interval) > 0:
            values["periodic_interval"] = int(interval)
        return replace(base, **values)


# --------------------------------------------------------------------------- effects


@dataclass(frozen=True)
class CwmpPost:
    """POST `body` to the ACS; `new_session`: on a new connection and cookie jar. The driver
    answers a 401 with the credentials (Digest or Basic, at most twice) and returns a CwmpAnswer."""

    url: str
    body: bytes
    headers: tuple[tuple[str, str], ...]
    uid: str | None = None
    pwd: str | None = None
    new_session: bool = False


@dataclass(frozen=True)
class CwmpAnswer:
    status: int | None  # None: no answer (refused, timeout, TLS failure): `error` says which
    body: bytes = b""
    error: str | None = None


@dataclass(frozen=True)
class CwmpEnd:
    """The session is over: close its connection."""


@dataclass(frozen=True)
class AwaitConnectionRequest:
    """Wait up to `seconds` phone seconds; True as soon as an authenticated Connection Request
    arrives, False when the time is up."""

    seconds: float
