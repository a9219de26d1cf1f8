"""Syslog message parsing, tolerant of RFC 3164, RFC 5424 and whatever phones really send (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass

FACILITIES = ("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
              "authpriv", "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2",
              "local3", "local4", "local5", "local6", "local7")
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")

_PRI = re.compile(rb"^<(\d{1,3})>")
_RFC5424 = re.compile(
    r"^1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<procid>\S+) (?P<msgid>\S+) "
    r"(?P<sd>-|(?:\[(?:[^\]\\]|\\.)*\])+)(?: (?P<msg>.*))?$", re.DOTALL)
_RFC3164 = re.compile(
    r"^(?P<ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?P<host>\S+) (?P<msg>.*)$", re.DOTALL)
_TAG = re.compile(r"^(?P<app>[^\s:\[]{1,48})(?:\[(?P<procid>[^\]]*)\])?: ?(?P<msg>.*)$", re.DOTALL)


@dataclass(frozen=True)
class SyslogMessage:
    facility: str | None
    severity: str | None
    timestamp: str | None
    hostname: str | None
    app: str | None
    message: str
    format: str  # "rfc5424", "rfc3164", or "raw"


def parse_syslog(data: bytes) -> SyslogMessage:
    """Never raises: bad bytes are replaced, unknown shapes are kept whole as `raw`."""
    facility = severity = None
    match = _PRI.match(data)
    if match is not None and int(match.group(1)) <= 191:
        pri = int(match.group(1))
        facility, severity = FACILITIES[pri >> 3], SEVERITIES[pri & 7]
        data = data[match.end():]
    text = data.decode("utf-8", errors="replace").removeprefix("\ufeff").rstrip("\r\n\x00")
    m5424 = _RFC5424.match(text)
    if m5424 is not None:
        msg = (m5424.group("msg") or "").removeprefix("\ufeff")
        return SyslogMessage(facility, severity, _nil(m5424.group("ts")), _nil(m5424.group("host")),
                             _nil(m5424.group("app")), msg, "rfc5424")
    m3164 = _RFC3164.match(text)
    if m3164 is not None:
        rest = m3164.group("msg")
        tag = _TAG.match(rest)
        app = tag.group("app") if tag else None
        msg = tag.group("msg") if tag else rest
        return SyslogMessage(facility, severity, m3164.group("ts"), m3164.group("host"), app, msg,
                             "rfc3164")
    return SyslogMessage(facility, severity, None, None, None, text, "raw")


def _nil(value: str | None) -> str | None:
    return None if value in (None, "-") else value
