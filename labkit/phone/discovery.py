"""Where a factory-fresh MPP phone looks for its profile (pure; reference §1.2, §1.3, §2).

DHCP values are taken in `DHCP_Option_To_Use` order (default 66,160,159,150,60,43,125). A URL
value is tried as given (when it has a path), then with the tails `/$PSN.xml` and
`/Cisco/$PN/$MA.cfg`; a bare address or host is tried over TFTP, then HTTP, then HTTPS with
those tails; `a;b` values in order. With nothing usable from DHCP the phone asks DNS for
`_ciscoprov-https._tls` then `_ciscoprov-http._tcp` in its DHCP domain.

Precedence between options and the SRV https/http order are not documented by Cisco ([?] in
the reference): both are parameters here, with the documented list order as the default.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from labkit import macros

DEFAULT_OPTION_ORDER: tuple[int, ...] = (66, 160, 159, 150, 60, 43, 125)
# what an MPP phone asks for in option 55 (reference §1.1, Satori fingerprint)
MPP_PARAMETER_REQUEST_LIST: tuple[int, ...] = (1, 3, 6, 15, 35, 66, 150, 2, 7, 42, 43, 58, 59, 159, 160)
TAILS: tuple[str, ...] = ("/$PSN.xml", "/Cisco/$PN/$MA.cfg")
BARE_SCHEMES: tuple[str, ...] = ("tftp", "http", "https")
SRV_SERVICES: tuple[tuple[str, str], ...] = (
    ("_ciscoprov-https._tls", "https"),
    ("_ciscoprov-http._tcp", "http"),
)
TEXT_OPTIONS = {66, 159, 160, 60}


@dataclass(frozen=True)
class Candidate:
    url: str  # macros expanded
    source: str  # why the phone tries it, e.g. "option 160", "option 66 (bare address)"


@dataclass(frozen=True)
class SrvTarget:
    priority: int
    weight: int
    port: int
    target: str


def _join(base: str, tail: str) -> str:
    return base.rstrip("/") + tail


def value_candidates(value: str, identity: Mapping[str, str], source: str,
                     tails: tuple[str, ...] = TAILS) -> list[Candidate]:
    """Candidates for one option value (`url`, `host`, `ip`, or `a;b` of those); `tails`: the
    factory names the phone's firmware generation requests (labkit.phone.traits)."""
    out: list[Candidate] = []
    for part in (p.strip() for p in value.split(";")):
        if not part:
            continue
        if "://" in part:
            scheme, rest = part.split("://", 1)
            url = f"{scheme.lower()}://{rest}"  # firmware accepts `HTTP://` (CSCvi48553)
            try:
                path = urlsplit(url).path
            except ValueError:
                continue  # an unparseable URL is skipped, as the phone would fail it
            if path not in ("", "/"):
                out.append(Candidate(macros.expand(url, identity), source))
            out += [Candidate(macros.expand(_join(url, t), identity), source) for t in tails]
        else:
            for scheme in BARE_SCHEMES:
                base = f"{scheme}://{part}"
                out += [
                    Candidate(macros.expand(_join(base, t), identity), f"{source} (bare, {scheme})")
                    for t in tails
                ]
    return out


def dhcp_candidates(options: Mapping[int, Any], identity: Mapping[str, str],
                    order: Iterable[int] = DEFAULT_OPTION_ORDER,
                    tails: tuple[str, ...] = TAILS) -> list[Candidate]:
    """Every URL the phone tries from its DHCP options, in order. `options`: decoded values."""
    out: list[Candidate] = []
    for code in order:
        value = options.get(code)
        if value is None:
            continue
        if code == 150:
            for address in value:
                out += value_candidates(str(address), identity, "option 150", tails)
        elif code in TEXT_OPTIONS and isinstance(value, str):
            if code == 60 and "://" not in value:
                continue  # an echoed vendor class is no location; only a URL there is used [I]
            out += value_candidates(value, identity, f"option {code}", tails)
        # 43 and 125 carry TR-069 ACS discovery, not a profile location: no candidate [I]
    return out


def order_srv(records: Iterable[SrvTarget],
              weight_order: Literal["cisco", "rfc2782"] = "cisco") -> list[SrvTarget]:
    """Priority lower first; weight lower first per Cisco's text, or higher first (RFC 2782's
    weighted choice, shown here as its most likely order)."""
    if weight_order == "cisco":
        return sorted(records, key=lambda r: (r.priority, r.weight))
    return sorted(records, key=lambda r: (r.priority, -r.weight))


def srv_candidates(found: Mapping[str, list[SrvTarget]], identity: Mapping[str, str],
                   weight_order: Literal["cisco", "rfc2782"] = "cisco",
                   tails: tuple[str, ...] = TAILS) -> list[Candidate]:
    """URLs from SRV answers: `found` maps the service label to the records it answered."""
    out: list[Candidate] = []
    for service, scheme in SRV_SERVICES:
        for record in order_srv(found.get(service, []), weight_order):
            base = f"{scheme}://{record.target.rstrip('.')}:{record.port}"
            out += [
                Candidate(macros.expand(_join(base, t), identity), f"SRV {service}") for t in tails
            ]
    return out


@dataclass(frozen=True)
class Rule:
    """One Profile_Rule / Upgrade_Rule alternative without a condition: `[--opts] url`."""

    url: str
    key: str | None = None
    uid: str | None = None
    pwd: str | None = None
    srv: bool = False
    post: str | None = None  # `--post a`: POST the expanded GPP_A as the body (reference §3.1)


def parse_simple_rule(rule: str, identity: Mapping[str, str], dhcp_server: str | None = None) -> Rule:
    """Parse `[--key K --uid U --pwd P --post x --srv] [scheme://][server[:port]]/path` (reference §3.1).

    Default scheme TFTP; a missing server is the option 66 server (`dhcp_server`). Conditions and
    `|` alternatives are the full rule engine's business, not this helper's.
    """
    rule = rule.strip()
    opts: dict[str, str | bool] = {}
    if rule.startswith("["):
        close = _closing_bracket(rule)
        words = _rule_words(rule[1:close]) if close > 0 else []
        rule = rule[close + 1 :].strip() if close > 0 else rule
        i = 0
        while i < len(words):
            word = words[i]
            if word == "--srv":
                opts["srv"] = True
                i += 1
            elif word in ("--key", "--uid", "--pwd", "--post") and i + 1 < len(words):
                opts[word[2:]] = words[i + 1]
                i += 2
            else:
                i += 1
    url = macros.expand(rule, identity)
    if "://" not in url:
        # no scheme means TFTP; no server means the DHCP option 66 server (reference §3.1)
        url = f"tftp://{dhcp_server or ''}{url}" if url.startswith("/") else f"tftp://{url}"

    def text(name: str) -> str | None:
        value = opts.get(name)
        return value if isinstance(value, str) else None

    return Rule(url, key=text("key"), uid=text("uid"), pwd=text("pwd"), srv=bool(opts.get("srv")),
                post=text("post"))


def _closing_bracket(rule: str) -> int:
    """Index of the `]` that ends the options, skipping quoted values."""
    quoted = False
    for index, char in enumerate(rule):
        if char == '"':
            quoted = not quoted
        elif char == "]" and not quoted:
            return index
    return -1


def _rule_words(text: str) -> list[str]:
    """Option words; `"..."` groups spaces, and `\\NNN` octal escapes decode (reference §3.1)."""
    words: list[str] = []
    current: list[str] = []
    quoted = started = False
    i = 0
    while i < len(text):
        char = text[i]
        if char == '"':
            quoted, started = not quoted, True
        elif char == "\\" and text[i + 1 : i + 4].isdigit() and len(text[i + 1 : i + 4]) == 3:
            current.append(chr(int(text[i + 1 : i + 4], 8)))
            i += 3
        elif char.isspace() and not quoted:
            if current or started:
                words.append("".join(current))
            current, started = [], False
        else:
            current.append(char)
        i += 1
    if current or started:
        words.append("".join(current))
    return words
