"""DHCP at plan time: the server's ready config (`plan_dhcp`) and the option sets, the overlay
global -> vendor class -> model -> phone, encoded once.

The server takes its `DhcpPlan` from here and `labkit explain` a phone's `OptionSet`; both are
built from the same layers, and nothing re-reads YAML.
Options the kit derives itself (subnet mask, DNS server, domain, lease times) sit below the
global level, so an inventory can override any of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address
from types import MappingProxyType
from typing import Any, Literal

from labkit.inventory import names
from labkit.inventory.model import Inventory, Phone, VendorClass
from labkit.protocols.dhcp.config import ALWAYS_SENT, ClientOptions, OptionLayer, PhoneEntry, ServerConfig
from labkit.protocols.dhcp.options import (
    SubOption,
    Tr069,
    Tr111,
    VendorBlock,
    decode_value,
    encode_value,
    spec_for,
)

SERVER_ID = 54


@dataclass(frozen=True)
class PlannedOption:
    code: int
    payload: bytes  # encoded value, no code/length header
    level: str  # "kit", "global", "class CP-*-3PCC", "model CP-8851-3PCC", "phone"
    forced: bool  # sent even when the client does not ask for it

    @property
    def name(self) -> str:
        return spec_for(self.code).name

    def decoded(self) -> Any:
        return decode_value(self.code, self.payload)


@dataclass(frozen=True)
class OptionSet:
    """Every option one client gets, by code, with where each one came from."""

    options: dict[int, PlannedOption] = field(default_factory=dict)

    def payload(self, code: int) -> bytes | None:
        planned = self.options.get(code)
        return planned.payload if planned else None

    def decoded(self) -> dict[int, Any]:
        return {code: p.decoded() for code, p in self.options.items()}

    def for_request(self, requested: list[int] | None) -> list[PlannedOption]:
        """What goes in a reply: asked-for options in the client's order, then forced ones.

        The server identifier always goes first (RFC 2131 requires it in OFFER/ACK).
        """
        out: list[PlannedOption] = []
        seen: set[int] = set()
        if SERVER_ID in self.options:
            out.append(self.options[SERVER_ID])
            seen.add(SERVER_ID)
        for code in requested or []:
            if code in self.options and code not in seen:
                out.append(self.options[code])
                seen.add(code)
        for code, planned in self.options.items():
            if planned.forced and code not in seen:
                out.append(planned)
                seen.add(code)
        return out


def kit_options(inv: Inventory) -> dict[int, Any]:
    """Options the kit sets on its own: below the inventory's global level."""
    lease = inv.dhcp.lease_time
    derived: dict[int, Any] = {
        1: inv.lab.address.netmask,
        15: inv.lab.domain,
        51: lease,
        54: names.kit_address(inv) if inv.services.dhcp.bind is None else inv.services.dhcp.bind,
        58: lease // 2,  # T1 = 0.5 lease (RFC 2131 §4.4.5)
        59: lease * 7 // 8,  # T2 = 0.875 lease
    }
    if inv.services.dns.enabled:
        derived[6] = (names.kit_address(inv),)
    return derived


Layer = tuple[str, dict[int, Any], set[int]]  # (level, typed values by code, forced codes)


def _payload(code: int, value: Any) -> bytes:
    return value if isinstance(value, bytes) else encode_value(code, value)


def _overlay(layers: list[Layer]) -> OptionSet:
    merged: dict[int, tuple[Any, str]] = {}
    forced: set[int] = set()
    for level, values, force in layers:
        for code, value in values.items():
            merged[code] = (value, level)
        forced |= force
    options: dict[int, PlannedOption] = {}
    for code in sorted(merged):
        value, level = merged[code]
        forced_here = code in forced or code in ALWAYS_SENT
        options[code] = PlannedOption(code, _payload(code, value), level, forced_here)
    return OptionSet(options)


def matching_classes(inv: Inventory, vendor_class: str | None) -> list[VendorClass]:
    if not vendor_class:
        return []
    return [cls for cls in inv.dhcp.classes if cls.matches(vendor_class)]


def _base_layers(inv: Inventory) -> list[Layer]:
    return [("kit", kit_options(inv), set()), ("global", inv.dhcp.options.typed(), set(inv.dhcp.force))]


def _class_layer(cls: VendorClass) -> Layer:
    return (f"class {cls.match}", cls.options.typed(), set(cls.force))


def _own_layers(inv: Inventory, model: str | None, phone: Phone | None) -> list[Layer]:
    """The model's level (when the inventory describes it), then the phone's."""
    layers: list[Layer] = []
    model_name = phone.model if phone is not None else model
    if model_name is not None and model_name in inv.models:
        m = inv.models[model_name]
        layers.append((f"model {model_name}", m.options.typed(), set(m.force)))
    if phone is not None:
        layers.append(("phone", phone.options.typed(), set(phone.force)))
    return layers


def option_set(inv: Inventory, *, vendor_class: str | None = None, model: str | None = None,
               phone: Phone | None = None) -> OptionSet:
    """The overlay for one client: kit -> global -> matching classes (in order) -> model -> phone."""
    layers = _base_layers(inv) + [_class_layer(cls) for cls in matching_classes(inv, vendor_class)]
    return _overlay(layers + _own_layers(inv, model, phone))


def _core_layer(layer: Layer) -> OptionLayer:
    _, values, forced = layer
    return OptionLayer(MappingProxyType({code: _payload(code, v) for code, v in values.items()}),
                       frozenset(forced))


def client_options(inv: Inventory) -> ClientOptions:
    """The same overlay as `option_set`, as the DHCP core's plain input: encoded layers, merged
    per client (MAC, option 60) by the core."""
    return ClientOptions(
        base=tuple(_core_layer(layer) for layer in _base_layers(inv)),
        classes=tuple((cls.match, _core_layer(_class_layer(cls))) for cls in inv.dhcp.classes),
        phones=MappingProxyType(_phone_layers(inv)),
        always=ALWAYS_SENT,
    )


def _phone_layers(inv: Inventory) -> dict[str, tuple[OptionLayer, ...]]:
    """Each phone's own layers (model, phone). Phones of one model without options of their own
    share one tuple: 100,000 phones of three models hold three, not 100,000 copies."""
    shared: dict[str | None, tuple[OptionLayer, ...]] = {}
    out: dict[str, tuple[OptionLayer, ...]] = {}
    for p in inv.phones:
        if p.options.typed() or p.force:
            out[p.mac] = tuple(_core_layer(layer) for layer in _own_layers(inv, None, p))
            continue
        layers = shared.get(p.model)
        if layers is None:
            layers = shared[p.model] = tuple(_core_layer(layer) for layer in _own_layers(inv, None, p))
        out[p.mac] = layers
    return out


def class_option_set(inv: Inventory, cls: VendorClass) -> OptionSet:
    """What a pool client whose option 60 matches only `cls` gets: kit -> global -> class."""
    return _overlay([*_base_layers(inv), _class_layer(cls)])


@dataclass(frozen=True)
class DhcpPlan:
    """Everything the DHCP service needs, built at plan time; the starter adds only what the
    endpoint knows (its ports, loopback or the lab interface)."""

    server: ServerConfig  # server_port 67 / client_port 68 until the endpoint says otherwise
    interface: str | None  # the one interface a real-segment server binds to (lab.interface)
    rival_listen: float = 6.0  # seconds the preflight listens for another server (lab.rival_dhcp_listen)
    on_rival: Literal["warn", "stop"] = "warn"  # a rival heard while serving (lab.on_rival_dhcp)


def plan_dhcp(inv: Inventory) -> DhcpPlan:
    phones = MappingProxyType({p.mac: PhoneEntry(p.mac, p.ip, p.name or p.mac) for p in inv.phones})
    pool = (inv.lab.pool.start, inv.lab.pool.end) if inv.lab.pool else None
    own = frozenset(names.kit_addresses(inv))
    reserved = frozenset({p.ip for p in inv.phones if p.ip is not None}) | own
    server = ServerConfig(server_id=inv.lab.address.ip, network=inv.lab.address.network,
                          lease_time=inv.dhcp.lease_time, pool=pool, answer_any=inv.lab.answer == "any",
                          phones=phones, options_for=client_options(inv), reserved=reserved, own=own)
    return DhcpPlan(server, inv.lab.interface, inv.lab.rival_dhcp_listen, inv.lab.on_rival_dhcp)


def phone_vendor_class(phone: Phone) -> str:
    """What an MPP phone sends in option 60: its product name, e.g. CP-8851-3PCC (reference §1.1)."""
    return phone.model


def jsonable(code: int, value: Any) -> Any:
    """A decoded option value as JSON data (addresses as text, sub-options named where known)."""
    if isinstance(value, IPv4Address):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple):
        if code == 43 and all(isinstance(v, SubOption) for v in value):
            try:
                tr = Tr069.from_suboptions(value)
            except ValueError:
                return [_sub_json(s) for s in value]
            return {"tr069": {k: v for k, v in vars(tr).items() if v is not None}}
        if code == 125:
            return [_block_json(b) for b in value]
        return [jsonable(code, v) for v in value]
    if isinstance(value, SubOption):
        return _sub_json(value)
    return value


def _sub_json(sub: SubOption) -> dict[str, Any]:
    out: dict[str, Any] = {"code": sub.code, "hex": sub.data.hex()}
    if sub.data.isascii() and sub.data.decode("ascii").isprintable():
        out["text"] = sub.data.decode("ascii")
    return out


def _block_json(block: VendorBlock) -> dict[str, Any]:
    out: dict[str, Any] = {"enterprise": block.enterprise}
    if block.enterprise == Tr111.ENTERPRISE:
        try:
            tr = Tr111.from_block(block)
        except ValueError:
            tr = None  # enterprise 3561 with sub-options TR-111 does not define: shown raw
        if tr is not None:
            out["tr111"] = {k: v for k, v in vars(tr).items() if v is not None}
            return out
    out["suboptions"] = [_sub_json(s) for s in block.suboptions]
    return out
