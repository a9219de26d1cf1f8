"""The DHCP server core (RFC 2131), pure: a datagram and the time in, a decision out.

No sockets, no clock, no database: the transport passes `now`, sends `Outcome.reply` to
`Outcome.reply.to` only after writing `LeaseTable.take_pending()` durably.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address
from typing import Any

from labkit.errors import CodecError
from labkit.protocols.dhcp.config import PhoneEntry, ServerConfig
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

BROADCAST = IPv4Address("255.255.255.255")
LEASE_CODES = (51, 58, 59)


@dataclass(frozen=True)
class Reply:
    message: Message
    wire: bytes
    to: tuple[str, int]
    l2_unicast: bool = False  # deliver to chaddr as an Ethernet frame (client has no address yet)


@dataclass
class Outcome:
    """What to do about one datagram, and what to say about it in the event log."""

    reply: Reply | None
    action: str  # "discover", "request", ..., or "malformed"
    request: str
    answer: str
    result: str  # "ok", "nak", "ignored", "unknown-client", "malformed", "no-address", ...
    mac: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


class DhcpServerCore:
    def __init__(self, config: ServerConfig, table: LeaseTable) -> None:
        self.config = config
        self.table = table
        self.counters: dict[str, int] = {}
        self._cursor = 0  # where the search for a never-used pool address resumes

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    # -- entry point ---------------------------------------------------------------------------
    def handle(self, data: bytes, source: tuple[str, int], now: float) -> Outcome:
        try:
            request = parse(data)
        except CodecError as exc:
            self._count("malformed")
            return Outcome(None, "malformed", f"{len(data)} bytes", "dropped", "malformed",
                           detail={"error": str(exc)})
        kind = request.message_type
        name = MESSAGE_TYPES.get(kind or 0, "BOOTP").lower()
        self._count(name)
        mac = request.mac
        summary = self._summary(request)
        if request.op != BOOTREQUEST or kind is None:
            return Outcome(None, name, summary, "ignored (not a DHCP request)", "ignored", mac)
        phone = self.config.phones.get(mac)
        if phone is None and not self.config.answer_any:
            self._count("unknown-client")
            return Outcome(None, name, summary, "no answer (not in the inventory)", "unknown-client", mac)
        handler = {DISCOVER: self._discover, REQUEST: self._request, DECLINE: self._decline,
                   RELEASE: self._release, INFORM: self._inform}.get(kind)
        if handler is None:
            return Outcome(None, name, summary, "ignored", "ignored", mac)
        outcome = handler(request, phone, now)
        outcome.action, outcome.request, outcome.mac = name, summary, mac
        return outcome

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
               with_lease: bool = True) -> Reply:
        options = self._options(request, with_lease=with_lease) if kind != NAK else [
            (54, self.config.server_id.packed)]
        message = reply_to(request, kind, yiaddr=yiaddr, options=options)
        if kind == NAK and request.giaddr != ZERO:
            # a relay must broadcast a NAK to the client (RFC 2131 §4.3.2)
            message = replace(message, flags=message.flags | BROADCAST_FLAG)
        max_size = int.from_bytes(request.options.get(57, b""), "big") if len(
            request.options.get(57, b"")) == 2 else 0
        to, l2 = self._destination(request, message)
        return Reply(message, build(message, max_size=max_size), to, l2)

    def _name(self, phone: PhoneEntry | None) -> str | None:
        return phone.name if phone is not None else None

    # -- message types --------------------------------------------------------------------------
    def _discover(self, request: Message, phone: PhoneEntry | None, now: float) -> Outcome:
        ip = self._choose(request, phone, now)
        if ip is None:
            self._count("no-address")
            why = "fixed address in use by another client" if phone and phone.ip else "pool exhausted"
            return Outcome(None, "", "", f"no offer: {why}", "no-address")
        self.table.offer(request.mac, ip, now + self.config.offer_hold)
        reply = self._reply(request, OFFER, ip)
        return Outcome(reply, "", "", f"OFFER {ip} to {reply.to[0]}:{reply.to[1]}", "ok",
                       detail={"ip": str(ip), "options": [c for c, _ in reply.message.options.items()]})

    def _request(self, request: Message, phone: PhoneEntry | None, now: float) -> Outcome:
        server_id = request.ip_option(54)
        wanted = request.ip_option(50)
        mac = request.mac
        if server_id is not None:  # SELECTING
            if server_id != self.config.server_id:
                self.table.drop_offer(mac)  # the client took another server's offer
                return Outcome(None, "", "", f"chose server {server_id}", "ignored")
            state = "selecting"
            candidate = wanted or request.ciaddr
        elif wanted is not None:  # INIT-REBOOT
            state = "init-reboot"
            candidate = wanted
            if wanted not in self.config.network:
                return self._nak(request, state, f"{wanted} is not on this network")
            known = mac in self.table.by_mac or phone is not None
            if not known:
                return Outcome(None, "", "", "no record of this client (silent, RFC 2131 §4.3.2)",
                               "ignored", detail={"state": state})
        elif request.ciaddr != ZERO:  # RENEWING (unicast) or REBINDING (broadcast)
            state = "rebinding" if request.broadcast or request.giaddr != ZERO else "renewing"
            candidate = request.ciaddr
            lease = self.table.by_mac.get(mac)
            if (lease is None or lease.ip != candidate) and not (phone and phone.ip == candidate):
                if state == "rebinding":
                    return Outcome(None, "", "", "no record of this binding (silent)", "ignored",
                                   detail={"state": state})
                return self._nak(request, state, f"{candidate} is not bound to {mac}")
        else:
            return Outcome(None, "", "", "REQUEST without address, server id or ciaddr", "ignored")
        if not self._allowed(candidate, phone, mac, now):
            return self._nak(request, state, f"{candidate} is not available to {mac}")
        lease = self.table.bind(mac, candidate, now + self.config.lease_time,
                                hostname=request.text_option(12), vendor_class=request.text_option(60),
                                phone=self._name(phone))
        reply = self._reply(request, ACK, candidate)
        return Outcome(reply, "", "", f"ACK {candidate} until {int(lease.expires)}", "ok",
                       detail={"state": state, "ip": str(candidate)})

    def _nak(self, request: Message, state: str, why: str) -> Outcome:
        self._count("nak")
        return Outcome(self._reply(request, NAK), "", "", f"NAK: {why}", "nak", detail={"state": state})

    def _decline(self, request: Message, phone: PhoneEntry | None, now: float) -> Outcome:
        ip = request.ip_option(50)
        if ip is None or request.ip_option(54) not in (None, self.config.server_id):
            return Outcome(None, "", "", "ignored", "ignored")
        self.table.decline(request.mac, ip, now + self.config.decline_quarantine)
        return Outcome(None, "", "", f"{ip} quarantined for {int(self.config.decline_quarantine)} s",
                       "declined", detail={"ip": str(ip)})

    def _release(self, request: Message, phone: PhoneEntry | None, now: float) -> Outcome:
        lease = self.table.release(request.mac, now)
        answer = f"released {lease.ip}" if lease else "nothing to release"
        return Outcome(None, "", "", answer, "ok")

    def _inform(self, request: Message, phone: PhoneEntry | None, now: float) -> Outcome:
        reply = self._reply(request, ACK, with_lease=False)
        return Outcome(reply, "", "", f"ACK (options only) to {reply.to[0]}", "ok")
