"""TFTP fault actions as plain values (the plan converts the inventory's rules into these), how
several fired actions combine, and the filter that changes a transfer's outgoing datagrams."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from labkit.protocols.tftp.packets import Opcode


@dataclass(frozen=True, slots=True)
class TftpFaultAction:
    error: int | None = None  # answer the request with this TFTP error code
    drop_oack: bool = False
    drop_block: int | None = None  # the first transmission of block N
    duplicate_block: int | None = None
    stall_after: int | None = None  # blocks sent, then silence
    wrong_tsize: int | None = None
    refuse_options: bool = False


def merge(actions: Iterable[TftpFaultAction]) -> TftpFaultAction | None:
    """Every fired action in one (later rules win per field); None when none fired."""
    merged: dict[str, Any] = {}
    fired = False
    for action in actions:
        fired = True
        for item in dataclasses.fields(action):
            value = getattr(action, item.name)
            # `is not`: 0 is a real value (stall after 0 blocks), not "unset"
            if value is not None and value is not False:
                merged[item.name] = value
    return dataclasses.replace(TftpFaultAction(), **merged) if fired else None


class SendFilter:
    """Outgoing datagrams of one transfer, changed as a fault action says (drop, duplicate, stall)."""

    def __init__(self, fault: TftpFaultAction) -> None:
        self.fault = fault
        self.oack_dropped = False
        self.block_dropped = False
        self.block_duplicated = False

    def __call__(self, datagram: bytes) -> list[bytes]:
        fault = self.fault
        opcode = datagram[1] if len(datagram) >= 2 else 0
        if opcode == Opcode.OACK and fault.drop_oack and not self.oack_dropped:
            self.oack_dropped = True
            return []
        if opcode != Opcode.DATA:
            return [datagram]
        block = int.from_bytes(datagram[2:4], "big")
        if fault.stall_after is not None and block > fault.stall_after:
            return []  # silence from here on, retransmissions included
        if fault.drop_block == block and not self.block_dropped:
            self.block_dropped = True
            return []
        if fault.duplicate_block == block and not self.block_duplicated:
            self.block_duplicated = True
            return [datagram, datagram]
        return [datagram]
