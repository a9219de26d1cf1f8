"""The virtual phone's DHCP client state machine (pure): what to send, when to send it again.

RFC 2131 §4.1: a client retransmits DHCPDISCOVER and DHCPREQUEST with a randomized exponential
backoff, "4 seconds randomized by the value of a uniform random number chosen from the range
-1 to +1", then 8, 16, 32 and 64 s; retransmissions keep the transaction's xid (§4.4.1). A
client that hears no OFFER, or no ACK/NAK, after the last one, or that is NAKed, "restarts the
configuration process" in INIT (§3.1, §4.4.1) with a new xid. RENEWING (§4.4.5) waits half the
time left until T2, never less than 60 s, between its REQUESTs.

The flow yields `DhcpTransmit` effects; the driver sends the message (again) and answers with
what arrived for that xid within `wait` phone seconds, or None. All randomness comes from the
`random.Random` passed in, so a seeded phone retransmits at the same phone-clock instants.
"""

from __future__ import annotations

import random
from collections.abc import Generator
from typing import Any, Literal

from labkit.phone.effects import DhcpNak, DhcpOffer, DhcpTransmit, Lease, LeaseFailed, Now

BACKOFF = (4.0, 8.0, 16.0, 32.0, 64.0)  # RFC 2131 §4.1, each ±1 s
JITTER = 1.0
RENEW_MIN_WAIT = 60.0  # RFC 2131 §4.4.5

Flow = Generator[Any, Any, Any]


def backoff(rng: random.Random, schedule: tuple[float, ...] = BACKOFF) -> list[float]:
    """The waits after each transmission of one message: 4, 8, 16, 32, 64 s, each ±1 s."""
    return [base + rng.uniform(-JITTER, JITTER) for base in schedule]


def _transmit(kind: Literal["DISCOVER", "REQUEST"], xid: int, rng: random.Random, started: float,
              schedule: tuple[float, ...], *, offer: DhcpOffer | None = None) -> Flow:
    """Send `kind` and retransmit it on silence; return the first answer, or None after the last wait."""
    for attempt, wait in enumerate(backoff(rng, schedule), start=1):
        now = yield Now()
        answer = yield DhcpTransmit(kind, xid, wait, secs=int(now - started), attempt=attempt, offer=offer)
        if answer is not None:
            return answer
    return None


def acquire(rng: random.Random, cycles: int, schedule: tuple[float, ...] = BACKOFF) -> Flow:
    """INIT → SELECTING → REQUESTING → BOUND, restarting from INIT at most `cycles` times in all.

    Returns a `Lease`, or `LeaseFailed` naming what the last cycle missed."""
    why = "no OFFER"
    for _ in range(max(1, cycles)):
        started = yield Now()
        xid = rng.getrandbits(32)
        offer = yield from _transmit("DISCOVER", xid, rng, started, schedule)
        if not isinstance(offer, DhcpOffer):
            why = "no OFFER"
            continue
        answer = yield from _transmit("REQUEST", xid, rng, started, schedule, offer=offer)
        if isinstance(answer, Lease):
            return answer
        why = "NAK" if isinstance(answer, DhcpNak) else "no ACK"
    return LeaseFailed(why)


def renew(lease: Lease, rng: random.Random, t1: float) -> Flow:
    """RENEWING from T1: REQUESTs with ciaddr until an ACK/NAK or T2 (option 59, else 7/8 of the lease)."""
    t2 = lease.options.get(59)
    t2 = float(t2) if isinstance(t2, int) and t2 > t1 else max(t1 + RENEW_MIN_WAIT, lease.lease_time * 7 / 8)
    started = yield Now()
    xid = rng.getrandbits(32)
    elapsed, attempt = t1, 0
    while elapsed < t2:
        attempt += 1
        wait = min(max(RENEW_MIN_WAIT, (t2 - elapsed) / 2), t2 - elapsed)
        now = yield Now()
        answer = yield DhcpTransmit("RENEW", xid, wait, secs=int(now - started), attempt=attempt, lease=lease)
        if isinstance(answer, Lease):
            return answer
        if isinstance(answer, DhcpNak):
            return LeaseFailed("NAK")
        elapsed += wait
    return LeaseFailed("no ACK before T2")
