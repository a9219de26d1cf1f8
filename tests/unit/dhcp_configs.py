"""Plain DHCP core configs for unit tests, built directly (no inventory, no plan, no SQLite).

`default_lab()` mirrors the default inventory's DHCP answer for phone 8851-1 (10.42.0.60);
`pool_lab()` a small `answer: any` lab with a three-address pool and one fixed phone.
"""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network
from types import MappingProxyType
from typing import Any

from labkit.protocols.dhcp.config import ClientOptions, OptionLayer, PhoneEntry, ServerConfig
from labkit.protocols.dhcp.options import encode_value

SERVER = IPv4Address("10.42.0.1")
PHONE = "00:56:2b:00:03:3c"  # 8851-1 of the default lab, fixed 10.42.0.60
POOL_SERVER = IPv4Address("192.0.2.1")
POOL_PHONE = "00:56:2b:00:00:01"  # fixed 192.0.2.9


def layer(values: dict[int, Any], forced: frozenset[int] = frozenset()) -> OptionLayer:
    return OptionLayer(MappingProxyType({c: encode_value(c, v) for c, v in values.items()}), forced)


def kit_layer(server: IPv4Address, domain: str, lease: int = 3600) -> OptionLayer:
    return layer({1: IPv4Address("255.255.255.0"), 15: domain, 51: lease, 54: server, 58: lease // 2,
                  59: lease * 7 // 8})


def default_lab(**changes: Any) -> ServerConfig:
    options = ClientOptions(
        base=(kit_layer(SERVER, "lab.example"),
              layer({3: (SERVER,), 6: (SERVER,), 15: "lab.example", 42: (SERVER,), 66: "10.42.0.1"})),
        classes=(("CP-*-3PCC", layer({150: (SERVER,), 160: "http://prov.lab.example"})),),
        phones=MappingProxyType({PHONE: ()}),
    )
    config = ServerConfig(
        server_id=SERVER, network=IPv4Network("10.42.0.0/24"), lease_time=3600,
        pool=(IPv4Address("10.42.0.100"), IPv4Address("10.42.0.199")), answer_any=False,
        phones=MappingProxyType({PHONE: PhoneEntry(PHONE, IPv4Address("10.42.0.60"), "8851-1")}),
        options_for=options, reserved=frozenset({SERVER, IPv4Address("10.42.0.60")}), own=frozenset({SERVER}))
    return replace(config, **changes)


def pool_lab(answer_any: bool = True, **changes: Any) -> ServerConfig:
    options = ClientOptions(
        base=(kit_layer(POOL_SERVER, "p.example"),),
        classes=(("CP-*-3PCC", layer({160: "http://192.0.2.1/"})),),
        phones=MappingProxyType({POOL_PHONE: ()}),
    )
    fixed = IPv4Address("192.0.2.9")
    config = ServerConfig(
        server_id=POOL_SERVER, network=IPv4Network("192.0.2.0/24"), lease_time=3600,
        pool=(IPv4Address("192.0.2.100"), IPv4Address("192.0.2.102")), answer_any=answer_any,
        phones=MappingProxyType({POOL_PHONE: PhoneEntry(POOL_PHONE, fixed, POOL_PHONE)}),
        options_for=options, reserved=frozenset({POOL_SERVER, fixed}), own=frozenset({POOL_SERVER}))
    return replace(config, **changes)
