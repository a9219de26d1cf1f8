"""The DHCP server core (RFC 2131), pure: a datagram and the time in, a `Result` out.

No sockets, no clock, no database: the transport passes `now`, and sends `Result.send` only
after writing `LeaseTable.take_pending()` durably. Each datagram to send names where it goes
(`to`) and whether it must reach the client's MAC by L2 unicast (it has no address yet).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from ipaddress import IPv4Address
from types import MappingProxyType
from typing import Any

from labkit.errors import CodecError
from labkit.protocols.dhcp.blocks import OptionBlocks
from labkit.protocols.dhcp.config import OptionPayloads, PhoneEntry, ServerConfig
from labkit.protocols.dhcp.leases import LeaseTable
from labkit.protocols.dhcp.message import (
    _TYPE_TLVS,
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
    address,
    address_maker,
    dotted,
    native_parser,
    parse,
    reply_wire,
)
from labkit.protocols.dhcp.options import encode_options
from labkit.protocols.result import NO_DETAIL, Datagram, Fact, Result

__all__ = ["BROADCAST", "DhcpServerCore", "OptionPayloads", "PhoneEntry", "ServerConfig"]

BROADCAST = IPv4Address("255.255.255.255")
TEXT_CACHE = 4096  # address texts kept (relay and server addresses hit; bounded memory)


@dataclass(slots=True)
class _Ask:
    """One request being answered: what the event log says about it comes from here."""

    request: Message
    phone: PhoneEntry | None
    action: str  # "discover", "request", ...
    summary: str
    now: float
    make: tuple[Callable[..., Fact], Callable[..., Result]]  # the core's Fact and Result makers

    def said(self, answer: str, result: str, datagram: Datagram | None = None, **detail: Any) -> Result:
        # the detail is the call's own fresh dict (no proxy: an Event copies a dict's items in one step)
        fact = self.make[0](self.action, self.summary, answer, result, self.request.mac, detail or NO_DETAIL)
        return self.make[1]((datagram,) if datagram is not None else (), (), (fact,), False)


def _makers(maker: Any) -> tuple[Any, Any, Any, Any]:
    """Fact, Result, Datagram and _Ask made from all their fields in order: labkit.native._dhcp's
    Maker (fills the slots: no frozen __init__'s object.__setattr__ per field) for each class whose
    __init__ only stores its fields, as checked here; else the class itself (the same objects)."""
    out = []
    for cls in (Fact, Result, Datagram, _Ask):
        names = tuple(f.name for f in fields(cls))
        plain = (maker is not None and set(getattr(cls, "__slots__", ())) == set(names)
                 and not hasattr(cls, "__post_init__") and all(f.init for f in fields(cls)))
        out.append(maker(cls, names) if plain else cls)
    return out[0], out[1], out[2], out[3]


_ACTIONS = {kind: name.lower() for kind, name in MESSAGE_TYPES.items()}  # the events' action per type


def _reply_codes(kind: int, codes: list[int], request: Message) -> list[int]:
    """The option codes of a reply in wire order (what `reply_to` puts in its options)."""
    out = [53, *codes] if 53 not in codes else [53, *(c for c in codes if c != 53)]
    if 82 in request.options and 82 not in out:
        out.append(82)
    return out


class DhcpServerCore:
    def __init__(self, config: ServerConfig, table: LeaseTable) -> None:
        self.config = config
        self.table = table
        self.counters: dict[str, int] = {}
        network = config.network
        self._hosts = int(network.network_address) + 1, int(network.broadcast_address) - 1
        self._pool = (int(config.pool[0]), int(config.pool[1])) if config.pool is not None else None
        self._cursor = 0  # where the search for a never-used pool address resumes
        self._reservations = {p.ip: p.mac for p in config.phones.values() if p.ip is not None}
        self._server_id = address(config.server_id.packed)  # what option 54 parses to (`is`: no __eq__)
        self._reserved_numbers = frozenset(int(ip) for ip in config.reserved)  # ints hash in C
        self._options = OptionBlocks(config.options_for).get  # a client's encoded options, cached
        self._handlers: dict[int, Callable[[_Ask], Result]] = {
            DISCOVER: self._discover, REQUEST: self._request, DECLINE: self._decline, RELEASE: self._release,
            INFORM: self._inform}
        self._texts: dict[int, str] = {}  # address (as int) -> its text (str() costs more than a look-up)
        self.silenced: str | None = None  # why the server no longer answers anything (a rival, `stop`)
        self.parse: Callable[[bytes], Message] = parse
        self._address: Callable[[bytes], IPv4Address] = address  # message.address_maker's with the module
        self.native: Any = None  # labkit.native._dhcp when use_native chose it
        self._pack: Callable[..., bytes] | None = None  # reply_wire's last step in C (use_native)
        self._fact, self._result, self._datagram, self._ask = _makers(None)

    def use_native(self, module: Any) -> None:
        """Parse and put replies together with labkit.native._dhcp (same results, fewer steps);
        the pure path stays for everything the compiled one leaves to it."""
        self.native = module
        self.parse, self._pack, self._address = native_parser(module), module.reply, address_maker(module)
        self._fact, self._result, self._datagram, self._ask = _makers(module.Maker)

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    # -- entry point ---------------------------------------------------------------------------
    def handle(self, data: bytes, source: tuple[str, int], now: float) -> Result:
        if self.silenced is not None:
            return Result((), (), (Fact("dropped", f"{len(data)} bytes", f"not answered: {self.silenced}",
                                        "silenced"),))
        try:
            request = self.parse(data)
        except CodecError as exc:
            self._count("malformed")
            fact = Fact("malformed", f"{len(data)} bytes", "dropped", "malformed", None,
                        MappingProxyType({"error": str(exc)}))
            return Result((), (), (fact,))
        value = request.options.get(53)  # request.message_type, without the property's call
        kind = value[0] if value and len(value) == 1 else None
        name = _ACTIONS.get(kind or 0, "bootp")
        counters = self.counters
        counters[name] = counters.get(name, 0) + 1
        phone = self.config.phones.get(request.mac)
        ask = self._ask(request, phone, name, self._summary(request, kind), now, (self._fact, self._result))
        if request.op != BOOTREQUEST or kind is None:
            return ask.said("ignored (not a DHCP request)", "ignored")
        if phone is None and not self.config.answer_any:
            self._count("unknown-client")
            return ask.said("no answer (not in the inventory)", "unknown-client")
        handler = self._handlers.get(kind)
        if handler is None:
            return ask.said("ignored", "ignored")
        return handler(ask)

    def address_text(self, ip: IPv4Address) -> str:
        """str(ip), from a bounded cache keyed by the address's integer: an IPv4Address hashes in
        Python (hex, then a string hash), its `_ip` int in C; relay and server addresses hit."""
        key = ip._ip  # type: ignore[attr-defined]  # CPython's int behind int(ip), without a call
        text = self._texts.get(key)
        if text is None:
            if len(self._texts) >= TEXT_CACHE:
                self._texts.clear()
            text = self._texts[key] = dotted(key)  # str(ip), without its 3 Python calls
        return text

    def _summary(self, request: Message, kind: int | None) -> str:
        # request.type_name, from the type handle() has read already
        type_name = "BOOTP" if kind is None else MESSAGE_TYPES.get(kind) or f"type {kind}"
        parts = [type_name, request.mac]
        options = request.options
        if 60 in options:
            vendor = request.text_option(60)
            if vendor:
                parts.append(f"vendor {vendor!r}")
        wanted = options.get(50)
        if wanted is not None and len(wanted) == 4:
            parts.append(f"wants {dotted(int.from_bytes(wanted, 'big'))}")  # str(IPv4Address(wanted))
        ciaddr, giaddr = request.ciaddr, request.giaddr
        if ciaddr is not ZERO:
            parts.append(f"ciaddr {self._texts.get(ciaddr._ip) or self.address_text(ciaddr)}")  # type: ignore[attr-defined]
        if giaddr is not ZERO:
            parts.append(f"via relay {self._texts.get(giaddr._ip) or self.address_text(giaddr)}")  # type: ignore[attr-defined]
        return " ".join(parts)

    # -- address choice -------------------------------------------------------------------------
    def _usable(self, ip: IPv4Address, mac: str, now: float) -> bool:
        number = ip._ip  # type: ignore[attr-defined]  # int(ip) without a Python call
        if not self._hosts[0] <= number <= self._hosts[1]:  # on the network, not its first or last
            return False
        table = self.table
        holder = table.holder(ip, now)
        # an empty quarantine (almost always) needs no look-up: an address hashes in Python
        return (holder is None or holder == mac) and not (table.declined and table.is_quarantined(ip, now))

    def _in_pool(self, ip: IPv4Address) -> bool:
        pool = self._pool
        number = ip._ip  # type: ignore[attr-defined]
        return pool is not None and pool[0] <= number <= pool[1] and number not in self._reserved_numbers

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
        if self._pool is None:
            return None
        first, last = self._pool
        size = last - first + 1
        table, reserved, (low, high) = self.table, self._reserved_numbers, self._hosts
        by_number, offered, declined = table.by_number, table.offered, table.declined
        for step in range(size):
            number = first + (self._cursor + step) % size
            if number in reserved or not low <= number <= high or number in by_number:
                continue
            # `_usable` for an address without a lease, each look-up once (the tables are int-keyed)
            offer = offered.get(number)
            if offer is not None and offer[1] > now and offer[0] != mac:
                continue
            ip = self._address(number.to_bytes(4, "big"))  # cached: the REQUEST's option 50 finds it
            if declined and table.is_quarantined(ip, now):
                continue
            self._cursor = (number - first + 1) % size
            return ip
        reusable = [(lease.expires, lease.ip) for lease in self.table.by_number.values()
                    if self._in_pool(lease.ip) and self._usable(lease.ip, mac, now)]
        return min(reusable)[1] if reusable else None

    def _allowed(self, ip: IPv4Address, phone: PhoneEntry | None, mac: str, now: float) -> bool:
        """May this client hold `ip`? Its fixed address, or a usable pool address."""
        if phone is not None and phone.ip is not None:
            return ip == phone.ip and self._usable(ip, mac, now)
        return self._in_pool(ip) and self._usable(ip, mac, now)

    # -- replies --------------------------------------------------------------------------------
    def _destination(self, request: Message, kind: int, yiaddr: IPv4Address) -> tuple[tuple[str, int], bool]:
        """RFC 2131 §4.1: relay first, then ciaddr, then broadcast, else unicast to yiaddr by L2."""
        if request.giaddr is not ZERO:
            return (self.address_text(request.giaddr), self.config.server_port), False
        if kind == NAK:
            return (str(BROADCAST), self.config.client_port), False
        if request.ciaddr is not ZERO:
            return (self.address_text(request.ciaddr), self.config.client_port), False
        if request.broadcast or yiaddr == ZERO:
            return (str(BROADCAST), self.config.client_port), False
        return (self.address_text(yiaddr), self.config.client_port), True

    def _reply(self, request: Message, kind: int, yiaddr: IPv4Address = ZERO, *,
               with_lease: bool = True) -> tuple[list[int], Datagram]:
        """The reply's datagram and the codes of the options it carries besides 53 and 82."""
        if kind == NAK:
            codes = [54]
            block, code_set = encode_options([(54, self.config.server_id.packed)]), frozenset(codes)
        else:
            block, code_set, codes, quick = self._options(request, with_lease)
            giaddr, pack = request.giaddr, self._pack
            if quick and pack is not None and giaddr is not ZERO and 82 not in request.options:
                # reply_wire's shortcut, checked once per block: relayed, no option 82 to echo
                relay: Any = giaddr  # its `_ip` is CPython's int behind int(ip), read without a call
                to = (self._texts.get(relay._ip) or self.address_text(giaddr), self.config.server_port)
                wire = pack(request.htype, request.chaddr, request.xid, request.flags,
                            request.ciaddr._ip if kind == ACK else 0, yiaddr._ip, relay._ip,  # type: ignore[attr-defined]
                            _TYPE_TLVS[kind], block, b"")
                return codes, self._datagram(wire, to, False)
        flags = request.flags
        if kind == NAK and request.giaddr is not ZERO:
            flags |= BROADCAST_FLAG  # a relay must broadcast a NAK to the client (RFC 2131 §4.3.2)
        size = request.options.get(57, b"")
        max_size = int.from_bytes(size, "big") if len(size) == 2 else 0
        to, l2 = self._destination(request, kind, yiaddr)
        wire = reply_wire(request, kind, block, code_set, yiaddr=yiaddr, flags=flags, max_size=max_size,
                          pack=self._pack)
        return codes, self._datagram(wire, to, l2)

    # -- message types --------------------------------------------------------------------------
    def _discover(self, ask: _Ask) -> Result:
        request, phone = ask.request, ask.phone
        ip = self._choose(request, phone, ask.now)
        if ip is None:
            self._count("no-address")
            why = "fixed address in use by another client" if phone and phone.ip else "pool exhausted"
            return ask.said(f"no offer: {why}", "no-address")
        self.table.offer(request.mac, ip, ask.now + self.config.offer_hold)
        codes, datagram = self._reply(request, OFFER, ip)
        to = datagram.to or ("", 0)
        text = self.address_text(ip)
        return ask.said(f"OFFER {text} to {to[0]}:{to[1]}", "ok", datagram, ip=text,
                        options=_reply_codes(OFFER, codes, request))

    def _request_state(self, ask: _Ask) -> tuple[str, IPv4Address] | Result:
        """RFC 2131 §4.3.2: which state the client is in and the address it asks for, or the answer
        when there is nothing to bind."""
        request, phone, mac = ask.request, ask.phone, ask.request.mac
        server_id = request.ip_option(54)
        wanted = request.ip_option(50)
        if server_id is not None:  # SELECTING
            if server_id is not self._server_id and server_id != self.config.server_id:
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
        if request.ciaddr is not ZERO:  # RENEWING (unicast) or REBINDING (broadcast)
            state = "rebinding" if request.broadcast or request.giaddr is not ZERO else "renewing"
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
        text = self.address_text(candidate)
        return ask.said(f"ACK {text} until {int(lease.expires)}", "ok", datagram, state=state, ip=text)

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
