"""What the virtual phone asks the world for, and what it gets back (plain data, no I/O).

The phone's logic is a generator that yields these requests; a driver performs them (real
sockets, or a test's script) and sends the results back in. So the logic is tested without a
network, and a swarm compresses hours of retry delays with its own clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from labkit.phone.discovery import SrvTarget


@dataclass(frozen=True)
class DhcpOffer:
    ip: str  # yiaddr
    server: str  # option 54, the server identifier the REQUEST names


@dataclass(frozen=True)
class DhcpNak:
    server: str = ""


@dataclass(frozen=True)
class DhcpTransmit:
    """Send one DHCP message, or send it again, and wait up to `wait` phone seconds for its answer.

    DISCOVER is answered with a `DhcpOffer`; REQUEST (SELECTING, for `offer`) and RENEW (RFC 2131
    §4.4.5, ciaddr = `lease.ip`, unicast to its server) with a `Lease` (the ACK) or a `DhcpNak`.
    None: nothing for `xid` arrived in time. A retransmission keeps the xid, so an answer to an
    earlier transmission of the same message still counts."""

    kind: Literal["DISCOVER", "REQUEST", "RENEW"]
    xid: int
    wait: float
    secs: int = 0  # seconds since the phone began this acquisition (the BOOTP `secs` field)
    attempt: int = 1  # 1 for the first transmission, then 2, 3, ...
    offer: DhcpOffer | None = None
    lease: Lease | None = None


@dataclass(frozen=True)
class Lease:
    ip: str
    server: str  # option 54
    options: dict[int, Any]  # decoded values, as labkit.protocols.dhcp.options.decode_value gives
    lease_time: int = 0


@dataclass(frozen=True)
class LeaseFailed:
    reason: str


@dataclass(frozen=True)
class LookupSrv:
    name: str  # _ciscoprov-https._tls.lab.example


@dataclass(frozen=True)
class LookupA:
    name: str


@dataclass(frozen=True)
class DnsAnswer:
    rcode: str  # "NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "TIMEOUT"
    srv: tuple[SrvTarget, ...] = ()
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class Fetch:
    url: str
    method: str = "GET"  # POST with `--post`
    body: bytes = b""
    uid: str | None = None  # credentials to answer a 401/407 with (Basic or Digest)
    pwd: str | None = None
    user_agent: str = ""
    # The chapter's HTTP proxy set-up: send through this proxy (http://host:port); answer its
    # 407 with Proxy-Authorization from proxy_uid/proxy_pwd.
    proxy: str | None = None
    proxy_uid: str | None = None
    proxy_pwd: str | None = None
    # HTTPS name checks. SRV provisioning: the certificate must name this (DHCP-supplied)
    # domain, and the address of the certificate's name (a DNS lookup) must be the server's.
    cert_domain: str | None = None
    check_cert_address: bool = False
    headers: tuple[tuple[str, str], ...] = ()  # more request headers (a report's Content-Encoding)


@dataclass(frozen=True)
class FetchResult:
    """`status` is the HTTP status (TFTP maps: file -> 200, error 1 -> 404, other errors -> 403);
    None when no answer came (timeout, refused, TLS failure): `error` says which."""

    status: int | None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    tls_names: tuple[str, ...] = ()  # HTTPS: the server certificate's CN first, then its DNS SANs

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Log:
    message: str  # sent to the lab's syslog, as the device's Log_*_Msg


@dataclass(frozen=True)
class Now:
    """Ask the driver's clock for the time (the timeline is stamped with it)."""


Effect = DhcpTransmit | LookupSrv | LookupA | Fetch | Sleep | Log | Now
