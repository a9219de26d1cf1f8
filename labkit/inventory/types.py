"""Field types shared by the inventory's models (validated, with messages that say what was expected)."""

from __future__ import annotations

import re
from ipaddress import IPv4Address
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from labkit.errors import CodecError
from labkit.macros import normalize_mac

_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _domain(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a DNS name such as lab.example")
    name = value.rstrip(".").lower()
    if not name or len(name) > 253 or not all(_LABEL_RE.match(p) for p in name.split(".")):
        raise ValueError(f"expected a DNS name such as lab.example, got {value!r}")
    return name


def _mac(value: Any) -> str:
    if not isinstance(value, str):
        # YAML 1.1 reads 00:11:22:33:44:55-like sexagesimal numbers only for some patterns; be clear
        raise ValueError(f"expected a MAC address such as 00:11:22:33:44:55 (quote it), got {value!r}")
    try:
        return normalize_mac(value)
    except CodecError as exc:
        raise ValueError(str(exc)) from None


def _ascii_text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"expected text, got {value!r}")
    text = str(value)
    if not text:
        raise ValueError("expected non-empty text")
    if not text.isascii() or "\x00" in text:
        raise ValueError("expected ASCII text without NUL (phones only read ASCII)")
    return text


def _hex_bytes(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"expected hex bytes such as '0a 0b' or '0a:0b', got {value!r}")
    cleaned = re.sub(r"[\s:.-]", "", value)
    if cleaned.lower().startswith("0x"):
        cleaned = cleaned[2:]
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise ValueError(f"expected hex bytes such as '0a 0b' or '0a:0b', got {value!r}") from None


def _ip_list(value: Any) -> Any:
    # one address is a list of one: `routers: 10.0.0.1` is what people write
    return [value] if isinstance(value, (str, IPv4Address)) else value


Domain = Annotated[str, BeforeValidator(_domain)]
Mac = Annotated[str, BeforeValidator(_mac)]
Text = Annotated[str, BeforeValidator(_ascii_text)]
HexBytes = Annotated[bytes, BeforeValidator(_hex_bytes)]
IPv4List = Annotated[list[IPv4Address], BeforeValidator(_ip_list), Field(min_length=1)]
Port = Annotated[int, Field(ge=1, le=65535)]
UInt32 = Annotated[int, Field(ge=0, le=0xFFFFFFFF)]
