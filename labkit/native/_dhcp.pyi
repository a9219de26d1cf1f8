"""The common case of reading a DHCP message in one call (labkit/native/_dhcp.c)."""

from collections.abc import Callable
from typing import Any

def parse(data: bytes, zero: Any, cache: dict[bytes, Any],
          make: Callable[[bytes], Any], cls: type | None = None) -> Any:
    """The fields of `labkit.protocols.dhcp.message.Message` as the pure `parse` makes them (with
    `cls`: a new cls whose __dict__ they are), or None: the message needs the pure path (malformed,
    overloaded, a repeated option code). TypeError: a cls without object's __new__ or a __dict__."""

def reply(htype: int, chaddr: bytes, xid: int, flags: int, ciaddr: int, yiaddr: int, giaddr: int,
          head: bytes, options: bytes, tail: bytes) -> bytes:
    """A BOOTREPLY's bytes: header (addresses as ints), magic, head + options + tail + END, padded
    to 300 bytes (reply_wire's shortcut, put together in C). ValueError: a field out of range."""

class Maker:
    """Maker(cls, names): calling it with len(names) positional values makes a `cls` with those
    slots filled (no __init__ runs). ValueError: a name that is not a writable object slot of cls."""

    def __init__(self, cls: type, names: tuple[str, ...]) -> None: ...
    def __call__(self, *values: Any) -> Any: ...
