"""Packet loss on the phones' side, seeded: a bench knob for lossy links (this kernel has no netem).

Each phone gets its own `Loss` (its random source follows its MAC and the swarm's seed) and
drops each datagram it sends or receives with `probability`. The driver sets it as the phone
task's `CURRENT` context value; the UDP clients (DHCP, DNS, TFTP, syslog) consult it, so the
clients themselves stay unaware of it. TCP (HTTP) recovers lost segments in the kernel, so a
lost segment only costs the retransmission time: `tcp_delay` models that.
"""

from __future__ import annotations

import asyncio
import random
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

TCP_RTO = 1.0  # seconds: Linux's initial retransmission timeout (RFC 6298), what a lost SYN costs


@dataclass
class Loss:
    probability: float
    rng: random.Random
    dropped: int = 0
    passed: int = 0

    def drops(self) -> bool:
        """Whether the next datagram is lost (counted either way)."""
        if self.probability > 0 and self.rng.random() < self.probability:
            self.dropped += 1
            return True
        self.passed += 1
        return False

    def tcp_delay(self, segments: int = 2) -> float:
        """The wall seconds TCP spends recovering the losses among `segments` segments each way."""
        return TCP_RTO * sum(self.drops() for _ in range(2 * segments))


def phone_loss(probability: float, seed: int, mac: str) -> Loss | None:
    if probability <= 0:
        return None
    return Loss(probability, random.Random(f"loss/{seed}/{mac}"))


CURRENT: ContextVar[Loss | None] = ContextVar("labkit_phone_loss", default=None)


def lossy_transport(transport: asyncio.DatagramTransport, loss: Loss) -> None:
    """Make `transport.sendto` lose datagrams as `loss` says (the caller's code is unchanged)."""
    send = transport.sendto

    def sendto(data: Any, addr: Any = None) -> None:
        if not loss.drops():
            send(data, addr)

    setattr(transport, "sendto", sendto)  # noqa: B010 (an instance attribute over the method)
