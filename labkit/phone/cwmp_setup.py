"""Everything the virtual phone's CWMP side starts from (pure): its settings with the profile's
TR-069 parameters applied, the ACS URL, the parameter tree, the Inform's DeviceId.

Which ACS URL wins is not documented for MPP: labkit takes the inventory's override, then the
profile's ACS_URL, then DHCP option 43 sub-option 1, then option 125 (TR-069 Amendment 5's
sub-option 11) [I]; TR-069 itself lets a locally configured URL and DHCP both provide one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from labkit.macros import normalize_mac
from labkit.phone.cwmp import PROFILE_NAMES, AcsDiscovery, CwmpSettings, discover
from labkit.phone.cwmp_flow import CwmpPhone, CwmpState
from labkit.phone.cwmp_tree import DeviceFacts, ParameterTree
from labkit.phone.effects import Lease
from labkit.protocols.cwmp import rpc
from labkit.protocols.cwmp.values import Value


@dataclass(frozen=True)
class Identity:
    mac: str
    model: str
    serial: str | None
    load: str
    user_agent: str = ""


@dataclass(frozen=True)
class Setup:
    phone: CwmpPhone | None  # None: TR-069 is off, or no ACS URL anywhere
    settings: CwmpSettings
    discovery: AcsDiscovery
    why: str  # what was decided, for the timeline


def connection_request_url(settings: CwmpSettings, lease_ip: str) -> str:
    return f"http://{settings.cr_host or lease_ip}:{settings.cr_port}{settings.cr_path}"


def management_values(settings: CwmpSettings, acs_url: str, cr_url: str) -> dict[str, Value]:
    return {
        "URL": Value.string(acs_url),
        "Username": Value.string(settings.username or ""),
        "Password": Value.string(settings.password or ""),
        "PeriodicInformEnable": Value.boolean(settings.periodic_enable),
        "PeriodicInformInterval": Value.unsigned(max(1, settings.periodic_interval)),
        "ParameterKey": Value.string(""),
        "ConnectionRequestURL": Value.string(cr_url),
        "ConnectionRequestUsername": Value.string(settings.cr_username),
        "ConnectionRequestPassword": Value.string(settings.cr_password),
        "CWMPRetryMinimumWaitInterval": Value.unsigned(settings.retry_min_wait),
        "CWMPRetryIntervalMultiplier": Value.unsigned(settings.retry_multiplier),
    }


def prepare(who: Identity, lease: Lease, params: Mapping[str, str], base: CwmpSettings, *,
            seed: int = 0, state: CwmpState | None = None) -> Setup:
    settings = CwmpSettings.from_profile(params, base)
    found = discover(lease.options)
    if not settings.enabled:
        return Setup(None, settings, found, "TR-069 is off")
    if found.retry_min_wait is not None or found.retry_multiplier is not None:
        settings = _with_retry(settings, found)
    url = settings.acs_url or params.get(PROFILE_NAMES["acs_url"]) or found.url
    if not url:
        return Setup(None, settings, found, "TR-069 is on but no ACS URL (inventory, profile, option 43/125)")
    digits = normalize_mac(who.mac).replace(":", "").upper()
    serial = who.serial or digits
    device = DeviceFacts(settings.manufacturer, digits[:6], who.model, serial, who.load, ip=lease.ip)
    cr_url = connection_request_url(settings, lease.ip)
    tr069_names = set(PROFILE_NAMES.values())
    profile = {k: v for k, v in params.items() if k not in tr069_names}
    tree = ParameterTree.build(device, management_values(settings, url, cr_url), profile, settings.tree)
    if found.provisioning_code:
        tree.nodes["Device.DeviceInfo.ProvisioningCode"].value = Value.string(found.provisioning_code)
    _gateway(tree, found)
    device_id = rpc.DeviceIdStruct(settings.manufacturer[:64], digits[:6], who.model[:64], serial[:64])
    phone = CwmpPhone(settings, tree, device_id, url, mac=who.mac, seed=seed, state=state,
                      user_agent=who.user_agent)
    from_profile = params.get(PROFILE_NAMES["acs_url"])
    source = "inventory" if settings.acs_url else ("profile" if from_profile else found.source)
    return Setup(phone, settings, found, f"ACS {url} (from {source})")


def _with_retry(settings: CwmpSettings, found: AcsDiscovery) -> CwmpSettings:
    return replace(settings, retry_min_wait=found.retry_min_wait or settings.retry_min_wait,
                   retry_multiplier=found.retry_multiplier or settings.retry_multiplier)


def _gateway(tree: ParameterTree, found: AcsDiscovery) -> None:
    """Option 125's gateway association (TR-111) as TR-181's Device.DeviceInfo.GatewayInfo."""
    gateway = found.gateway
    if gateway is None:
        return
    for name, value in (("ManufacturerOUI", gateway.gateway_manufacturer_oui),
                        ("SerialNumber", gateway.gateway_serial_number),
                        ("ProductClass", gateway.gateway_product_class)):
        if value is not None:
            tree.local_set(f"Device.DeviceInfo.GatewayInfo.{name}", Value.string(value))
