"""TFTP service: a thin asyncio transport around the pure core in labkit.protocols.tftp.

One listening socket takes requests and hands each to the core's `accept`, which refuses it
(an ERROR from the listening port) or returns a session. Every accepted transfer gets its own
socket (a new TID, RFC 1350) and the timers the session asks for; `tftp_transfer` holds that
per-transfer I/O (one shared epoll for all session sockets, the lock-step fast step), and
`tftp_native` the compiled steady phase of reads (labkit/native/_tftp.c, one pool thread per
transfer without the GIL) when it is built and LABKIT_NATIVE is not 0. With
`endpoint.reuse_port` the listening socket sets SO_REUSEPORT, so that `labkit up --workers N`
can serve TFTP from N processes: the kernel sends a client's datagrams (one address and port)
to one of them, and each process keeps its own limits and counters. The tree is served
read-only; uploads are accepted only when the plan names an upload folder, and then never
overwrite a file.

Each transfer emits two events: one when the request is decided (action "rrq"/"wrq", request =
the filename as sent, negotiated options in detail) and one when it ends (answer "N bytes in M
blocks" or the error, result "ok", "not-found", "forbidden", "timeout", "refused-write", ...).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from labkit import native
from labkit.errors import CodecError
from labkit.events import EventSink, PhoneDirectory, events_from
from labkit.faults.hooks import ServiceFaults
from labkit.plan.tftp import TftpPlan
from labkit.protocols.result import Fact
from labkit.protocols.tftp.accept import (
    Accept,
    Exists,
    Forbidden,
    Load,
    Missing,
    ServerRules,
    TftpFile,
    accept,
)
from labkit.protocols.tftp.faults import TftpFaultAction, merge
from labkit.protocols.tftp.packets import ErrorCode, Opcode, ReadRequest, WriteRequest, decode, encode_error
from labkit.protocols.tftp.write import Writable
from labkit.services.context import Endpoint, StartContext
from labkit.services.filetree import FileTree, ForbiddenPath, UploadExists, UploadFolder
from labkit.services.sockets import (
    UDP_RECEIVE_BUFFER,
    DropCounter,
    RecvmsgTransport,
    count_drops,
    grow_receive_buffer,
    small_read_buffer,
)
from labkit.services.tftp_native import NativeReads
from labkit.services.tftp_transfer import SessionPump, Transfer

log = logging.getLogger(__name__)


Peer = tuple[Any, ...]


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
    client_limit: int = 0  # refused: that address already holds its share of transfers
    completed: int = 0
    failed: int = 0
    retransmits: int = 0
    results: dict[str, int] = field(default_factory=dict)


class _Listener(asyncio.DatagramProtocol):
    def __init__(self, service: TftpService) -> None:
        self.service = service

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # RFC 2347 asks requests to fit in 512 bytes; allow far more, truncation fails decoding.
        small_read_buffer(transport, 65536)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            self.service._on_request(data, addr)
        except Exception:  # a bug must not take the listener down; count and go on
            log.exception("tftp: request from %s crashed the handler", addr)
            self.service.stats.malformed += 1

    def error_received(self, exc: Exception) -> None:  # ICMP errors for earlier replies
        log.debug("tftp listener: %s", exc)


class TftpService:
    """A running TFTP server. `port` is the bound port (useful when started with port 0)."""

    batched_reads = True  # session sockets read through one epoll (False: one loop reader each)

    def __init__(self, config: TftpPlan, endpoint: Endpoint, ctx: StartContext) -> None:
        self.config = config
        self.tree: FileTree = ctx.tree
        self.sink: EventSink = ctx.bus
        self.directory: PhoneDirectory = ctx.directory
        self._faults: ServiceFaults[TftpFaultAction] | None = ctx.faults.tftp
        self.uploads = UploadFolder(config.upload_dir) if config.upload_dir is not None else None
        self.loopback = endpoint.loopback
        self.rules: ServerRules = config.limits.rules(uploads=self.uploads is not None,
                                                      loopback=self.loopback)
        self.stats = TftpStats()
        self.drops = DropCounter("tftp", self.sink)
        self.host = ""
        self.port = 0
        self._listener: asyncio.DatagramTransport | None = None
        self._transfers: set[Transfer] = set()
        self._pump: SessionPump | None = None
        self.native: NativeReads | None = None  # the compiled steady phase, when built
        self.reuse_port = endpoint.reuse_port
        # (peer, action, filename) of live transfers: the Transfer once its socket is open
        self._running: dict[tuple[Any, ...], Transfer | None] = {}
        self._per_address: dict[str, int] = {}  # live transfers by client address
        self._closed = False
        self._family = 0

    def reload(self, config: TftpPlan, ctx: StartContext) -> None:
        """New requests use the new plan's tree, uploads, limits and fault rules; transfers under
        way finish on what they opened."""
        self.config, self.tree, self.directory = config, ctx.tree, ctx.directory
        self._faults = ctx.faults.tftp
        self.uploads = UploadFolder(config.upload_dir) if config.upload_dir is not None else None
        self.rules = config.limits.rules(uploads=self.uploads is not None, loopback=self.loopback)

    @property
    def active(self) -> int:
        return len(self._transfers)

    async def _listen(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        sock = listening_socket(host, port, reuse_port=self.reuse_port)
        try:
            if count_drops(sock):
                self._listener = RecvmsgTransport(loop, sock, _Listener(self), self.drops)
            else:
                self._listener, _ = await loop.create_datagram_endpoint(lambda: _Listener(self), sock=sock)
        except BaseException:
            sock.close()
            raise
        self.host, self.port = sock.getsockname()[:2]
        self._family = sock.family
        self._pump = SessionPump(loop, use_epoll=self.batched_reads)
        module, threads = native.load("_tftp"), native.load("_tftp_pool")
        if module is not None and threads is not None:  # chosen once; LABKIT_NATIVE=0 or no
            try:  # compiler: the pure path
                self.native = NativeReads(module, loop, self.rules.max_sessions, threads)
            except OSError as exc:  # no thread could start: the pure path serves alone
                log.warning("tftp: compiled loop unavailable (%s): pure Python path", exc)

    async def close(self) -> None:
        """Stop listening and end every transfer (clients get error 0 "server shutting down")."""
        self._closed = True
        self.drops.stop()
        if self._listener is not None:
            self._listener.close()
        if self.native is not None:  # the compiled loops return their transfers to Python
            await self.native.stop()
        for transfer in list(self._transfers):
            transfer.abort("shutdown", "server shut down", "server shutting down")
        if self._pump is not None:
            self._pump.close()
        await asyncio.sleep(0)  # let the transports run their close callbacks

    # -- requests

    def _emit(self, peer: Peer, facts: Iterable[Fact], **extra: Any) -> None:
        try:
            for event in events_from("tftp", f"{peer[0]}:{peer[1]}", facts, time.time()):
                event.detail.update(extra)
                self.sink(event)
        except Exception:  # a broken sink must not break the transfer
            log.exception("tftp: event sink failed")

    def _on_request(self, data: bytes, peer: Peer) -> None:
        if self._closed or peer[1] == 0:
            return
        try:
            packet = decode(data)
        except CodecError as exc:
            self.stats.malformed += 1
            # Answer only what claims to be a request: its sender is a TFTP client waiting for
            # a reply. Anything else might be another server, and two servers must not ping-pong.
            if len(data) >= 2 and data[0] == 0 and data[1] in (Opcode.RRQ, Opcode.WRQ):
                self._listener_send(encode_error(ErrorCode.ILLEGAL_OPERATION, f"malformed request: {exc}"),
                                    peer)
            return
        if not isinstance(packet, ReadRequest | WriteRequest):
            self.stats.stray += 1
            return
        key = (peer, "rrq" if isinstance(packet, ReadRequest) else "wrq", packet.filename)
        if key in self._running:
            # The client resent its request because our first answer is late or lost; the
            # running session's own retransmission answers it. A second session would only
            # double the load and then time out.
            self.stats.duplicates += 1
            running = self._running[key]
            if running is not None and running.in_native:
                # Or the client finished and asks again, and the compiled loop has not handed
                # the final ACK back yet: decided when it has (`ended`).
                running.repeated = (data, peer, time.monotonic())
            return
        self.stats.requests += 1
        phone = self.directory.phone_at(peer[0])
        decision = accept(packet, rules=self.rules,
                          load=Load(self.active, self._per_address.get(peer[0], 0)),
                          lookup=self._lookup, open_upload=self._open_upload, phone=phone,
                          faults=lambda: self._fault(peer, packet.filename, phone))
        if isinstance(decision, Accept):
            self._open(peer, key, decision)
            return
        self.stats.refused += 1
        if decision.reason == "busy":
            self.stats.busy += 1
        elif decision.reason == "client-limit":
            self.stats.client_limit += 1
        self.stats.results[decision.reason] = self.stats.results.get(decision.reason, 0) + 1
        for datagram in decision.result.send:
            self._listener_send(datagram.data, peer)
        self._emit(peer, decision.result.facts)

    def _lookup(self, name: str) -> TftpFile | Missing | Forbidden:
        try:
            served = self.tree.lookup(name)
        except ForbiddenPath as exc:
            return Forbidden(str(exc))
        except (OSError, ValueError, RuntimeError) as exc:  # ENAMETOOLONG; RuntimeError: a link loop
            # (pathlib's resolve raises it) was a traceback and no answer before
            return Missing(str(exc))
        if served is None:
            return Missing()
        try:
            return served.open(read_ahead=served.data is None)
        except OSError as exc:
            return Forbidden(str(exc))

    def _open_upload(self, name: str) -> Writable | Exists | Forbidden:
        if self.uploads is None:
            return Forbidden("no upload folder", "write not permitted")
        try:
            return self.uploads.open(name)
        except UploadExists:
            return Exists()
        except ForbiddenPath as exc:
            return Forbidden(str(exc))
        except OSError as exc:
            return Forbidden(str(exc), "cannot write there")

    def _fault(self, peer: Peer, name: str, phone: str | None) -> TftpFaultAction | None:
        """The fault rules for this read request, merged (None when none fires)."""
        if self._faults is None:
            return None
        fired = self._faults.check(mac=phone, client=f"{peer[0]}:{peer[1]}", request=f"RRQ {name}",
                                  path="/" + name.lstrip("/"))
        return merge(hit.action for hit in fired)

    def _listener_send(self, datagram: bytes, peer: Peer) -> None:
        if self._listener is not None:
            self._listener.sendto(datagram, peer)

    def _open(self, peer: Peer, key: tuple[Any, ...], decision: Accept) -> None:
        self._running[key] = None
        self._per_address[peer[0]] = self._per_address.get(peer[0], 0) + 1
        try:
            sock = session_socket(self._family, self.host)
        except OSError as exc:
            self._emit(peer, decision.result.facts)
            # EMFILE and friends: tell the client now rather than let it time out.
            self._listener_send(encode_error(ErrorCode.NOT_DEFINED, "server busy, try again"), peer)
            aborted = decision.session.abort("busy", f"no socket for the transfer: {exc}")
            self._ended_early(peer, key, aborted.facts)
            return
        assert self._pump is not None  # listening, hence a pump
        transfer = Transfer(self, self._pump, sock, peer, decision.session, decision.fault, self.native)
        self._transfers.add(transfer)
        self._running[key] = transfer
        start = decision.session.start()
        if start.done:  # over at once: the request's event still comes before the end's
            self._emit(peer, decision.result.facts)
        transfer.begin(start)
        if not start.done:  # after the first datagram: not on the client's way (round 6)
            self._emit(peer, decision.result.facts)

    # -- what a Transfer reports (TransferOwner)

    def unknown_tid(self) -> None:
        self.stats.unknown_tid += 1

    def ended(self, transfer: Transfer, facts: Iterable[Fact]) -> None:
        self._transfers.discard(transfer)
        session = transfer.session
        self._release(transfer.peer, (transfer.peer, session.label.action, session.label.request))
        self.stats.retransmits += session.retransmits
        self._count(session.done.result if session.done is not None else "aborted")
        self._emit(transfer.peer, facts, seconds=round(transfer.loop.time() - transfer.started, 3))
        repeated, final_sent = transfer.repeated, transfer.final_sent_at
        if (repeated is not None and session.done is not None and session.done.result == "ok"
                and final_sent is not None and repeated[2] >= final_sent):
            # It came after the last block: the pure path would have had the final ACK first.
            self.stats.duplicates -= 1
            self._on_request(repeated[0], repeated[1])

    def _ended_early(self, peer: Peer, key: tuple[Any, ...], facts: Iterable[Fact]) -> None:
        self._release(peer, key)
        self._count("busy")
        self._emit(peer, facts, seconds=0.0)

    def _release(self, peer: Peer, key: tuple[Any, ...]) -> None:
        self._running.pop(key, None)
        left = self._per_address.get(peer[0], 1) - 1
        if left > 0:
            self._per_address[peer[0]] = left
        else:
            self._per_address.pop(peer[0], None)

    def _count(self, result: str) -> None:
        self.stats.results[result] = self.stats.results.get(result, 0) + 1
        if result == "ok":
            self.stats.completed += 1
        else:
            self.stats.failed += 1


def listening_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """The request socket: a large receive buffer and, for `labkit up --workers N`, SO_REUSEPORT
    before bind so that N processes share the port (the kernel spreads clients by address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        grow_receive_buffer(sock, UDP_RECEIVE_BUFFER)
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def session_socket(family: int, host: str) -> socket.socket:
    """A new TID bound to the listener's address. Not `create_datagram_endpoint(local_addr=)`:
    that runs getaddrinfo in a thread for every transfer."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind((host, 0))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def start_tftp(config: TftpPlan, endpoint: Endpoint, ctx: StartContext) -> TftpService:
    """Serve `ctx.tree` over TFTP on the endpoint (port 0: any free port, see `service.port`).

    config.limits: retransmissions without progress before a transfer is dropped and the
    seconds between them when the client negotiates none; transfers at once, in all and per
    client address; the longest a transfer may last. config.upload_dir: accept WRQs into this
    folder (new files only); without it every WRQ gets error 2.
    """
    service = TftpService(config, endpoint, ctx)
    await service._listen(endpoint.host, endpoint.port)
    return service


__all__ = ["TftpService", "TftpStats", "start_tftp"]
