"""Which services the lab runs, where they listen, and how HTTP(S) and TFTP behave."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Annotated, Literal

from pydantic import Field

from labkit.inventory.proxy import ProxyService
from labkit.inventory.types import Port, Strict, Text


class Service(Strict):
    enabled: bool = True
    bind: IPv4Address | None = None  # default: the lab address
    port: Port | None = None  # default: the standard port


class TftpService(Service):
    upload_dir: str | None = None  # WRQ lands here; without it every write is refused


class HttpAuth(Strict):
    """What phones must answer with `--uid/--pwd` (reference §5: Basic and Digest)."""

    user: Text
    password: Text
    scheme: Literal["basic", "digest"] = "basic"
    realm: Text = "labkit"


class ContentEncryption(Strict):
    """RFC 8188 `Content-Encoding: aes128gcm` for per-phone profiles (firmware >= 11.2(3))."""

    ikm: Text  # the phone's IKM_HTTP_Encrypt_Content, used as its ASCII bytes
    keyid: Text = ""
    record_size: Annotated[int, Field(ge=18, le=2**31 - 1)] = 4096


class Redirect(Strict):
    to: Text  # a path on this server or a full URL
    status: Literal[301, 302, 303, 307, 308] = 302


class ConnectionLimits(Strict):
    """What one HTTP(S) client may hold (slowloris, connection floods)."""

    header_timeout: Annotated[float, Field(gt=0, le=3600)] = 10.0  # s to a complete request head
    body_timeout: Annotated[float, Field(gt=0, le=3600)] = 20.0  # s to a complete request body
    per_client: Annotated[int, Field(ge=1, le=65535)] | None = None  # default: 16, all on loopback
    connections: Annotated[int, Field(ge=1, le=65535)] = 256  # open at once, all clients


class HttpService(Service):
    limits: ConnectionLimits = Field(default_factory=ConnectionLimits)
    auth: HttpAuth | None = None
    encrypt: ContentEncryption | None = None
    # moved profiles: request path -> where it is now (phones follow 301/302 at once, reference §5)
    redirects: dict[Annotated[str, Field(pattern=r"^/")], Redirect] = Field(default_factory=dict)


class Services(Strict):
    dhcp: Service = Field(default_factory=Service)
    dns: Service = Field(default_factory=Service)
    tftp: TftpService = Field(default_factory=TftpService)
    http: HttpService = Field(default_factory=HttpService)
    https: HttpService = Field(default_factory=HttpService)
    syslog: Service = Field(default_factory=Service)
    proxy: ProxyService = Field(default_factory=ProxyService)  # a forward HTTP proxy (labkit.inventory.proxy)
