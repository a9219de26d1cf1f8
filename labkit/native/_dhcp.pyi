"""The common case of reading a DHCP message in one call (labkit/native/_dhcp.c)."""

from collections.abc import Callable
from typing import Any

def parse(data: bytes, zero: Any, cache: dict[bytes, Any],
          make: Callable[[bytes], Any]) -> dict[str, Any] | None:
    """The fields of `labkit.protocols.dhcp.message.Message` as the pure `parse` makes them, or
    None: the message needs the pure path (malformed, overloaded, a repeated option code)."""
