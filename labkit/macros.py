"""The Cisco MPP macro engine: `$NAME`, `$(NAME)`, `$(NAME:p)`, `$(NAME:p:q)` and `$$`.

Pure string functions, shared by the server (rendering profile rules) and the phone
simulator (expanding the URLs it fetches). Rules from the provisioning guides (reference
§3.1, §3.2): unknown names stay verbatim and expansion is not recursive.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

from labkit.errors import CodecError

__all__ = ["expand", "identity_macros", "normalize_mac", "psn_for_model"]

# A bare name is a run of upper-case letters and digits starting with a letter.
_BARE_RUN = re.compile(r"[A-Z][A-Z0-9]*")
# The parenthesised form, with the optional 0-based offset and length.
_PAREN = re.compile(r"\(([A-Z][A-Z0-9]*)(?::([0-9]+)(?::([0-9]+))?)?\)")


def expand(text: str, values: Mapping[str, str]) -> str:
    """Expand the MPP macros in `text` from `values` (name without `$` -> value).

    `$$` gives `$`. For the bare form the longest prefix of the upper-case run that is a
    key of `values` is the name, so `$MA.cfg`, `$MAU` and `$MAC` all work and `$MAXYZ`
    (with only MA known) gives the MA value followed by `XYZ`. Anything that is not a
    known macro, and every value substituted, is copied as it is (no second pass).
    """
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        dollar = text.find("$", i)
        if dollar < 0:
            out.append(text[i:])
            break
        out.append(text[i:dollar])
        i = dollar + 1  # just past the `$`
        if i < n and text[i] == "$":
            out.append("$")
            i += 1
            continue
        paren = _PAREN.match(text, i)
        if paren is not None:
            name, offset, length = paren.groups()
            if name in values:
                value = values[name]
                start = int(offset) if offset is not None else 0
                end = start + int(length) if length is not None else None
                out.append(value[start:end])
            else:
                out.append(text[dollar : paren.end()])  # unknown: verbatim, parentheses too
            i = paren.end()
            continue
        bare = _BARE_RUN.match(text, i)
        if bare is not None:
            run = bare.group()
            for cut in range(len(run), 0, -1):
                if run[:cut] in values:
                    out.append(values[run[:cut]])
                    out.append(run[cut:])
                    break
            else:
                out.append("$" + run)
            i = bare.end()
            continue
        out.append("$")  # a lone `$` (end of text, lower case, `$(` not closing) is literal
    return "".join(out)


_MAC_FORMS = (
    re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}", re.IGNORECASE),
    re.compile(r"[0-9a-f]{2}(?:-[0-9a-f]{2}){5}", re.IGNORECASE),
    re.compile(r"[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}", re.IGNORECASE),
    re.compile(r"[0-9a-f]{12}", re.IGNORECASE),
)


def normalize_mac(text: str) -> str:
    """Return `text` as a lower-case colon-separated MAC (`00:0e:08:aa:bb:cc`).

    Accepts `00:0E:08:AA:BB:CC`, `00-0e-08-aa-bb-cc`, `000e.08aa.bbcc` and
    `000e08aabbcc` (surrounding whitespace ignored); anything else raises CodecError.
    """
    candidate = text.strip()
    # The explicit ASCII classes keep out other scripts' digits, which int(.., 16) accepts.
    if not any(form.fullmatch(candidate) for form in _MAC_FORMS):
        raise CodecError(f"not a MAC address: {text!r}")
    digits = re.sub(r"[^0-9a-fA-F]", "", candidate).lower()
    return ":".join(digits[k : k + 2] for k in range(0, 12, 2))


def psn_for_model(model: str) -> str:
    """The `$PSN` value for a model: `CP-8851-3PCC` -> `8851-3PCC` (reference §3.2, S6).

    A model without the `CP-` prefix is returned unchanged.
    """
    if model[:3].upper() == "CP-":
        return model[3:]
    return model


def identity_macros(
    *,
    mac: str,
    model: str,
    serial: str | None = None,
    ip: str | None = None,
    sw_version: str | None = None,
    hw_version: str | None = None,
) -> dict[str, str]:
    """The identity macros of one phone: MA, MAU, MAC, PN, PSN and, when given, SN, IP,
    SWVER, HWVER. A bad MAC or IP address raises CodecError."""
    colon = normalize_mac(mac)
    bare = colon.replace(":", "")
    macros = {
        "MA": bare,
        "MAU": bare.upper(),
        "MAC": colon,
        "PN": model,
        "PSN": psn_for_model(model),
    }
    if serial is not None:
        macros["SN"] = serial
    if ip is not None:
        try:
            macros["IP"] = str(ipaddress.ip_address(ip.strip()))
        except ValueError as exc:
            raise CodecError(f"not an IP address: {ip!r}") from exc
    if sw_version is not None:
        macros["SWVER"] = sw_version
    if hw_version is not None:
        macros["HWVER"] = hw_version
    return macros
