"""The proxy service's ready config: its mode and credentials, and the lab names it resolves.

`plan_proxy` turns `services.proxy` and the lab zone's A records into plain frozen values; the
service (labkit.services.proxy) never reads the inventory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from labkit.inventory import names
from labkit.inventory.model import Inventory

DEFAULT_PORT = 3128  # the phone's documented Proxy_Port default


@dataclass(frozen=True)
class ProxyPlan:
    mode: str = "pass"  # "pass", "auth", "fail"
    scheme: str = "basic"
    user: str = ""
    password: str = ""
    realm: str = "labkit proxy"
    failure: str = "502"  # "502" or "close"
    connections: int = 64
    timeout: float = 30.0
    port: int = DEFAULT_PORT  # the configured port (a loopback lab listens at port + offset)
    hosts: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # lab name -> address
    kit_addresses: tuple[str, ...] = ()  # where it may forward


def plan_proxy(inv: Inventory) -> ProxyPlan:
    config = inv.services.proxy
    hosts = {name.rstrip(".").lower(): str(address) for name, address in names.address_records(inv).items()}
    return ProxyPlan(config.mode, config.scheme, config.user or "", config.password or "", config.realm,
                     config.failure, config.connections, config.timeout, config.port or DEFAULT_PORT,
                     MappingProxyType(hosts), tuple(sorted(str(a) for a in names.kit_addresses(inv))))
