"""TFTP fault actions as plain values (the plan converts the inventory's rules into these)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TftpFaultAction:
    error: int | None = None  # answer the request with this TFTP error code
    drop_oack: bool = False
    drop_block: int | None = None  # the first transmission of block N
    duplicate_block: int | None = None
    stall_after: int | None = None  # blocks sent, then silence
    wrong_tsize: int | None = None
    refuse_options: bool = False
