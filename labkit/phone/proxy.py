"""The phone's HTTP proxy, from its profile's "HTTP Proxy Settings" (pure).

Names and defaults as the admin guides' "Parameters for HTTP Proxy Settings" (Voice > System;
7832/8800 MPP AG 11.3(1)+, chapter "Cisco IP Phone Security", "Set Up a Proxy Server"), all [V]:
`Proxy_Mode` Auto|Manual|Off (default Off), `Use_Auto_Discovery__WPAD_` (Yes), `PAC_URL`,
`Proxy_Host` ("the scheme (http:// or https://) is not required"), `Proxy_Port` (default 3128),
`Proxy_Server_Requires_Authentication` (default No; "takes effect when Proxy Mode is set to
Manual"), `Proxy_Username`, `Proxy_Password`. "The HTTP proxy feature applies to all the
applications that use the HTTP protocol", provisioning, firmware upgrade and status reports among
them: HTTP and HTTPS URLs go through it, TFTP does not.

Auto (a PAC file found by WPAD or given by PAC_URL) is not simulated: such a phone goes direct [I].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from labkit.phone.effects import Fetch

DEFAULT_PORT = 3128  # "Proxy Port ... Default: 3128"


@dataclass(frozen=True)
class ProxySettings:
    host: str
    port: int = DEFAULT_PORT
    uid: str | None = None
    pwd: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _param(params: Mapping[str, str], name: str) -> str:
    """A parameter's value, its name matched without regard to case (XML names vary in case)."""
    if name in params:
        return str(params[name]).strip()
    lowered = name.lower()
    return next((str(v).strip() for k, v in params.items() if k.lower() == lowered), "")


def _yes(value: str) -> bool:
    return value.lower() in ("yes", "true", "1", "on")


def proxy_for(params: Mapping[str, str], url: str) -> ProxySettings | None:
    """The proxy the phone sends a request for `url` through, or None (direct)."""
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        return None
    if _param(params, "Proxy_Mode").lower() != "manual":
        return None  # Off (the default), or Auto: PAC/WPAD not simulated [I]
    host = _param(params, "Proxy_Host")
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0]
    if not host:
        return None
    port = DEFAULT_PORT
    if host.count(":") == 1:  # `proxy.example.com:8080` in the host field: taken as host and port [I]
        host, _, given = host.partition(":")
        port = int(given) if given.isdigit() else port
    port_text = _param(params, "Proxy_Port")
    if port_text.isdigit() and 0 < int(port_text) < 65536:
        port = int(port_text)
    uid = pwd = None
    if _yes(_param(params, "Proxy_Server_Requires_Authentication")):
        uid, pwd = _param(params, "Proxy_Username"), _param(params, "Proxy_Password")
    return ProxySettings(host, port, uid, pwd)



def with_wire(fetch: Fetch, params: Mapping[str, str], cert_domain: str | None = None,
              check_names: bool = True) -> Fetch:
    """`fetch` with the fields the phone core sets for its URL: the proxy of its profile, and the
    certificate-name checks (`cert_domain` under SRV; `check_names` False turns both off)."""
    proxy = proxy_for(params, fetch.url)
    return replace(fetch, proxy=proxy.url if proxy else None, proxy_uid=proxy.uid if proxy else None,
                   proxy_pwd=proxy.pwd if proxy else None,
                   cert_domain=cert_domain if check_names else None, check_cert_address=check_names)
