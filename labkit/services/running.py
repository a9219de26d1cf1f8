"""`labkit up` as one resource: `async with run_lab(plan, ...) as lab:` starts the services and
owns everything that must be released when the lab stops (the journal and its flush task, the
services, the pcap capture, the live board), released in reverse order whatever happens."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from labkit.events import EventSink, StaticDirectory
from labkit.plan.build import Plan
from labkit.services.journal import (
    LOG_BACKUPS,
    LOG_MAX_BYTES,
    MALFORMED_PER_SECOND,
    JsonLinesLog,
    MalformedLimiter,
)
from labkit.services.supervisor import RunningLab, StartError, start_lab

if TYPE_CHECKING:
    from labkit.capture import Capture
    from labkit.inventory.faults import FaultRule
    from labkit.services.admin import AdminSettings


@dataclass(frozen=True)
class LogSettings:
    """The JSON-lines journal: where, how big one file grows, how many rotated files are kept, and
    how many malformed-input events per service and second it takes (the rest are summarised)."""

    path: Path
    max_bytes: int = LOG_MAX_BYTES
    backups: int = LOG_BACKUPS
    malformed_per_second: int = MALFORMED_PER_SECOND


@contextlib.asynccontextmanager
async def run_lab(plan: Plan, *, log: LogSettings | None = None,
                  pcaps: tuple[Path | None, Path | None] = (None, None), sinks: list[EventSink] | None = None,
                  loopback: bool = False, port_offset: int | None = None, state_dir: Path = Path(".labkit"),
                  allow_other_dhcp: bool = False, faults: list[FaultRule] | None = None,
                  fault_seed: int | None = None, admin: AdminSettings | None = None,
                  tls_keylog: Path | None = None, workers: int = 1) -> AsyncIterator[RunningLab]:
    """The running lab and everything it owns (journal, its flush task, services, pcap capture,
    views added by `watch`), released in reverse order on leaving, whatever happens. `admin`: the
    control socket in `state_dir` and the admin port (dashboard, /metrics); None: neither.
    `tls_keylog`: where HTTPS logs its TLS session keys (the capture's decode-as notes name it).
    `workers` > 1: DNS and TFTP in that many processes (labkit.services.workers), their events
    into this process's journal; DHCP and the rest stay here."""
    async with contextlib.AsyncExitStack() as stack:
        first: list[EventSink] = []
        limiter: MalformedLimiter | None = None
        journal: JsonLinesLog | None = None
        if log is not None:
            journal = JsonLinesLog(log.path, max_bytes=log.max_bytes, backups=log.backups)
            stack.callback(journal.close)
            limiter = MalformedLimiter(journal, log.malformed_per_second)
            stack.callback(limiter.flush)
            first.append(limiter)
        # the capture (started once the lab is up) stops only after the services have closed:
        # it keeps every packet until then, and its thread catches up with what it has queued
        captures: list[Capture] = []
        stack.callback(_stop_all, captures)
        lab = await start_lab(plan, loopback=loopback, port_offset=port_offset, state_dir=state_dir,
                              sinks=[*first, *(sinks or [])], allow_other_dhcp=allow_other_dhcp,
                              faults=faults, fault_seed=fault_seed, admin=admin,
                              tls_keylog=tls_keylog, workers=workers)
        stack.push_async_callback(lab.close)
        lab.stack, lab.journal = stack, journal
        if lab.ops is not None:  # the admin API's ACS routes (labkit.services.acs_admin)
            lab.ops.acs = lab.services.get("acs")
        if journal is not None and limiter is not None:
            flusher = asyncio.create_task(journal.flush_periodically(before=[limiter]))
            stack.push_async_callback(_cancel, flusher)
        if pcaps != (None, None):
            lab.capture = _start_capture(lab, *pcaps, keylog=tls_keylog)
            captures.append(lab.capture)
        yield lab


def _stop_all(captures: list[Capture]) -> None:
    for capture in captures:
        capture.stop()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _start_capture(lab: RunningLab, pcap: Path | None, per_phone: Path | None, *,
                   keylog: Path | None = None) -> Capture:
    from labkit.capture import Capture, CaptureError
    from labkit.dissect import Dissection

    on_loopback = any(e.loopback for e in lab.endpoints.values())
    interface = "lo" if on_loopback else (lab.plan.interface or "lo")
    ports = {e.port for e in lab.endpoints.values()}
    dhcp_ports: frozenset[int] = frozenset()
    if "dhcp" in lab.endpoints:
        dhcp_ports = frozenset({lab.endpoints["dhcp"].port, lab.endpoints["dhcp"].port + 1})
        ports |= dhcp_ports
    tftp = lab.endpoints.get("tftp")
    named = {("acs_https" if name == "acs" and lab.plan.acs.https else name): e.port
             for name, e in lab.endpoints.items()}
    dissection = Dissection.for_ports(named, keylog if {"https", "acs_https"} & set(named) else None)
    try:
        capture = Capture(interface, ports, pcap, per_phone, lab.directory or StaticDirectory(), dhcp_ports,
                          dissection, tftp_port=tftp.port if tftp is not None else None)
        capture.start()
    except (CaptureError, OSError) as exc:
        raise StartError(f"--pcap: {exc}") from None
    return capture
