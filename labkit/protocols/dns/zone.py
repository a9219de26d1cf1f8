"""The zone data the DNS core serves: a plain, frozen input the plan converts into.

dnslib is the DNS codec library, so the records are dnslib RR objects (the plan parses the
rendered zone text with dnslib's zone reader); nothing here knows about templates or the inventory.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from dnslib import RR


@dataclass(frozen=True, slots=True)
class DnsZone:
    """One authoritative zone: its origin (no trailing dot) and its records.

    A sinkhole zone answers for its origin and every name below it: with `sinkhole_address`,
    the address (A) for every name; without, NXDOMAIN everywhere (with the zone's SOA).
    """

    origin: str
    records: tuple[RR, ...]
    sinkhole: bool = False
    sinkhole_address: IPv4Address | None = None
