"""Batched UDP receive and send for the DNS service (labkit/native/_udp.c)."""

from typing import Any

BATCH_MAX: int

class Drain:
    """recvmmsg/sendmmsg batches on a non-blocking UDP socket (the fd is not owned)."""

    def __init__(self, fd: int, batch: int = 64, key_max: int = 512) -> None: ...
    def receive(self, table: dict[bytes, Any]) -> tuple[list[Any], list[Any]]:
        """Up to `batch` datagrams: their addresses, and per datagram the table's value for the
        bytes after its ID (a hit: its reply is queued) or the query bytes (a miss). Raises
        BlockingIOError when none is waiting, OSError for a queued socket error."""
    def reply(self, wire: bytes | None) -> None:
        """The reply to the next miss of the batch, in order (None: no reply)."""
    def send(self) -> int:
        """Send the batch's replies in datagram order; how many could not be sent."""
