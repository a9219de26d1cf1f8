"""A TR-069 Download done by the virtual phone (pure): fetch the file with the phone's own clients
(the driver's `Fetch`: HTTP, HTTPS with the lab CA, TFTP), check it, apply it, and build the
TransferComplete that reports it (TR-069 Amendment 3 §A.3.2.8, §A.3.3.2; fault codes 9010-9019).

Applying: a firmware image (1 Firmware Upgrade Image) becomes the running load, named after
TargetFileName or the URL's file without ".loads" (the MPP upgrade-rule naming), and the phone
reboots into it; a vendor configuration file (3) is read as an MPP flat profile and applied;
the custom CA file (the configurable vendor type) must hold a PEM certificate and is kept.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from labkit.errors import CodecError
from labkit.formats import flat_profile
from labkit.phone.cwmp import CwmpSettings
from labkit.phone.cwmp_tree import ParameterTree
from labkit.phone.effects import Fetch, FetchResult, Now, Sleep
from labkit.protocols.cwmp import codes, rpc
from labkit.protocols.cwmp.values import Value

Flow = Generator[Any, Any, Any]
MAX_DELAY = 3600.0  # DelaySeconds honoured up to an hour of phone time


@dataclass(frozen=True)
class DownloadJob:
    request: rpc.Download
    ca_file_type: str
    tree: ParameterTree
    firmware: str  # the load running now


@dataclass(frozen=True)
class DownloadDone:
    transfer_complete: rpc.TransferComplete
    summary: str
    firmware: str | None = None  # the new load, when a firmware image was applied
    ca: bytes | None = None  # the custom CA, when one was installed


def _fault(code: int, text: str) -> rpc.TransferFault:
    return rpc.TransferFault(code, text[:256])


def _stamp(now: float) -> datetime:
    return datetime.fromtimestamp(float(now), UTC).replace(microsecond=0)


def perform_download(job: DownloadJob, settings: CwmpSettings, user_agent: str = "") -> Flow:
    request = job.request
    if request.delay_seconds:
        yield Sleep(min(float(request.delay_seconds), MAX_DELAY))
    started = yield Now()
    result = yield from _fetch(request, user_agent)
    fault, applied = (result, None) if isinstance(result, rpc.TransferFault) else _apply(job, result)
    finished = yield Now()
    done = rpc.TransferComplete(request.command_key, fault, _stamp(started), _stamp(finished))
    firmware = applied if request.file_type == rpc.FIRMWARE and isinstance(applied, str) else None
    ca = applied if isinstance(applied, bytes) else None
    summary = f"{request.url}: " + ("ok" if fault.code == 0 else f"fault {fault.code} {fault.string}")
    return DownloadDone(done, summary, firmware, ca)


def _fetch(request: rpc.Download, user_agent: str) -> Flow:
    """GET the file, answering one 401 with the Download's Username/Password."""
    uid, pwd = request.username or None, request.password or None
    result: FetchResult = yield Fetch(request.url, user_agent=user_agent)
    if result.status == 401 and uid is not None:
        result = yield Fetch(request.url, uid=uid, pwd=pwd or "", user_agent=user_agent)
    if result.status is None:
        return _fault(codes.CONTACT_FAILURE, f"unable to contact file server: {result.error or 'no answer'}")
    if result.status in (401, 403, 407):
        return _fault(codes.FILE_SERVER_AUTH, f"file server refused: HTTP {result.status}")
    if result.status == 404:
        return _fault(codes.ACCESS_FAILURE, "unable to access file: 404")
    if result.status != 200:
        return _fault(codes.TRANSFER_FAILURE, f"HTTP {result.status}")
    if request.file_size and len(result.body) < request.file_size:
        return _fault(codes.INCOMPLETE, f"{len(result.body)} of {request.file_size} bytes")
    if not result.body:
        return _fault(codes.CORRUPTED, "empty file")
    return result


def _apply(job: DownloadJob, result: FetchResult) -> tuple[rpc.TransferFault, str | bytes | None]:
    request, body = job.request, result.body
    if request.file_type == rpc.FIRMWARE:
        name = request.target_file_name or urlsplit(request.url).path.rsplit("/", 1)[-1]
        load = name.removesuffix(".loads").removesuffix(".zip") or job.firmware
        job.tree.local_set("Device.DeviceInfo.SoftwareVersion", Value.string(load))
        return rpc.TransferFault(), load
    if request.file_type == rpc.VENDOR_CONFIG:
        try:
            params = flat_profile.parse(body)
        except CodecError as exc:
            return _fault(codes.CORRUPTED, f"file corrupted: {exc}"), None
        job.tree.apply_profile({name: p.value for name, p in params.items()})
        return rpc.TransferFault(), None
    if request.file_type == job.ca_file_type:
        if b"-----BEGIN CERTIFICATE-----" not in body:
            return _fault(codes.CORRUPTED, "file corrupted: no PEM certificate"), None
        return rpc.TransferFault(), body
    return _fault(codes.TRANSFER_FAILURE, f"file type {request.file_type!r}"), None
