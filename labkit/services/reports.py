"""Report_Rule uploads kept per phone: `<state dir>/reports/<MA>/<time>-<n><ext>` plus a
`.json` beside each with what came (method, path, content type, encoding, size, ...).

The chapter (reference §3.3, §4.4): reports go with `HTTP_Report_Method` PUT or POST, and are
aes128gcm-encrypted when the Report_Rule has no `--key`. An aes128gcm body is decoded with the
phone's IKM when the inventory knows it; otherwise (or when it does not decode) it is stored
as received and the metadata says so. Bounded: the size of one upload, the uploads kept per
phone (the oldest go first) and the bytes kept for all phones (beyond: refused).
"""

from __future__ import annotations

import datetime
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.errors import CodecError
from labkit.formats import aes128gcm
from labkit.plan.http import ReportsPlan

REPORTS_DIR = "reports"
UNIDENTIFIED = "unidentified"  # the folder of uploads from a phone the kit could not name


class UploadRefused(Exception):
    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status, self.why = status, why


@dataclass(frozen=True)
class Upload:
    """One upload as received."""

    mac: str | None
    method: str
    path: str
    content_type: str
    encoding: str  # Content-Encoding ("" for none)
    body: bytes
    client: str
    time: float


def folder_name(mac: str | None) -> str:
    return mac.replace(":", "") if mac else UNIDENTIFIED


def decode(body: bytes, encoding: str, ikm: bytes | None) -> tuple[bytes, bool, str]:
    """(what to keep, decoded?, a note): aes128gcm decoded with `ikm` when it can be."""
    if encoding.strip().lower() != "aes128gcm":
        return body, False, "" if not encoding else f"content encoding {encoding!r} kept as received"
    if ikm is None:
        return body, False, "aes128gcm: the inventory knows no IKM for this phone; stored as received"
    try:
        return aes128gcm.decrypt(body, ikm), True, "aes128gcm: decoded with the phone's IKM"
    except CodecError as exc:
        return body, False, f"aes128gcm: does not decode with the phone's IKM ({exc}); stored as received"


class ReportStore:
    """The reports folder of one state folder; safe across the service's threads."""

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / REPORTS_DIR
        self.lock = threading.Lock()
        self.total: int | None = None  # bytes kept, counted on first use
        self.sequence = 0

    def _count(self) -> int:
        if self.total is None:
            self.total = sum(p.stat().st_size for p in self.root.glob("*/*") if p.is_file())
        return self.total

    def store(self, plan: ReportsPlan, upload: Upload) -> dict[str, Any]:
        """Keep `upload`; its metadata (with `name`, the file's name). UploadRefused when a bound says no."""
        if len(upload.body) > plan.max_bytes:
            raise UploadRefused(413, f"{len(upload.body)} bytes, over the {plan.max_bytes} bytes "
                                "one upload may hold (reports.max_bytes)")
        data, decoded, note = decode(upload.body, upload.encoding, plan.ikm_for(upload.mac))
        with self.lock:
            if self._count() + len(data) > plan.total_bytes:
                raise UploadRefused(507, f"the reports folder holds {self.total} bytes; "
                                    f"{len(data)} more would pass reports.total_bytes ({plan.total_bytes})")
            folder = self.root / folder_name(upload.mac)
            folder.mkdir(parents=True, exist_ok=True)
            self.sequence += 1
            when = datetime.datetime.fromtimestamp(upload.time, datetime.UTC)
            suffix = Path(upload.path).suffix if len(Path(upload.path).suffix) <= 8 else ""
            name = f"{when.strftime('%Y%m%dT%H%M%S.%fZ')}-{os.getpid()}-{self.sequence:04d}{suffix or '.bin'}"
            meta = {"name": name, "mac": upload.mac, "time": upload.time, "method": upload.method,
                    "path": upload.path, "content_type": upload.content_type, "encoding": upload.encoding,
                    "size": len(upload.body), "stored_size": len(data), "decoded": decoded, "note": note,
                    "client": upload.client}
            (folder / name).write_bytes(data)
            (folder / f"{name}.json").write_text(json.dumps(meta, indent=1) + "\n")
            assert self.total is not None
            self.total += len(data) + (folder / f"{name}.json").stat().st_size
            self._prune(folder, plan.per_phone)
        return meta


    def _prune(self, folder: Path, keep: int) -> None:
        """Drop the oldest uploads of one phone beyond `keep` (names sort by time)."""
        kept = sorted(p for p in folder.iterdir() if p.suffix == ".json")
        for meta in kept[: max(0, len(kept) - keep)]:
            data = meta.with_suffix("")
            for path in (data, meta):
                try:
                    size = path.stat().st_size
                    path.unlink()
                except OSError:
                    continue
                if self.total is not None:
                    self.total -= size


def list_reports(state_dir: Path, mac: str | None = None) -> list[dict[str, Any]]:
    """The metadata of every upload kept (of one phone with `mac`), oldest first."""
    root = state_dir / REPORTS_DIR
    folders = [root / folder_name(mac)] if mac else sorted(p for p in root.glob("*") if p.is_dir())
    out = []
    for folder in folders:
        for meta in sorted(folder.glob("*.json")):
            try:
                record = json.loads(meta.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(record, dict):
                record["file"] = str(meta.with_suffix(""))
                out.append(record)
    return sorted(out, key=lambda r: (float(r.get("time") or 0), str(r.get("name"))))


def find_report(state_dir: Path, name: str) -> tuple[dict[str, Any], bytes] | None:
    """One upload by its name (as `labkit reports` lists it): its metadata and its stored bytes."""
    if "/" in name or name.startswith("."):
        return None
    for record in list_reports(state_dir):
        if record.get("name") == name:
            try:
                return record, Path(record["file"]).read_bytes()
            except OSError:
                return None
    return None
