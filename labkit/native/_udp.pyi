"""Batched UDP receive and send for the DNS service (labkit/native/_udp.c)."""

from typing import Any

BATCH_MAX: int

def deliver(bus: Any, cls: type, bases: list[dict[str, Any]], empty: list[Any], times: list[float],
            counts: list[int], which: list[int]) -> int:
    """A worker's event columns as `cls` instances into `bus`, in order (see
    labkit.services.workers_wire._deliver_factory, the reference); how many were delivered."""

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
    # the receiving thread (labkit/native/udp_pump.h; labkit.services.dns_pump is its loop side)
    def start(self, table: dict[bytes, Any], tally_len: int, high: int, batch_policy: bool = False,
              pairs_max: int = 16384) -> int:
        """Receive and answer the table's hits in a thread (the socket must be blocking; with
        `batch_policy` the thread runs SCHED_BATCH); the eventfd it writes when it has events to
        collect or a batch to take."""
    def stop(self, shutdown: bool = False) -> None:
        """End and join the thread (`shutdown`: wake it with shutdown(SHUT_RD), the socket closes next)."""
    def take(self) -> tuple[float, list[Any], list[Any]] | None:
        """The batch handed over (when, addresses, values from its first datagram not logged), or None."""
    def resume(self) -> None:
        """The handed batch is logged and answered (reply()): the thread sends it and goes on."""
    def collect(self, mapping: list[int | None], rearm: bool, table: dict[bytes, Any] | None = None) -> Any:
        """(times, counts, which, tally, failed, receive_errors), emptying the buffer, or the
        list of ids that have no int in `mapping` (nothing taken). With `table`: every id is
        then forgotten, in the same call, and `table` is the thread's from now on."""
    def pairs(self) -> list[tuple[Any, tuple[Any, ...]]]:
        """Per event id: (address, the table's kept tuple)."""

def resolve(addresses: list[Any], values: list[Any], start: int, peers: dict[Any, Any], tally: list[int],
            indexes: list[Any]) -> int:
    """A worker's hits from `start` on whose peer and question have a template index in `peers`:
    counted in `tally`, their indexes appended to `indexes` (labkit.services.dns_udp._index_batch
    is the reference); the first position it could not take, or len(values)."""
