"""DHCP replies changed on purpose (fault rules), pure: our datagram and the fault in, what to send out.

The reply is parsed again only here, when a fault fires; the hot path never pays for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from labkit.protocols.dhcp.message import ACK, HEADER_SIZE, NAK, OFFER, ZERO, build, parse
from labkit.protocols.result import Datagram

BROADCAST = "255.255.255.255"


@dataclass(frozen=True, slots=True)
class DhcpFaultAction:
    """What a DHCP fault rule does to a reply (plain values; the plan converts the inventory's rule)."""

    drop: str | None = None  # "offer", "ack" or "any"
    delay: float | None = None  # seconds; the transport's business
    nak: bool = False
    omit: tuple[int, ...] = ()
    replace: Mapping[int, bytes] = field(default_factory=lambda: MappingProxyType({}))
    malformed: int | None = None  # this option's length overruns the message


def apply_dhcp_fault(reply: Datagram, fault: DhcpFaultAction, server_id: bytes,
                     client_port: int) -> Datagram | None:
    """The datagram to send instead (None: send nothing). Delays are the transport's business."""
    message = parse(reply.data)  # our own reply: always readable
    kind = message.message_type
    dropped = {"any": (OFFER, ACK, NAK), "offer": (OFFER,), "ack": (ACK,)}.get(fault.drop or "", ())
    if kind in dropped:
        return None
    to, l2 = reply.to, reply.l2_unicast
    if fault.nak and kind in (OFFER, ACK):
        message = replace(message, yiaddr=ZERO, ciaddr=ZERO, options={53: bytes([NAK]), 54: server_id})
        if message.giaddr == ZERO:
            to, l2 = (BROADCAST, client_port), False
    options = {c: p for c, p in message.options.items() if c not in fault.omit}
    options.update(fault.replace)
    wire = build(replace(message, options=options))
    if fault.malformed is not None:
        wire = _overrun(wire, fault.malformed)
    return Datagram(wire, to, l2)


def _overrun(wire: bytes, code: int) -> bytes:
    """Make option `code` claim 255 bytes and end the message right after its real value, so its
    length runs past the end of the message (a malformed option)."""
    data = bytearray(wire)
    i = HEADER_SIZE
    while i + 1 < len(data) and data[i] != 255:
        if data[i] == 0:
            i += 1
            continue
        length = data[i + 1]
        if data[i] == code:
            data[i + 1] = 255
            return bytes(data[: i + 2 + min(length, 254)])
        i += 2 + length
    return wire
