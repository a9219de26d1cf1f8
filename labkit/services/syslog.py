"""Syslog receiver (UDP): every message becomes an event, tagged with the phone when known.

The socket gets a large receive buffer, and the datagrams the kernel still drops are counted
(`service.drops.count`, and a "kernel-drops" event when the count grows)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from labkit.events import EventSink, PhoneDirectory, make_event
from labkit.protocols.syslog import parse_syslog
from labkit.services.context import Endpoint, StartContext
from labkit.services.sockets import UDP_RECEIVE_BUFFER, DropCounter, listen_udp

MAX_SHOWN = 512  # characters of a message kept in the event's request field


@dataclass
class SyslogCounters:
    received: int = 0
    by_format: dict[str, int] = field(default_factory=dict)


_MAC_IN_TEXT = re.compile(r"\b([0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5})\b")


class _SyslogProtocol(asyncio.DatagramProtocol):
    def __init__(self, sink: EventSink, directory: PhoneDirectory, clock: Callable[[], float],
                 known_macs: frozenset[str]) -> None:
        self.sink, self.directory, self.clock = sink, directory, clock
        self.known_macs = known_macs
        self.counters = SyslogCounters()

    def _phone(self, address: str, text: str) -> str | None:
        phone = self.directory.phone_at(address)
        if phone is None:
            # MPP log lines carry $MAC (Log_Request_Msg, reference §3.3): name the phone by it
            match = _MAC_IN_TEXT.search(text)
            if match is not None and match.group(1).lower() in self.known_macs:
                phone = match.group(1).lower()
        return phone

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        message = parse_syslog(data)
        self.counters.received += 1
        self.counters.by_format[message.format] = self.counters.by_format.get(message.format, 0) + 1
        detail = {k: v for k, v in (("facility", message.facility), ("severity", message.severity),
                                    ("hostname", message.hostname), ("app", message.app),
                                    ("format", message.format)) if v is not None}
        phone = self._phone(addr[0], message.message)
        self.sink(make_event("syslog", f"{addr[0]}:{addr[1]}", phone, "log", message.message[:MAX_SHOWN], "",
                             "ok", self.clock, **detail))


@dataclass
class SyslogService:
    transport: asyncio.DatagramTransport
    protocol: _SyslogProtocol
    host: str
    port: int
    drops: DropCounter

    def reload(self, config: None, ctx: StartContext) -> None:
        """Name phones by the new plan's MACs (syslog has no config of its own)."""
        self.protocol.known_macs = ctx.known_macs

    @property
    def counters(self) -> SyslogCounters:
        return self.protocol.counters

    async def close(self) -> None:
        self.drops.stop()
        self.transport.close()


async def start_syslog(config: None, endpoint: Endpoint, ctx: StartContext, *,
                       clock: Callable[[], float] = time.time) -> SyslogService:
    """Receive syslog on the endpoint (port 0: any free port). No config of its own (None)."""
    drops = DropCounter("syslog", ctx.bus, clock=clock)
    protocol = _SyslogProtocol(ctx.bus, ctx.directory, clock, ctx.known_macs)
    transport, sock = await listen_udp(lambda: protocol, endpoint.host, endpoint.port,
                                       buffer=UDP_RECEIVE_BUFFER, drops=drops)
    return SyslogService(transport, protocol, sock.getsockname()[0], sock.getsockname()[1], drops)
