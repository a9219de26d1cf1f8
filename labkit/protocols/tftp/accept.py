"""Deciding a request, pure: `accept(...)` returns `Refuse` (an ERROR datagram and the facts) or
`Accept` (a ready session and the request's fact). The transport only opens the session's
socket, moves bytes and keeps timers.

Inputs are plain: the server's rules, how loaded it is (in all, and from this client's
address), a look-up callable for files (the services' file tree behind it), another for upload
targets, and the fault decision, asked only when a read request gets that far (so that a fault
fires, and is logged, only for requests it can change).

Slots: at most `max_sessions` sessions; at most `per_client` from one address; and the last
`reserved` slots go only to clients that hold none, so that a few clients that never finish
cannot keep the phones that come next from being served.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from labkit.protocols.result import Datagram, Result
from labkit.protocols.tftp.base import DEFAULT_LIMITS, Label, SessionLimits
from labkit.protocols.tftp.faults import TftpFaultAction
from labkit.protocols.tftp.negotiate import MAX_BLKSIZE, Negotiated, negotiate, parse_mode
from labkit.protocols.tftp.packets import ErrorCode, ReadRequest, WriteRequest, encode_error
from labkit.protocols.tftp.read import ReadSession
from labkit.protocols.tftp.write import Writable, WriteSession


@dataclass(frozen=True, slots=True)
class ServerRules:
    timeout: float = 2.0  # seconds between retransmissions when the client negotiates none
    max_blksize: int = MAX_BLKSIZE
    max_upload: int = 64 * 1024 * 1024
    uploads: bool = False  # WRQs are refused unless an upload folder is given
    max_sessions: int = 512
    per_client: int | None = 16  # sessions at once from one client address (None: no limit)
    reserved: int = 32  # of max_sessions, kept for clients that hold no session
    session: SessionLimits = DEFAULT_LIMITS


@dataclass(frozen=True, slots=True)
class Load:
    active: int = 0  # sessions running (or opening)
    from_client: int = 0  # of them, from this request's client address


class TftpFile(Protocol):
    """A file found for a read request, open for reading."""

    @property
    def size(self) -> int: ...

    @property
    def mac(self) -> str | None: ...  # the phone this file belongs to (a per-phone profile)

    @property
    def kind(self) -> str: ...  # "phone profile", "firmware", "file" ...

    def read_at(self, offset: int, size: int) -> bytes: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Missing:
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Forbidden:
    reason: str
    message: str = "access violation"  # what the client reads in the ERROR


@dataclass(frozen=True, slots=True)
class Exists:
    pass


Lookup = Callable[[str], "TftpFile | Missing | Forbidden"]
OpenUpload = Callable[[str], "Writable | Exists | Forbidden"]
FaultCheck = Callable[[], "TftpFaultAction | None"]


@dataclass(frozen=True, slots=True)
class Refuse:
    reason: str  # the facts' result: "bad-mode", "busy", "client-limit", "not-found", ...
    result: Result  # the ERROR to send from the listening port, the request and end facts


@dataclass(frozen=True, slots=True)
class Accept:
    session: ReadSession | WriteSession  # start() it once its own socket is open
    result: Result  # the request's fact
    fault: TftpFaultAction | None = None  # what the transport's send filter must do


def accept(request: ReadRequest | WriteRequest, *, rules: ServerRules, load: Load, lookup: Lookup,
           open_upload: OpenUpload | None = None, faults: FaultCheck | None = None,
           phone: str | None = None) -> Refuse | Accept:
    action = "rrq" if isinstance(request, ReadRequest) else "wrq"
    label = Label(action, request.filename, phone,
                  {"mode": request.mode, "options": dict(request.options)})
    mode = parse_mode(request.mode)
    if mode is None:
        return refuse(label, ErrorCode.ILLEGAL_OPERATION, f"unsupported mode {request.mode!r}", "bad-mode")
    slots = _slots(rules, load)
    if slots is not None:
        return refuse(label, ErrorCode.NOT_DEFINED, *slots)
    if isinstance(request, WriteRequest):
        return _accept_write(request, mode, label, rules, open_upload)
    return _accept_read(request, mode, label, rules, lookup, faults)


def _slots(rules: ServerRules, load: Load) -> tuple[str, str] | None:
    """(message, result) when no slot is left for this client, else None."""
    if load.active >= rules.max_sessions:
        return "server busy, try again", "busy"
    if rules.per_client is not None and load.from_client >= rules.per_client:
        return "too many transfers from your address", "client-limit"
    if load.from_client > 0 and load.active >= rules.max_sessions - rules.reserved:
        return "server busy, try again", "busy"  # the last slots wait for new clients
    return None


def _accept_read(request: ReadRequest, mode: str, label: Label, rules: ServerRules, lookup: Lookup,
                 faults: FaultCheck | None) -> Refuse | Accept:
    fault = faults() if faults is not None else None
    if fault is not None and fault.error is not None:
        return refuse(label, fault.error, "fault rule", "fault")
    found = lookup(request.filename)
    if isinstance(found, Missing):
        return refuse(label, ErrorCode.FILE_NOT_FOUND, "file not found", "not-found", found.reason)
    if isinstance(found, Forbidden):
        return refuse(label, ErrorCode.ACCESS_VIOLATION, found.message, "forbidden", found.reason)
    options = () if fault is not None and fault.refuse_options else request.options
    negotiated = negotiate(options, write=False, size=found.size, netascii=mode == "netascii",
                           default_timeout=rules.timeout, max_blksize=rules.max_blksize)
    if fault is not None and fault.wrong_tsize is not None:
        acked = tuple((k, str(fault.wrong_tsize)) if k.lower() == "tsize" else (k, v)
                      for k, v in negotiated.acked)
        negotiated = dataclasses.replace(negotiated, acked=acked)
    label = Label(label.action, label.request, label.phone or found.mac,  # not dataclasses.replace:
                  {**(label.detail or {}), "size": found.size})  # its field walk, per request
    session = ReadSession(found, negotiated, netascii=mode == "netascii", label=label,
                          limits=rules.session)
    return Accept(session, _accepted(label, negotiated), fault)


def _accept_write(request: WriteRequest, mode: str, label: Label, rules: ServerRules,
                  open_upload: OpenUpload | None) -> Refuse | Accept:
    if not rules.uploads or open_upload is None:
        return refuse(label, ErrorCode.ACCESS_VIOLATION, "write not permitted", "refused-write")
    target = open_upload(request.filename)
    if isinstance(target, Exists):
        return refuse(label, ErrorCode.FILE_EXISTS, "file already exists", "exists")
    if isinstance(target, Forbidden):
        return refuse(label, ErrorCode.ACCESS_VIOLATION, target.message, "forbidden", target.reason)
    negotiated = negotiate(request.options, write=True, size=None, netascii=mode == "netascii",
                           default_timeout=rules.timeout, max_blksize=rules.max_blksize)
    session = WriteSession(target, negotiated, netascii=mode == "netascii", label=label,
                           limits=rules.session, max_bytes=rules.max_upload)
    return Accept(session, _accepted(label, negotiated))


def _accepted(label: Label, negotiated: Negotiated) -> Result:
    if negotiated.acked:
        answer = "OACK " + " ".join(f"{k}={v}" for k, v in negotiated.acked)
    else:
        answer = "DATA" if label.action == "rrq" else "ACK 0"
    return Result(facts=(label.fact(answer, "accepted", phase="request",
                                    negotiated=negotiated.as_detail()),))


def refuse(label: Label, code: int, message: str, result: str, reason: str | None = None) -> Refuse:
    """An ERROR for the client, and the request and end facts (the refusal is both)."""
    extra: dict[str, Any] = {"reason": reason} if reason is not None else {}
    answer = f"error {code} {message}"
    facts = (label.fact(answer, result, phase="request", **extra),
             label.fact(answer, result, phase="end", **extra))
    return Refuse(result, Result((Datagram(encode_error(code, message)),), (), facts, True))
