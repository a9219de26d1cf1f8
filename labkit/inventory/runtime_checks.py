"""What reads well but fails when the lab starts (as `kea-dhcp4 -t` finds it): two services on
one port, an interface name the kernel cannot hold, a templates folder that is not there.

Each check gives (path in the inventory, message); `labkit.inventory.checks` locates and
reports them as errors with the rest.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address
from typing import TYPE_CHECKING

from labkit.inventory.source import Path_

if TYPE_CHECKING:
    from labkit.inventory.load import LoadedInventory

# where each service listens unless the inventory says otherwise (labkit.services.supervisor
# holds the same table for starting them; a unit test keeps the two equal)
STANDARD_PORTS = {"dns": 53, "tftp": 69, "http": 80, "https": 443, "syslog": 514, "dhcp": 67, "proxy": 3128}
TRANSPORTS = {"dns": ("udp", "tcp"), "tftp": ("udp",), "http": ("tcp",), "https": ("tcp",),
              "syslog": ("udp",), "dhcp": ("udp",), "proxy": ("tcp",)}
IFNAMSIZ = 16  # the kernel's limit on an interface name, its terminating NUL included


def runtime_problems(loaded: LoadedInventory) -> Iterator[tuple[Path_, str]]:
    yield from shared_ports(loaded)
    yield from interface_name(loaded)
    yield from templates_folder(loaded)


def shared_ports(loaded: LoadedInventory) -> Iterator[tuple[Path_, str]]:
    """Two enabled services on one transport, port and address: the second could not bind."""
    inv = loaded.inventory
    taken: dict[tuple[str, int], list[tuple[str, IPv4Address]]] = {}
    for service, standard in STANDARD_PORTS.items():
        config = getattr(inv.services, service)
        if not config.enabled:
            continue
        port = config.port or standard
        address = config.bind or inv.lab.address.ip
        for transport in TRANSPORTS[service]:
            for other, other_address in taken.get((transport, port), []):
                if address == other_address or address.is_unspecified or other_address.is_unspecified:
                    path: Path_ = ("services", service, "port") if config.port else ("services", service)
                    yield path, (f"{service} and {other} both listen on {transport} port {port} at "
                                 f"{address}: the second could not start; give one of them another "
                                 "`port` or `bind`")
            taken.setdefault((transport, port), []).append((service, address))


def interface_name(loaded: LoadedInventory) -> Iterator[tuple[Path_, str]]:
    name = loaded.inventory.lab.interface
    if name is None:
        return
    if len(name.encode()) >= IFNAMSIZ:
        yield ("lab", "interface"), (f"interface name {name!r} has {len(name.encode())} characters; "
                                     f"Linux names an interface in at most {IFNAMSIZ - 1}")
    elif not name or name in (".", "..") or any(c in name for c in "/: \t"):
        yield ("lab", "interface"), (f"{name!r} cannot be an interface name (no '/', ':' or blanks, "
                                     "not '.' or '..')")


def templates_folder(loaded: LoadedInventory) -> Iterator[tuple[Path_, str]]:
    """A `templates_dir` the inventory names must exist (the default one may be absent when the
    lab uses only the built-in profile templates)."""
    if loaded.embedded or ("lab", "templates_dir") not in loaded.source.positions:
        return
    folder = loaded.templates_dir
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        yield ("lab", "templates_dir"), f"the templates folder {folder} {what}"
