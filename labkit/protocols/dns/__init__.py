"""DNS: the pure authoritative core (bytes in, bytes out); the asyncio transport is labkit.services.dns."""

from labkit.protocols.dns.answers import DnsFact
from labkit.protocols.dns.resolver import AuthoritativeResolver
from labkit.protocols.dns.wire import MAX_UDP_DEFAULT, DnsConfigError, name_text, name_wire, type_text
from labkit.protocols.dns.zone import DnsZone

__all__ = ["MAX_UDP_DEFAULT", "AuthoritativeResolver", "DnsConfigError", "DnsFact", "DnsZone", "name_text",
           "name_wire", "type_text"]
