"""The lab's forward HTTP proxy (`services.proxy`): the proxy a phone's "HTTP Proxy Settings" name.

Off unless the inventory turns it on. `mode` says how it treats every request: `pass` forwards it
(absolute-form http:// requests, CONNECT tunnels for https://), `auth` first demands credentials
(407 with Proxy-Authenticate, Basic or Digest), `fail` answers 502 or closes the connection at once
(`failure`). It forwards only to the lab's own addresses.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Annotated, Literal

from pydantic import Field, model_validator

from labkit.inventory.types import Port, Strict, Text


class ProxyService(Strict):
    enabled: bool = False  # the lab runs no proxy unless asked
    bind: IPv4Address | None = None  # default: the lab address
    port: Port | None = None  # default: 3128, the phone's documented Proxy_Port default
    mode: Literal["pass", "auth", "fail"] = "pass"
    scheme: Literal["basic", "digest"] = "basic"  # the challenge `auth` sends
    user: Text | None = None
    password: Text | None = None
    realm: Text = "labkit proxy"
    failure: Literal["502", "close"] = "502"  # what `fail` does
    connections: Annotated[int, Field(ge=1, le=4096)] = 64  # open at once; more are closed at once
    timeout: Annotated[float, Field(gt=0, le=3600)] = 30.0  # s for a request head, and idle in a tunnel

    @model_validator(mode="after")
    def _credentials(self) -> ProxyService:
        if self.mode == "auth" and (self.user is None or self.password is None):
            raise ValueError("mode auth needs `user` and `password`")
        return self
