"""TFTP service: a thin asyncio transport around the pure cores in labkit.protocols.tftp.

One listening socket takes requests; every accepted transfer gets its own socket (a new TID,
RFC 1350) made with `loop.create_datagram_endpoint`, fed to a ReadSession/WriteSession, and one
`loop.call_later` timer. The tree is served read-only; uploads are accepted only when an
`upload_dir` is given, and then never overwrite a file.

Each transfer emits two events: one when the request is decided (action "rrq"/"wrq", request =
the filename as sent, negotiated options in detail) and one when it ends (answer "N bytes in M
blocks" or the error, result "ok", "not-found", "forbidden", "timeout", "refused-write", ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import re
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from labkit.errors import CodecError
from labkit.events import EventSink, PhoneDirectory, make_event
from labkit.faults import FaultHooks, TftpFault
from labkit.protocols.tftp.packets import ErrorCode, Opcode, ReadRequest, WriteRequest, decode
from labkit.protocols.tftp.session import (
    MAX_BLKSIZE,
    Negotiated,
    Outcome,
    ReadSession,
    Step,
    WriteSession,
    negotiate,
    parse_mode,
    refusal,
)
from labkit.services.filetree import FileReader, FileTree, ForbiddenPath, normalize_request_path

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 2.0  # seconds between retransmissions when the client negotiates none
DEFAULT_RETRIES = 5


@dataclass
class TftpStats:
    """Counters for the live board and the tests."""

    requests: int = 0
    duplicates: int = 0  # a request repeated while its transfer runs (the client retransmitted)
    malformed: int = 0  # undecodable datagrams on the listening port
    stray: int = 0  # decodable but not a request (a late ACK, an ERROR) on the listening port
    unknown_tid: int = 0  # datagrams on a session port from someone else (answered with error 5)
    refused: int = 0
    busy: int = 0
    completed: int = 0
    failed: int = 0
    retransmits: int = 0
    results: dict[str, int] = field(default_factory=dict)


def _small_receive_buffer(transport: asyncio.BaseTransport, size: int) -> None:
    """Shrink the buffer asyncio's selector transport passes to recvfrom() (256 KiB by default).

    A buffer that large is mmap'ed, shrunk and unmapped for every datagram: three extra system
    calls per block, measured as the largest cost after sendto. A datagram longer than `size`
    is truncated, which the codec then rejects (requests, uploads) or which cannot matter (a
    read session only acts on 4-byte ACKs). Transports without the attribute are left alone.
    """
    if hasattr(transport, "max_size"):
        setattr(transport, "max_size", size)  # noqa: B010 - a private class's attribute


class _Listener(asyncio.DatagramProtocol):
    def __init__(self, service: TftpService) -> None:
        self.service = service

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # RFC 2347 asks requests to fit in 512 bytes; allow far more, truncation fails decoding.
        _small_receive_buffer(transport, 65536)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            self.service._on_request(data, addr)
        except Exception:  # a bug must not take the listener down; count and go on
            log.exception("tftp: request from %s crashed the handler", addr)
            self.service.stats.malformed += 1

    def error_received(self, exc: Exception) -> None:  # ICMP errors for earlier replies
        log.debug("tftp listener: %s", exc)


class _Transfer(asyncio.DatagramProtocol):
    """One session's socket, timer and file; applies the session's Steps."""

    def __init__(self, service: TftpService, peer: tuple[Any, ...], action: str, request: str,
                 session: ReadSession | WriteSession, negotiated: Negotiated,
                 detail: dict[str, Any], reader: FileReader | None = None,
                 upload: _Upload | None = None) -> None:
        self.service = service
        self.detail = detail
        self.peer = peer
        self.action = action
        self.request = request
        self.session = session
        self.negotiated = negotiated
        self.reader = reader
        self.upload = upload
        self.transport: asyncio.DatagramTransport | None = None
        self.loop = asyncio.get_running_loop()
        self.started = self.loop.time()
        # One lazily re-armed timer: each Step only moves the deadline, so the hot path does
        # not create and cancel a TimerHandle per block.
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.finished = False

    # -- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's transport
        # A read session only ever hears ACKs and ERRORs; an upload, blocks of blksize.
        biggest = 1024 if isinstance(self.session, ReadSession) else self.negotiated.blksize + 5
        _small_receive_buffer(transport, biggest)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.finished:
            return
        if addr != self.peer:
            # RFC 1350: a packet from another TID gets error 5 and leaves the transfer alone.
            self.service.stats.unknown_tid += 1
            if self.transport is not None and len(data) >= 2 and data[1] != Opcode.ERROR:
                self.transport.sendto(refusal(ErrorCode.UNKNOWN_TID, "unknown transfer ID"), addr)
            return
        self.apply(self.session.receive(data))

    def error_received(self, exc: Exception) -> None:
        log.debug("tftp session %s: %s", self.peer, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished:
            self.finish(Outcome("aborted", "socket closed"))

    # -- steps and timer

    send_filter: _SendFilter | None = None

    def apply(self, step: Step) -> None:
        transport = self.transport
        if transport is not None:
            send_filter = self.send_filter
            for datagram in step.send:
                if send_filter is None:
                    transport.sendto(datagram, self.peer)
                else:
                    for faulty in send_filter(datagram):
                        transport.sendto(faulty, self.peer)
        if step.write and self.upload is not None:
            try:
                self.upload.write(step.write)
            except OSError as exc:
                self.send_now(refusal(ErrorCode.DISK_FULL, "write failed"))
                self.finish(Outcome("write-error", f"write failed: {exc}"))
                return
        if step.done is not None:
            self.finish(step.done)
        elif step.timer is not None:
            self._deadline = self.loop.time() + step.timer
            if self._timer is None:
                self._timer = self.loop.call_at(self._deadline, self._on_timer)

    def send_now(self, datagram: bytes) -> None:
        if self.transport is not None:
            self.transport.sendto(datagram, self.peer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.finished or self._deadline is None:
            return
        now = self.loop.time()
        if now < self._deadline:  # moved by a Step since: sleep the rest
            self._timer = self.loop.call_at(self._deadline, self._on_timer)
            return
        self._deadline = None
        self.apply(self.session.expire())

    def finish(self, outcome: Outcome) -> None:
        if self.finished:
            return
        self.finished = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.reader is not None:
            self.reader.close()
        if self.upload is not None:
            outcome = self.upload.close(outcome)
        if self.transport is not None:
            self.transport.close()
        self.service._ended(self, outcome)


_OWN_FILE = re.compile(r"Cisco/[^/]+/([0-9A-Fa-f]{12})\.cfg$")


class _SendFilter:
    """Outgoing datagrams of one transfer, changed as a fault rule says (drop, duplicate, stall)."""

    def __init__(self, fault: TftpFault) -> None:
        self.fault = fault
        self.oack_dropped = False
        self.block_dropped = False
        self.block_duplicated = False

    def __call__(self, datagram: bytes) -> list[bytes]:
        fault = self.fault
        opcode = datagram[1] if len(datagram) >= 2 else 0
        if opcode == Opcode.OACK and fault.drop_oack and not self.oack_dropped:
            self.oack_dropped = True
            return []
        if opcode != Opcode.DATA:
            return [datagram]
        block = int.from_bytes(datagram[2:4], "big")
        if fault.stall_after is not None and block > fault.stall_after:
            return []  # silence from here on, retransmissions included
        if fault.drop_block == block and not self.block_dropped:
            self.block_dropped = True
            return []
        if fault.duplicate_block == block and not self.block_duplicated:
            self.block_duplicated = True
            return [datagram, datagram]
        return [datagram]


class _ReadAhead:
    """read_at over a file on disk with one pread per 64 KiB rather than one per block.

    Blocks are requested in order (and re-requested only within a window), so a small forward
    buffer removes most read system calls; memory stays bounded at one chunk per transfer.
    """

    CHUNK = 64 * 1024

    def __init__(self, reader: FileReader) -> None:
        self._reader = reader
        self._start = 0
        self._data = b""

    def read_at(self, offset: int, size: int) -> bytes:
        start = offset - self._start
        if start >= 0 and start + size <= len(self._data):
            return self._data[start : start + size]
        if size >= self.CHUNK:
            return self._reader.read_at(offset, size)
        self._data = self._reader.read_at(offset, self.CHUNK)
        self._start = offset
        return self._data[:size]


class _Upload:
    """An upload in progress: written to a hidden part file, linked into place only when whole."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.part = target.with_name(f".{target.name}.part-{secrets.token_hex(4)}")
        self.file: IO[bytes] = open(self.part, "xb")  # noqa: SIM115 - closed in close()

    def write(self, data: bytes) -> None:
        self.file.write(data)

    def close(self, outcome: Outcome) -> Outcome:
        self.file.close()
        try:
            if outcome.result == "ok":
                try:
                    os.link(self.part, self.target)  # link, not replace: never overwrite
                except FileExistsError:
                    return Outcome("exists", "another upload of this name finished first",
                                   outcome.bytes, outcome.blocks, outcome.retransmits)
            return outcome
        finally:
            with contextlib.suppress(OSError):
                os.unlink(self.part)


class TftpService:
    """A running TFTP server. `port` is the bound port (useful when started with port 0)."""

    def __init__(self, tree: FileTree, sink: EventSink, directory: PhoneDirectory, *,
                 retries: int, timeout: float, upload_dir: Path | None, max_sessions: int,
                 max_blksize: int, max_upload: int) -> None:
        self.tree = tree
        self.sink = sink
        self.directory = directory
        self.retries = retries
        self.timeout = timeout
        self.upload_dir = upload_dir.resolve() if upload_dir is not None else None
        self.faults: FaultHooks | None = None  # set by the supervisor when rules concern TFTP
        self.max_sessions = max_sessions
        self.max_blksize = max_blksize
        self.max_upload = max_upload
        self.stats = TftpStats()
        self.host = ""
        self.port = 0
        self._listener: asyncio.DatagramTransport | None = None
        self._transfers: set[_Transfer] = set()
        self._opening: set[asyncio.Task[None]] = set()
        self._running: set[tuple[Any, ...]] = set()  # (peer, action, filename) of live transfers
        self._closed = False
        self._family = 0

    @property
    def active(self) -> int:
        return len(self._transfers) + len(self._opening)

    async def _listen(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Listener(self),
                                                           local_addr=(host, port))
        self._listener = transport
        sockname = transport.get_extra_info("sockname")
        self.host, self.port = sockname[0], sockname[1]
        self._family = transport.get_extra_info("socket").family

    async def close(self) -> None:
        """Stop listening and end every transfer (clients get error 0 "server shutting down")."""
        self._closed = True
        if self._listener is not None:
            self._listener.close()
        for task in list(self._opening):
            task.cancel()
        for task in list(self._opening):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for transfer in list(self._transfers):
            transfer.send_now(refusal(ErrorCode.NOT_DEFINED, "server shutting down"))
            transfer.finish(Outcome("shutdown", "server shut down"))
        await asyncio.sleep(0)  # let the transports run their close callbacks

    # -- requests

    def _emit(self, peer: tuple[Any, ...], action: str, request: str, answer: str, result: str,
              **detail: Any) -> None:
        phone = self.directory.phone_at(peer[0])
        if phone is None:
            # a phone asking for its own file names itself: /Cisco/$PN/$MA.cfg (loopback labs)
            own = _OWN_FILE.search(request)
            if own is not None:
                phone = own.group(1).lower()
                phone = ":".join(phone[i : i + 2] for i in range(0, 12, 2))
        try:
            self.sink(make_event("tftp", f"{peer[0]}:{peer[1]}", phone, action, request, answer, result,
                                 **detail))
        except Exception:  # a broken sink must not break the transfer
            log.exception("tftp: event sink failed")

    def _refuse(self, peer: tuple[Any, ...], action: str, request: str, code: int, message: str,
                result: str, **detail: Any) -> None:
        self.stats.refused += 1
        self.stats.results[result] = self.stats.results.get(result, 0) + 1
        if self._listener is not None:
            self._listener.sendto(refusal(code, message), peer)
        answer = f"error {code} {message}"
        self._emit(peer, action, request, answer, result, phase="request", **detail)
        self._emit(peer, action, request, answer, result, phase="end", **detail)

    def _on_request(self, data: bytes, peer: tuple[Any, ...]) -> None:
        if self._closed or peer[1] == 0:
            return
        try:
            packet = decode(data)
        except CodecError as exc:
            self.stats.malformed += 1
            # Answer only what claims to be a request: its sender is a TFTP client waiting for
            # a reply. Anything else might be another server, and two servers must not ping-pong.
            if len(data) >= 2 and data[0] == 0 and data[1] in (Opcode.RRQ, Opcode.WRQ):
                self._listener_send(refusal(ErrorCode.ILLEGAL_OPERATION, f"malformed request: {exc}"),
                                    peer)
            return
        if not isinstance(packet, ReadRequest | WriteRequest):
            self.stats.stray += 1
            return
        action = "rrq" if isinstance(packet, ReadRequest) else "wrq"
        request = packet.filename
        if (peer, action, request) in self._running:
            # The client resent its request because our first answer is late or lost; the
            # running session's own retransmission answers it. A second session would only
            # double the load and then time out.
            self.stats.duplicates += 1
            return
        self.stats.requests += 1
        mode = parse_mode(packet.mode)
        detail: dict[str, Any] = {"mode": packet.mode, "options": dict(packet.options)}
        if mode is None:
            self._refuse(peer, action, request, ErrorCode.ILLEGAL_OPERATION,
                         f"unsupported mode {packet.mode!r}", "bad-mode", **detail)
            return
        if self.active >= self.max_sessions:
            self.stats.busy += 1
            self._refuse(peer, action, request, ErrorCode.NOT_DEFINED, "server busy, try again",
                         "busy", **detail)
            return
        if isinstance(packet, WriteRequest):
            self._on_write(packet, mode, peer, detail)
            return
        fault = self._fault(peer, request)
        if fault is not None and fault.error is not None:
            self._refuse(peer, action, request, fault.error, "fault rule", "fault", **detail)
            return
        try:
            served = self.tree.lookup(request)
        except ForbiddenPath as exc:
            self._refuse(peer, action, request, ErrorCode.ACCESS_VIOLATION, "access violation",
                         "forbidden", reason=str(exc), **detail)
            return
        except (OSError, ValueError) as exc:  # ENAMETOOLONG, ELOOP... while resolving
            self._refuse(peer, action, request, ErrorCode.FILE_NOT_FOUND, "file not found",
                         "not-found", reason=str(exc), **detail)
            return
        if served is None:
            self._refuse(peer, action, request, ErrorCode.FILE_NOT_FOUND, "file not found",
                         "not-found", **detail)
            return
        try:
            reader = served.open()
        except OSError as exc:
            self._refuse(peer, action, request, ErrorCode.ACCESS_VIOLATION, "access violation",
                         "forbidden", reason=str(exc), **detail)
            return
        options = () if fault is not None and fault.refuse_options else packet.options
        negotiated = negotiate(options, write=False, size=served.size,
                               netascii=mode == "netascii", default_timeout=self.timeout,
                               max_blksize=self.max_blksize)
        if fault is not None and fault.wrong_tsize is not None:
            acked = tuple((k, str(fault.wrong_tsize)) if k.lower() == "tsize" else (k, v)
                          for k, v in negotiated.acked)
            negotiated = dataclasses.replace(negotiated, acked=acked)
        read_at = reader.read_at if served.data is not None else _ReadAhead(reader).read_at
        session = ReadSession(read_at, negotiated, netascii=mode == "netascii", retries=self.retries)
        detail["size"] = served.size
        send_filter = _SendFilter(fault) if fault is not None else None
        self._open(peer, action, request, session, negotiated, detail, reader=reader, send_filter=send_filter)

    def _on_write(self, packet: WriteRequest, mode: str, peer: tuple[Any, ...],
                  detail: dict[str, Any]) -> None:
        request = packet.filename
        if self.upload_dir is None:
            self._refuse(peer, "wrq", request, ErrorCode.ACCESS_VIOLATION, "write not permitted",
                         "refused-write", **detail)
            return
        try:
            key = normalize_request_path(request)
            target = (self.upload_dir / key).resolve()
            if not target.is_relative_to(self.upload_dir) or target == self.upload_dir:
                raise ForbiddenPath("the name resolves outside the upload folder")
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists() or target.is_symlink():
                self._refuse(peer, "wrq", request, ErrorCode.FILE_EXISTS, "file already exists",
                             "exists", **detail)
                return
            upload = _Upload(target)
        except ForbiddenPath as exc:
            self._refuse(peer, "wrq", request, ErrorCode.ACCESS_VIOLATION, "access violation",
                         "forbidden", reason=str(exc), **detail)
            return
        except OSError as exc:
            self._refuse(peer, "wrq", request, ErrorCode.ACCESS_VIOLATION, "cannot write there",
                         "forbidden", reason=str(exc), **detail)
            return
        negotiated = negotiate(packet.options, write=True, size=None, netascii=mode == "netascii",
                               default_timeout=self.timeout, max_blksize=self.max_blksize)
        session = WriteSession(negotiated, netascii=mode == "netascii", retries=self.retries,
                               max_bytes=self.max_upload)
        self._open(peer, "wrq", request, session, negotiated, detail, upload=upload)

    def _listener_send(self, datagram: bytes, peer: tuple[Any, ...]) -> None:
        if self._listener is not None:
            self._listener.sendto(datagram, peer)

    def _fault(self, peer: tuple[Any, ...], request: str) -> TftpFault | None:
        """The fault rules for this read request, merged (None when none fires)."""
        if self.faults is None:
            return None
        fired = self.faults.check("tftp", mac=self.directory.phone_at(peer[0]), client=f"{peer[0]}:{peer[1]}",
                                  request=f"RRQ {request}", path="/" + request.lstrip("/"))
        if not fired:
            return None
        merged: dict[str, Any] = {}
        for hit in fired:
            # `is not`: 0 is a real value (stall after 0 blocks), not "unset"
            merged.update({k: v for k, v in hit.action.model_dump().items()
                           if v is not None and v is not False})
        return TftpFault(**merged)

    def _open(self, peer: tuple[Any, ...], action: str, request: str,
              session: ReadSession | WriteSession, negotiated: Negotiated, detail: dict[str, Any],
              *, reader: FileReader | None = None, upload: _Upload | None = None,
              send_filter: _SendFilter | None = None) -> None:
        answer = ("OACK " + " ".join(f"{k}={v}" for k, v in negotiated.acked)
                  if negotiated.acked else ("DATA" if action == "rrq" else "ACK 0"))
        self._emit(peer, action, request, answer, "accepted", phase="request",
                   negotiated=negotiated.as_detail(), **detail)
        self._running.add((peer, action, request))
        task = asyncio.get_running_loop().create_task(
            self._start_transfer(peer, action, request, session, negotiated, detail, reader, upload,
                                 send_filter))
        self._opening.add(task)
        task.add_done_callback(self._opening.discard)

    async def _start_transfer(self, peer: tuple[Any, ...], action: str, request: str,
                              session: ReadSession | WriteSession, negotiated: Negotiated,
                              detail: dict[str, Any], reader: FileReader | None,
                              upload: _Upload | None, send_filter: _SendFilter | None = None) -> None:
        loop = asyncio.get_running_loop()
        transfer = _Transfer(self, peer, action, request, session, negotiated, detail, reader, upload)
        transfer.send_filter = send_filter
        try:
            # Our own socket, bound to the listener's address: create_datagram_endpoint with
            # local_addr would run getaddrinfo in a thread for every transfer.
            sock = socket.socket(self._family, socket.SOCK_DGRAM)
            try:
                sock.bind((self.host, 0))
                sock.setblocking(False)
            except OSError:
                sock.close()
                raise
            await loop.create_datagram_endpoint(lambda: transfer, sock=sock)
        except asyncio.CancelledError:
            transfer.finish(Outcome("shutdown", "server shut down"))
            raise
        except OSError as exc:
            # EMFILE and friends: tell the client now rather than let it time out.
            self._listener_send(refusal(ErrorCode.NOT_DEFINED, "server busy, try again"), peer)
            transfer.finish(Outcome("busy", f"no socket for the transfer: {exc}"))
            return
        self._transfers.add(transfer)
        transfer.apply(session.start())

    def _ended(self, transfer: _Transfer, outcome: Outcome) -> None:
        self._transfers.discard(transfer)
        self._running.discard((transfer.peer, transfer.action, transfer.request))
        self.stats.retransmits += outcome.retransmits
        self.stats.results[outcome.result] = self.stats.results.get(outcome.result, 0) + 1
        if outcome.result == "ok":
            self.stats.completed += 1
        else:
            self.stats.failed += 1
        self._emit(transfer.peer, transfer.action, transfer.request, outcome.answer, outcome.result,
                   phase="end", bytes=outcome.bytes, blocks=outcome.blocks,
                   retransmits=outcome.retransmits, peer_error=outcome.peer_error,
                   seconds=round(transfer.loop.time() - transfer.started, 3),
                   negotiated=transfer.negotiated.as_detail(), **transfer.detail)


async def start_tftp(tree: FileTree, host: str, port: int, sink: EventSink,
                     directory: PhoneDirectory, *, retries: int = DEFAULT_RETRIES,
                     timeout: float = DEFAULT_TIMEOUT, upload_dir: Path | None = None,
                     max_sessions: int = 512, max_blksize: int = MAX_BLKSIZE,
                     max_upload: int = 64 * 1024 * 1024) -> TftpService:
    """Serve `tree` over TFTP on host:port (port 0: any free port, see `service.port`).

    retries/timeout: retransmissions without progress before a transfer is dropped, and the
    seconds between them when the client negotiates no `timeout` (fixed, not exponential).
    upload_dir: accept WRQs into this folder (new files only); without it every WRQ gets error 2.
    max_sessions: transfers at once; beyond it a request gets error 0 "server busy".
    """
    service = TftpService(tree, sink, directory, retries=retries, timeout=timeout,
                          upload_dir=upload_dir, max_sessions=max_sessions,
                          max_blksize=max_blksize, max_upload=max_upload)
    await service._listen(host, port)
    return service


__all__ = ["DEFAULT_RETRIES", "DEFAULT_TIMEOUT", "TftpService", "TftpStats", "start_tftp"]
