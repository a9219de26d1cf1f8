"""What every service is started with: where it listens and what it shares with the others.

A starter is `start_<service>(config, endpoint, ctx) -> Closable`, where `config` is that
service's ready, frozen part of the Plan (services never read the inventory) and `ctx` the
shared context below. Fault hooks arrive typed through `ctx.faults`, never set afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from labkit.events import EventSink, PhoneDirectory
from labkit.faults.hooks import NO_FAULTS, Faults
from labkit.services.filetree import FileTree


class Closable(Protocol):
    async def close(self) -> None: ...


@dataclass(frozen=True)
class Endpoint:
    service: str
    host: str
    port: int
    transport: str  # "udp", "tcp", "udp+tcp"
    # Several worker processes serve this endpoint (`labkit up --workers N`): the service's
    # sockets set SO_REUSEPORT so the kernel spreads clients over the workers.
    reuse_port: bool = False

    def __str__(self) -> str:
        return f"{self.service:<7} {self.transport:<7} {self.host}:{self.port}"

    @property
    def loopback(self) -> bool:
        return self.host.startswith("127.")


@dataclass
class StartContext:
    tree: FileTree  # the plan's files (TFTP and HTTP share it)
    bus: EventSink  # where every Event goes
    directory: PhoneDirectory  # who is at which address (fixed IPs, then leases)
    known_macs: frozenset[str]  # the inventory's phones
    state_dir: Path  # leases, CA, logs, uploads
    faults: Faults = NO_FAULTS  # typed per-service hooks
    ca_path: Path | None = field(default=None)  # set by the HTTPS starter for the banner
    tls_keylog: Path | None = None  # TLS servers log their session keys here (--tls-keylog)
