"""Report_Rule: the configuration and status reports the phone uploads (pure; yields `Fetch`es).

What the admin guides document ("Report Current Phone Configuration to the Provisioning Server",
8800 MPP AG 11.3(1)+, chapter "Third-Party Call Control Setup"; reference §3.3), all [V]:
- `Report_Rule`: up to two rules separated by a space, each `[options] URL`; no keyword reports the
  full configuration, `--delta` the fields changed since the last report, `--status` the status
  data; `--key K` encrypts with AES-256-CBC (`openssl enc -aes-256-cbc -k K`); `--uid/--pwd` as in
  the Profile_Rule. "If you have provisioned the phone with Input Keying Material (IKM) and want
  the phone to apply RFC 8188-based encryption to the file, do not specify the --key argument."
- `HTTP_Report_Method` PUT|POST, **default POST** (the guide's parameter table).
- `Report_to_Server` On Request (default: "only when an administrator sends a sip notify event, or
  the phone restarts") | On Local Change | Periodically (`periodic_upload_to_server`, 3600 s).
So a virtual phone that has just booted and provisioned reports once, as a restarted phone does.

Not documented, chosen here [I]: the report body is a flat profile (`<flat-profile>` of the
phone's parameters); the status report carries Product_Name, Serial_Number, MAC_Address,
Software_Version and Current_IP; TFTP report URLs (a TFTP PUT on the SPA ancestors) are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from labkit.formats import aes128gcm, flat_profile, openssl_enc
from labkit.phone import discovery
from labkit.phone.effects import Fetch, FetchResult
from labkit.phone.proxy import with_wire

MAX_RULES = 2  # "You can add up to two URLs in the Report Rule field"
MAX_AUTH_RETRIES = 2  # as for profiles (reference §5)
_RULE = re.compile(r"(\[[^\]]*\])?\s*([^\s\[]+)")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
Kind = Literal["config", "delta", "status"]


@dataclass(frozen=True)
class ReportRule:
    url: str
    kind: Kind = "config"
    key: str | None = None
    uid: str | None = None
    pwd: str | None = None


@dataclass(frozen=True)
class Upload:
    """What became of one report: sent (`status` 2xx) or not (`error`)."""

    rule: ReportRule
    method: str
    size: int
    status: int | None = None
    error: str | None = None
    encoding: str = "plain"  # "plain", "aes-256-cbc" (--key) or "aes128gcm" (IKM)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def detail(self) -> str:
        answer = f"HTTP {self.status}" if self.status is not None else (self.error or "no answer")
        return (f"{self.method} {self.rule.kind} report ({self.size} bytes, {self.encoding}) to "
                f"{self.rule.url}: {answer}")


def parse_report_rule(text: str, identity: Mapping[str, str], server: str | None = None) -> list[ReportRule]:
    """The rules of a `Report_Rule` value, macros expanded (at most two, as documented)."""
    rules: list[ReportRule] = []
    for match in _RULE.finditer(text.strip()):
        options, url = match.group(1) or "", match.group(2)
        words = options.strip("[]").split()
        parsed = discovery.parse_simple_rule(options + url, identity, server)
        kind: Kind = "delta" if "--delta" in words else "status" if "--status" in words else "config"
        rules.append(ReportRule(parsed.url, kind, parsed.key, parsed.uid, parsed.pwd))
    return rules[:MAX_RULES]


def report_method(params: Mapping[str, str]) -> str:
    value = str(params.get("HTTP_Report_Method", "")).strip().upper()
    return value if value in ("PUT", "POST") else "POST"  # documented default: POST


def _flat(values: Mapping[str, str]) -> bytes:
    kept = [flat_profile.Param(name, _CONTROL.sub(" ", value)) for name, value in values.items()
            if flat_profile.is_valid_name(name) and value.isascii()]
    return flat_profile.render(kept, device_wrapper=False)


def report_body(kind: Kind, params: Mapping[str, str], identity: Mapping[str, str],
                previous: Mapping[str, str] | None = None) -> bytes:
    if kind == "delta":
        before = previous or {}
        return _flat({k: v for k, v in params.items() if before.get(k) != v})
    if kind == "status":
        return _flat({"Product_Name": identity.get("PN", ""), "Serial_Number": identity.get("SN", ""),
                      "MAC_Address": identity.get("MA", ""), "Software_Version": identity.get("SWVER", ""),
                      "Current_IP": identity.get("IP", "")})
    return _flat(params)


def _seal(body: bytes, rule: ReportRule, ikm: bytes | None) -> tuple[bytes, str, tuple[tuple[str, str], ...]]:
    """(body, encoding, headers): --key wins; else the IKM's RFC 8188 record; else plain."""
    if rule.key is not None:
        sealed = openssl_enc.encrypt(body, rule.key)
        return sealed, "aes-256-cbc", (("Content-Type", "application/octet-stream"),)
    if ikm is not None:
        return (aes128gcm.encrypt(body, ikm), "aes128gcm",
                (("Content-Type", "application/xml"), ("Content-Encoding", "aes128gcm")))
    return body, "plain", (("Content-Type", "application/xml"),)


def report_flow(params: Mapping[str, str], identity: Mapping[str, str], *, server: str | None = None,
                user_agent: str = "", ikm: bytes | None = None, previous: Mapping[str, str] | None = None,
                check_names: bool = True) -> Generator[Fetch, FetchResult, list[Upload]]:
    """Upload what `params["Report_Rule"]` asks for; yields each `Fetch`, returns what became of it.

    `server`: the host a rule without one uses; `previous`: the parameters before the last resync
    (for `--delta`); `ikm`: IKM_HTTP_Encrypt_Content, for aes128gcm reports."""
    uploads: list[Upload] = []
    method = report_method(params)
    for rule in parse_report_rule(str(params.get("Report_Rule", "")), identity, server):
        scheme = urlsplit(rule.url).scheme.lower()
        plain = report_body(rule.kind, params, identity, previous)
        body, encoding, headers = _seal(plain, rule, ikm)
        if scheme not in ("http", "https"):
            why = f"{scheme.upper()} reports are not simulated"
            uploads.append(Upload(rule, method, len(body), error=why, encoding=encoding))
            continue
        result = yield from _send(rule, method, body, headers, params, user_agent, check_names)
        uploads.append(Upload(rule, method, len(body), result.status, result.error, encoding))
    return uploads


def _send(rule: ReportRule, method: str, body: bytes, headers: tuple[tuple[str, str], ...],
          params: Mapping[str, str], user_agent: str,
          check_names: bool) -> Generator[Fetch, Any, FetchResult]:
    tries = 0
    while True:
        credentials = tries > 0
        fetch = Fetch(rule.url, method, body, rule.uid if credentials else None,
                      rule.pwd if credentials else None, user_agent, headers=headers)
        result: FetchResult = yield with_wire(fetch, params, check_names=check_names)
        if result.status != 401 or rule.uid is None or tries >= MAX_AUTH_RETRIES:
            return result
        tries += 1
