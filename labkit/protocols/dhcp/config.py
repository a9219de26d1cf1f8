"""What the DHCP core is configured with: plain, frozen values the plan converts the inventory into.

Nothing here knows about the inventory: an option set is payload bytes per code plus the codes
sent whether or not the client asks; a client's set is the overlay of layers (kit, global,
matching vendor classes, model, phone), merged per (client, option 60) on demand.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from types import MappingProxyType

SERVER_ID = 54
# always sent in an OFFER/ACK, whatever the client asks (RFC 2131 §4.3.1 and common practice)
ALWAYS_SENT = frozenset({1, 51, 54, 58, 59})
CACHE_SIZE = 4096  # merged option sets kept (one per phone, one per vendor class of pool clients)
EMPTY: Mapping[int, bytes] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class OptionPayloads:
    """Every option one client gets: the encoded payload per code (in code order), and the codes
    that go out even when the client does not ask for them."""

    payloads: Mapping[int, bytes] = field(default_factory=lambda: EMPTY)
    always: frozenset[int] = frozenset()

    def for_request(self, requested: Sequence[int] | None) -> list[tuple[int, bytes]]:
        """What goes in a reply: the server identifier first (RFC 2131 requires it in OFFER/ACK),
        then the asked-for options in the client's order, then the always-sent ones."""
        out: list[tuple[int, bytes]] = []
        seen: set[int] = set()
        payloads = self.payloads
        if SERVER_ID in payloads:
            out.append((SERVER_ID, payloads[SERVER_ID]))
            seen.add(SERVER_ID)
        for code in requested or ():
            if code in payloads and code not in seen:
                out.append((code, payloads[code]))
                seen.add(code)
        for code, payload in payloads.items():
            if code in self.always and code not in seen:
                out.append((code, payload))
                seen.add(code)
        return out


@dataclass(frozen=True, slots=True)
class OptionLayer:
    """One level of the overlay: the options it sets and the codes it forces."""

    payloads: Mapping[int, bytes] = field(default_factory=lambda: EMPTY)
    forced: frozenset[int] = frozenset()


def merge(layers: Sequence[OptionLayer], always: frozenset[int] = ALWAYS_SENT) -> OptionPayloads:
    """Later layers win per code; a code forced by any layer is always sent."""
    merged: dict[int, bytes] = {}
    forced = set(always)
    for layer in layers:
        merged.update(layer.payloads)
        forced |= layer.forced
    return OptionPayloads(MappingProxyType({code: merged[code] for code in sorted(merged)}),
                          frozenset(forced))


@dataclass(frozen=True)
class ClientOptions:
    """The option set of any client, from its MAC and option 60: base layers (kit, global), then
    every vendor class whose shell pattern matches option 60 (in order), then the phone's own
    layers (model, phone) when the MAC is an inventory phone. Callable as `options_for`."""

    base: tuple[OptionLayer, ...] = ()
    classes: tuple[tuple[str, OptionLayer], ...] = ()  # (pattern on option 60, layer)
    phones: Mapping[str, tuple[OptionLayer, ...]] = field(default_factory=lambda: MappingProxyType({}))
    always: frozenset[int] = ALWAYS_SENT
    _cache: dict[tuple[int | None, str | None], OptionPayloads] = field(
        default_factory=dict, compare=False, repr=False)

    def __call__(self, mac: str, vendor_class: str | None) -> OptionPayloads:
        # pool clients share one set per vendor class: keyed by their MAC, every new client of an
        # `answer: any` lab would miss the cache and merge the same options again
        # phones that share their layers (one model, no options of their own: the plan hands them
        # one tuple) share one merged set too: keyed by the tuple, which `phones` keeps alive
        own = self.phones.get(mac)
        key = (id(own) if own is not None else None, vendor_class)
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            found = self._cache[key] = merge(self.layers(mac if own is not None else None, vendor_class),
                                             self.always)
        return found

    def layers(self, mac: str | None, vendor_class: str | None) -> list[OptionLayer]:
        out = list(self.base)
        if vendor_class:
            out += [layer for pattern, layer in self.classes if fnmatch.fnmatchcase(vendor_class, pattern)]
        if mac is not None:
            out += self.phones.get(mac, ())
        return out


@dataclass(frozen=True, slots=True)
class PhoneEntry:
    mac: str
    ip: IPv4Address | None
    name: str


@dataclass(frozen=True)
class ServerConfig:
    server_id: IPv4Address
    network: IPv4Network
    lease_time: int
    pool: tuple[IPv4Address, IPv4Address] | None
    answer_any: bool
    phones: Mapping[str, PhoneEntry]
    options_for: Callable[[str, str | None], OptionPayloads]  # (mac, vendor class) -> options
    reserved: frozenset[IPv4Address] = frozenset()  # fixed IPs and the kit's own addresses
    own: frozenset[IPv4Address] = frozenset()  # the kit's own addresses (never declinable)
    server_port: int = 67
    client_port: int = 68
    offer_hold: float = 60.0
    decline_quarantine: float = 3600.0
