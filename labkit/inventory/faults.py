"""Fault rules as the inventory declares them (pydantic schema) and as `--fault` gives them.

A rule has a match (MAC, model, phone group, file path pattern, DNS name, DHCP message), one
action for one service, and when it applies (the first N times, every Nth time, with a
probability, during a time window since the lab started). The plan (`labkit.plan.faults`)
converts these into the pure engine's rules (`labkit.faults.engine.Rule`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from labkit.errors import LabkitError
from labkit.inventory.types import HexBytes, Mac, Strict, Text

Service = Literal["dhcp", "dns", "tftp", "http", "acs"]
SERVICE_NAMES: tuple[Service, ...] = ("dhcp", "dns", "tftp", "http", "acs")


class FaultMatch(Strict):
    mac: Mac | None = None
    model: Text | None = None
    group: Text | None = None
    path: Text | None = None  # shell pattern on the requested path, e.g. "/Cisco/*"
    name: Text | None = None  # shell pattern on the DNS name asked for; ACS: the CPE's message
    message: Literal["DISCOVER", "REQUEST", "INFORM"] | None = None  # DHCP: which request


class FaultWhen(Strict):
    first: Annotated[int, Field(ge=1)] | None = None  # only the first N matching requests
    every: Annotated[int, Field(ge=1)] | None = None  # every Nth matching request
    probability: Annotated[float, Field(ge=0, le=1)] | None = None
    after: Annotated[float, Field(ge=0)] | None = None  # seconds since the lab started
    until: Annotated[float, Field(ge=0)] | None = None


class DhcpFault(Strict):
    drop: Literal["offer", "ack", "any"] | None = None
    delay: Annotated[float, Field(ge=0, le=300)] | None = None
    nak: bool = False
    omit: list[Annotated[int, Field(ge=1, le=254)]] = Field(default_factory=list)
    replace: dict[Annotated[int, Field(ge=1, le=254)], HexBytes] = Field(default_factory=dict)
    malformed: Annotated[int, Field(ge=1, le=254)] | None = None  # this option's length overruns


class DnsFault(Strict):
    rcode: Literal["SERVFAIL", "NXDOMAIN", "REFUSED"] | None = None
    drop: bool = False  # no answer at all
    srv_port: Annotated[int, Field(ge=0, le=65535)] | None = None
    srv_target: Text | None = None
    ttl0: bool = False
    truncate: bool = False


class TftpFault(Strict):
    error: Annotated[int, Field(ge=0, le=8)] | None = None
    drop_oack: bool = False
    drop_block: Annotated[int, Field(ge=1)] | None = None  # the first transmission of block N
    duplicate_block: Annotated[int, Field(ge=1)] | None = None
    stall_after: Annotated[int, Field(ge=0)] | None = None  # blocks sent, then silence
    wrong_tsize: Annotated[int, Field(ge=0)] | None = None
    refuse_options: bool = False


ChunkExtension = Annotated[str, Field(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+(=[^\r\n;\"]*)?$")]


class HttpFault(Strict):
    status: Annotated[int, Field(ge=100, le=599)] | None = None
    location: Text | None = None  # for 301/302
    authenticate: Text | None = None  # WWW-Authenticate for 401/407
    delay: Annotated[float, Field(ge=0, le=300)] | None = None
    slow: Annotated[int, Field(ge=1)] | None = None  # body bytes per second
    truncate: Annotated[int, Field(ge=0)] | None = None  # send only this many bytes
    wrong_length: Annotated[int, Field(ge=0)] | None = None  # announce this Content-Length
    corrupt: bool = False  # flip bytes in the body
    wrong_key: Text | None = None  # re-encrypt the profile with this key
    # framing of the answer (reference §5: phones take HTTP/1.0, 1.1 and chunked on 1.1)
    version: Literal["1.0", "1.1"] | None = None  # answer in this HTTP version
    chunked: bool = False  # Transfer-Encoding: chunked (1.1 only)
    chunk_size: Annotated[int, Field(ge=1, le=1 << 20)] | None = None
    chunk_extension: ChunkExtension | None = None  # "name" or "name=value" on every chunk
    trailers: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9-]+$")], Text] = Field(default_factory=dict)
    no_length: bool = False  # no Content-Length: the body ends when the connection closes


class AcsFault(Strict):
    """What the ACS does to a CPE message it matched (`match.name`: Inform, TransferComplete,
    GetRPCMethods, a response such as GetParameterValuesResponse, or `empty` for an empty POST)."""

    fault: Literal[8000, 8001, 8002, 8003, 8004, 8005] | None = None  # a CWMP fault instead
    delay: Annotated[float, Field(ge=0, le=300)] | None = None
    drop: bool = False  # close the connection unanswered
    unauthorized: bool = False  # 401 whatever the credentials
    wrong_id: bool = False  # answer with another cwmp:ID than the request's


class FaultRule(Strict):
    name: Text | None = None
    match: FaultMatch = Field(default_factory=FaultMatch)
    when: FaultWhen = Field(default_factory=FaultWhen)
    dhcp: DhcpFault | None = None
    dns: DnsFault | None = None
    tftp: TftpFault | None = None
    http: HttpFault | None = None
    acs: AcsFault | None = None

    @model_validator(mode="after")
    def _one_service(self) -> FaultRule:
        given = [s for s in SERVICE_NAMES if getattr(self, s) is not None]
        if len(given) != 1:
            raise ValueError("a fault rule takes exactly one of " + ", ".join(SERVICE_NAMES))
        return self

    @property
    def service(self) -> Service:
        return next(s for s in SERVICE_NAMES if getattr(self, s) is not None)

    @property
    def action(self) -> Any:
        return getattr(self, self.service)

    def label(self, index: int) -> str:
        return self.name or f"fault {index + 1} ({self.service})"


class FaultError(LabkitError):
    """A fault rule given on the command line that does not read."""


def parse_cli_rule(text: str) -> FaultRule:
    """`--fault '{match: {mac: ...}, http: {status: 404}, when: {first: 2}}'` (YAML flow syntax)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FaultError(f"--fault {text!r}: not YAML: {exc}") from None
    if not isinstance(data, dict):
        raise FaultError(f"--fault {text!r}: expected a mapping such as "
                         "'{http: {status: 404}, when: {first: 2}}'")
    try:
        return FaultRule.model_validate(data)
    except ValidationError as exc:
        raise FaultError(f"--fault {text!r}: {_rule_problem(exc.errors()[0])}") from None


def _rule_problem(error: Any) -> str:
    """The first thing wrong with a `--fault` rule, in labkit's words."""
    from labkit.inventory.load import allowed_keys
    from labkit.inventory.wording import did_you_mean, plain_message

    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    where = ".".join(str(p) for p in loc)
    message = plain_message(error["type"], error["msg"], error.get("ctx"))
    if error["type"] == "extra_forbidden" and loc:
        allowed = allowed_keys(loc[:-1], FaultRule)
        message = f"unknown key {loc[-1]!r}" + did_you_mean(str(loc[-1]), allowed)
        if allowed:
            message += " (expected one of: " + ", ".join(allowed) + ")"
    elif error.get("input") is not None and not isinstance(error["input"], (dict, list)) \
            and error["type"] != "value_error":
        message += f" (got {error['input']!r})"
    return f"{where}: {message}" if where else message
