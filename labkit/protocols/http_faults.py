"""HTTP fault actions as plain values (the plan converts the inventory's rules into these)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HttpFaultAction:
    status: int | None = None
    location: str | None = None  # for 301/302
    authenticate: str | None = None  # WWW-Authenticate (or Proxy-Authenticate) for 401/407
    delay: float | None = None
    slow: int | None = None  # body bytes per second
    truncate: int | None = None  # send only this many bytes
    wrong_length: int | None = None  # announce this Content-Length
    corrupt: bool = False  # flip bytes in the body
    wrong_key: str | None = None  # re-encrypt the profile with this key
    # framing (labkit.protocols.http_wire.Framing): version, chunked coding, no Content-Length
    version: str | None = None  # "1.0" or "1.1"
    chunked: bool = False
    chunk_size: int | None = None
    chunk_extension: str | None = None  # "name" or "name=value", on every chunk-size line
    trailers: tuple[tuple[str, str], ...] = ()
    no_length: bool = False

    @property
    def frames(self) -> bool:
        """Does this action change how the answer is framed?"""
        return self.version is not None or self.chunked or self.no_length
