"""The DHCP server core (RFC 2131), pure: a datagram and the time in, a `Result` out.

No sockets, no clock, no database: the transport passes `now`, and sends `Result.send` only
after writing `LeaseTable.take_pending()` durably. Each datagram to send names where it goes
(`to`) and whether it must reach the client's MAC by L2 unicast (it has no address yet).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from ipaddress import IPv4Address
from types import MappingProxyType
from typing import Any

from labkit.errors import CodecError
from labkit.protocols.dhcp.config import OptionPayloads, PhoneEntry, ServerConfig
from labkit.protocols.dhcp.leases import LeaseTable
from labkit.protocols.dhcp.message import (
    ACK,
    BOOTREQUEST,
    BROADCAST_FLAG,
    DECLINE,
    DISCOVER,
    INFORM,
    MESSAGE_TYPES,
    NAK,
    OFFER,
    RELEASE,
    REQUEST,
    ZERO,
    Message,
    build,
    parse,
    reply_to,
)
from labkit.protocols.result import NO_DETAIL, Datagram, Fact, Result

__all__ = ["BROADCAST", "DhcpServerCore", "OptionPayloads", "PhoneEntry", "ServerConfig"]

BROADCAST = IPv4Address("255.255.255.255")
LEASE_CODES = (51, 58, 59)


@dataclass(frozen=True, slots=True)
class _Ask:
    """One request being answered: what the event log says about it comes from here."""

    request: Message
    phone: PhoneEntry | None
    action: str  # "discover", "request", ...
    summary: str
    now: float

    def said(self, answer: str, result: str, datagram: Datagram | None = None, **detail: Any) -> Result:
        fact = Fact(self.action, self.summary, answer, result, self.request.mac,
                    MappingProxyType(detail) if detail else NO_DETAIL)
        return Result((datagram,) if datagram is not None else (), (), (fact,))


class DhcpServerCore:
    def __init__(self, config: ServerConfig, table: LeaseTable) -> None:
        self.config = config
        self.table = table
        self.counters: dict[str, int] = {}
        self._cursor = 0  # where the search for a never-used pool address resumes
        self._reservations = {p.ip: p.mac for p in config.phones.values() if p.ip is not None}
        self.silenced: str | None = None  # why the server no longer answers anything (a rival, `stop`)

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    # -- entry point ---------------------------------------------------------------------------
    def handle(self, data: bytes, source: tuple[str, int], now: float) -> Result:
        if self.silenced is not None:
            return Result((), (), (Fact("dropped", f"{len(data)} bytes", f"not answered: {self.silenced}",
                                        "silenced"),))
        try:
            request = parse(data)
        except CodecError as exc:
            self._count("malformed")
            fact = Fact("malformed", f"{len(data)} bytes", "dropped", "malformed", None,
                        MappingProxyType({"error": str(exc)}))
            return Result((), (), (fact,))
        kind = request.message_type
        name = MESSAGE_TYPES.get(kind or 0, "BOOTP").lower()
        self._count(name)
        phone = self.config.phones.get(request.mac)
        ask = _Ask(request, phone, name, self._summary(request), now)
        if request.op != BOOTREQUEST or kind is None:
            return ask.said("ignored (not a DHCP request)", "ignored")
        if phone is None and not self.config.answer_any:
            self._count("unknown-client")
            return ask.said("no answer (not in the inventory)", "unknown-client")
        handler = {DISCOVER: self._discover, REQUEST: self._request, DECLINE: self._decline,
                   RELEASE: self._release, INFORM: self._inform}.get(kind)
        if handler is None:
            return ask.said("ignored", "ignored")
        return handler(ask)

    @staticmethod
    def _summary(request: Message) -> str:
        parts = [request.type_name, request.mac]
        vendor = request.text_option(60)
        if vendor:
            parts.append(f"vendor {vendor!r}")
        wanted = request.ip_option(50)
        if wanted:
            parts.append(f"wants {wanted}")
        if request.ciaddr != ZERO:
            parts.append(f"ciaddr {request.ciaddr}")
        if request.giaddr != ZERO:
            parts.append(f"via relay {request.giaddr}")
        return " ".join(parts)

    # -- address choice -------------------------------------------------------------------------
    def _usable(self, ip: IPv4Address, mac: str, now: float) -> bool:
        if ip not in self.config.network or ip in (self.config.network.network_address,
                                                   self.config.network.broadcast_address):
            return False
        holder = self.table.holder(ip, now)
        return (holder is None or holder == mac) and not self.table.is_quarantined(ip, now)

    def _in_pool(self, ip: IPv4Address) -> bool:
        pool = self.config.pool
        return pool is not None and int(pool[0]) <= int(ip) <= int(pool[1]) and ip not in self.config.reserved

    def _choose(self, request: Message, phone: PhoneEntry | None, now: float) -> IPv4Address | None:
        mac = request.mac
        if phone is not None and phone.ip is not None:
            return phone.ip if self._usable(phone.ip, mac, now) else None
        offered = self.table.offers.get(mac)
        if offered is not None and offered[1] > now and self._usable(offered[0], mac, now):
            return offered[0]
        lease = self.table.by_mac.get(mac)
        if lease is not None and lease.state != "declined" and self._in_pool(lease.ip) and self._usable(
                lease.ip, mac, now):
            return lease.ip  # the same MAC gets the same address back
        wanted = request.ip_option(50)
        if wanted is not None and self._in_pool(wanted) and self._usable(wanted, mac, now):
            return wanted
        return self._free_pool_address(mac, now)

    def _free_pool_address(self, mac: str, now: float) -> IPv4Address | None:
        """A never-used pool address (found from a moving cursor: O(1) amortized on a fresh pool),
        else the usable address whose lease ended longest ago."""
        pool = self.config.pool
        if pool is None:
            return None
        first, last = int(pool[0]), int(pool[1])
        size = last - first + 1
        for step in range(size):
            number = first + (self._cursor + step) % size
            ip = IPv4Address(number)
            if ip in self.table.by_ip or ip in self.config.reserved or not self._usable(ip, mac, now):
                continue
            self._cursor = (number - first + 1) % size
            return ip
        reusable = [(lease.expires, ip) for ip, lease in self.table.by_ip.items()
                    if self._in_pool(ip) and self._usable(ip, mac, now)]
        return min(reusable)[1] if reusable else None

    def _allowed(self, ip: IPv4Address, phone: PhoneEntry | None, mac: str, now: float) -> bool:
        """May this client hold `ip`? Its fixed address, or a usable pool address."""
        if phone is not None and phone.ip is not None:
            return ip == phone.ip and self._usable(ip, mac, now)
        return self._in_pool(ip) and self._usable(ip, mac, now)

    # -- replies --------------------------------------------------------------------------------
    def _options(self, request: Message, *, with_lease: bool) -> list[tuple[int, bytes]]:
        option_set = self.config.options_for(request.mac, request.text_option(60))
        chosen = option_set.for_request(request.requested_options())
        return chosen if with_lease else [(c, p) for c, p in chosen if c not in LEASE_CODES]

    def _destination(self, request: Message, reply: Message) -> tuple[tuple[str, int], bool]:
        """RFC 2131 §4.1: relay first, then ciaddr, then broadcast, else unicast to yiaddr by L2."""
        if request.giaddr != ZERO:
            return (str(request.giaddr), self.config.server_port), False
        kind = reply.message_type
        if kind == NAK:
            return (str(BROADCAST), self.config.client_port), False
        if request.ciaddr != ZERO:
            return (str(request.ciaddr), self.config.client_port), False
        if request.broadcast or reply.yiaddr == ZERO:
            return (str(BROADCAST), self.config.client_port), False
        return (str(reply.yiaddr), self.config.client_port), True

    def _reply(self, request: Message, kind: int, yiaddr: IPv4Address = ZERO, *,
               with_lease: bool = True) -> tuple[Message, Datagram]:
        options = self._options(request, with_lease=with_lease) if kind != NAK else [
            (54, self.config.server_id.packed)]
        message = reply_to(request, kind, yiaddr=yiaddr, options=options)
        if kind == NAK and request.giaddr != ZERO:
            # a relay must broadcast a NAK to the client (RFC 2131 §4.3.2)
            message = replace(message, flags=message.flags | BROADCAST_FLAG)
        max_size = int.from_bytes(request.options.get(57, b""), "big") if len(
            request.options.get(57, b"")) == 2 else 0
        to, l2 = self._destination(request, message)
        return message, Datagram(build(message, max_size=max_size), to, l2)

    # -- message types --------------------------------------------------------------------------
    def _discover(self, ask: _Ask) -> Result:
        request, phone = ask.request, ask.phone
        ip = self._choose(request, phone, ask.now)
        if ip is None:
            self._count("no-address")
            why = "fixed address in use by another client" if phone and phone.ip else "pool exhausted"
            return ask.said(f"no offer: {why}", "no-address")
        self.table.offer(request.mac, ip, ask.now + self.config.offer_hold)
        message, datagram = self._reply(request, OFFER, ip)
        to = datagram.to or ("", 0)
        return ask.said(f"OFFER {ip} to {to[0]}:{to[1]}", "ok", datagram, ip=str(ip),
                        options=list(message.options))

    def _request_state(self, ask: _Ask) -> tuple[str, IPv4Address] | Result:
        """RFC 2131 §4.3.2: which state the client is in and the address it asks for, or the answer
        when there is nothing to bind."""
        request, phone, mac = ask.request, ask.phone, ask.request.mac
        server_id = request.ip_option(54)
        wanted = request.ip_option(50)
        if server_id is not None:  # SELECTING
            if server_id != self.config.server_id:
                self.table.drop_offer(mac)  # the client took another server's offer
                return ask.said(f"chose server {server_id}", "ignored")
            return "selecting", wanted or request.ciaddr
        if wanted is not None:  # INIT-REBOOT
            if wanted not in self.config.network:
                return self._nak(ask, "init-reboot", f"{wanted} is not on this network")
            if mac not in self.table.by_mac and phone is None:
                return ask.said("no record of this client (silent, RFC 2131 §4.3.2)", "ignored",
                                state="init-reboot")
            return "init-reboot", wanted
        if request.ciaddr != ZERO:  # RENEWING (unicast) or REBINDING (broadcast)
            state = "rebinding" if request.broadcast or request.giaddr != ZERO else "renewing"
            candidate = request.ciaddr
            lease = self.table.by_mac.get(mac)
            if (lease is None or lease.ip != candidate) and not (phone and phone.ip == candidate):
                if state == "rebinding":
                    return ask.said("no record of this binding (silent)", "ignored", state=state)
                return self._nak(ask, state, f"{candidate} is not bound to {mac}")
            return state, candidate
        return ask.said("REQUEST without address, server id or ciaddr", "ignored")

    def _request(self, ask: _Ask) -> Result:
        found = self._request_state(ask)
        if isinstance(found, Result):
            return found
        state, candidate = found
        request, phone, mac = ask.request, ask.phone, ask.request.mac
        if not self._allowed(candidate, phone, mac, ask.now):
            return self._nak(ask, state, f"{candidate} is not available to {mac}")
        lease = self.table.bind(mac, candidate, ask.now + self.config.lease_time,
                                hostname=request.text_option(12), vendor_class=request.text_option(60),
                                phone=phone.name if phone is not None else None)
        _, datagram = self._reply(request, ACK, candidate)
        return ask.said(f"ACK {candidate} until {int(lease.expires)}", "ok", datagram, state=state,
                        ip=str(candidate))

    def _nak(self, ask: _Ask, state: str, why: str) -> Result:
        self._count("nak")
        _, datagram = self._reply(ask.request, NAK)
        return ask.said(f"NAK: {why}", "nak", datagram, state=state)

    def manages(self, ip: IPv4Address) -> bool:
        """Is `ip` an address this server hands out (its pool or a reservation), never its own?"""
        config = self.config
        if ip in config.own or ip == config.server_id or ip not in config.network:
            return False
        if ip in (config.network.network_address, config.network.broadcast_address):
            return False
        return ip in self._reservations or self._in_pool(ip)

    def _holds(self, mac: str, ip: IPv4Address, now: float) -> bool:
        """Does `mac` hold `ip`: its active lease, or its reservation?"""
        lease = self.table.by_mac.get(mac)
        if lease is not None and lease.ip == ip and lease.active(now):
            return True
        return self._reservations.get(ip) == mac

    def tidy(self, now: float) -> None:
        """At start: end quarantines that are over or that the rules below would refuse today (a
        store written by an older kit, or a lab whose pool changed); the deletions are pending."""
        self.table.forget_quarantines(lambda ip, until: until > now and self.manages(ip))

    def _decline(self, ask: _Ask) -> Result:
        """RFC 2131 §4.3.3, guarded: only the client holding an address we manage may decline it."""
        request = ask.request
        ip = request.ip_option(50)
        if ip is None or request.ip_option(54) not in (None, self.config.server_id):
            return ask.said("ignored", "ignored")
        if not self.manages(ip):
            self._count("decline-refused")
            return ask.said(f"DECLINE of {ip} refused: not an address this server hands out", "refused",
                            ip=str(ip))
        if not self._holds(request.mac, ip, ask.now):
            self._count("decline-refused")
            return ask.said(f"DECLINE of {ip} refused: {request.mac} does not hold it", "refused", ip=str(ip))
        self.table.decline(request.mac, ip, ask.now + self.config.decline_quarantine)
        return ask.said(f"{ip} quarantined for {int(self.config.decline_quarantine)} s", "declined",
                        ip=str(ip))

    def _release(self, ask: _Ask) -> Result:
        lease = self.table.release(ask.request.mac, ask.now)
        return ask.said(f"released {lease.ip}" if lease else "nothing to release", "ok")

    def _inform(self, ask: _Ask) -> Result:
        _, datagram = self._reply(ask.request, ACK, with_lease=False)
        return ask.said(f"ACK (options only) to {(datagram.to or ('',))[0]}", "ok", datagram)
