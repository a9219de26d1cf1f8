"""The TFTP service's ready config: where uploads go (absolute, or None) and the server's limits,
converted into the core's plain `ServerRules` by the service."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labkit.inventory.load import LoadedInventory
from labkit.protocols.tftp.accept import ServerRules
from labkit.protocols.tftp.base import SessionLimits
from labkit.protocols.tftp.negotiate import MAX_BLKSIZE


@dataclass(frozen=True)
class TftpLimits:
    timeout: float = 2.0  # seconds between retransmissions when the client negotiates none
    retries: int = 5  # retransmissions without progress, then the transfer is dropped
    max_sessions: int = 512  # transfers at once; beyond it a request gets error 0 "server busy"
    per_client: int | None = 16  # transfers at once from one address (None: no limit)
    # Loopback labs run every virtual phone from 127.0.0.1: the per-client limit would throttle
    # a storm to `per_client` phones, so it applies on loopback only when asked (tests).
    per_client_on_loopback: bool = False
    reserved: int = 32  # of max_sessions, kept for clients that hold no transfer
    max_retransmit_timeout: float = 10.0  # a client's `timeout 255` is acked, not obeyed
    max_life: float | None = 1800.0  # seconds a transfer may last in all
    max_blksize: int = MAX_BLKSIZE
    max_upload: int = 64 * 1024 * 1024

    def rules(self, *, uploads: bool, loopback: bool = False) -> ServerRules:
        """The core's rules. On loopback every phone shares one address: no per-address rules."""
        shared = loopback and not self.per_client_on_loopback
        per_client = None if shared else self.per_client
        reserved = 0 if shared else min(self.reserved, self.max_sessions // 4)
        return ServerRules(self.timeout, self.max_blksize, self.max_upload, uploads,
                           self.max_sessions, per_client, reserved,
                           SessionLimits(self.retries, self.max_retransmit_timeout, self.max_life))


@dataclass(frozen=True)
class TftpPlan:
    upload_dir: Path | None = None  # absolute; WRQs are refused without it
    limits: TftpLimits = TftpLimits()


def plan_tftp(loaded: LoadedInventory) -> TftpPlan:
    upload = loaded.inventory.services.tftp.upload_dir
    upload_dir = (loaded.base_dir / upload).resolve() if upload else None
    return TftpPlan(upload_dir)
