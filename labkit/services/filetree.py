"""The tree TFTP and HTTP serve: the plan's files, plus an optional folder on disk.

Both protocols resolve names here, so confinement rules live in one place: the leading `/`
phones send is stripped; `..` segments, empty segments (doubled slashes), backslashes and
NUL bytes are refused; a name found on disk must stay inside the root once symlinks are
resolved. Files on disk are read by offset (os.pread), never loaded whole, so firmware of any
size streams to many clients at once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from labkit.errors import LabkitError
from labkit.plan.profiles import PlannedFile


class ForbiddenPath(LabkitError):
    """A requested name that could reach outside the served tree."""


def normalize_request_path(name: str) -> str:
    """The tree key for a requested name, or ForbiddenPath. `/8851-3PCC.xml` -> `8851-3PCC.xml`."""
    if "\x00" in name:
        raise ForbiddenPath("NUL byte in the name")
    if "\\" in name:
        raise ForbiddenPath("backslash in the name")
    relative = name[1:] if name.startswith("/") else name
    if not relative:
        raise ForbiddenPath("empty name")
    segments = relative.split("/")
    for segment in segments:
        if segment == "":
            raise ForbiddenPath("empty path segment (doubled or leading slash)")
        if segment in (".", ".."):
            raise ForbiddenPath(f"{segment!r} segment")
    return relative


@dataclass(frozen=True)
class ServedFile:
    """One file ready to serve: bytes in memory or a file on disk read by offset."""

    path: str
    size: int
    data: bytes | None = None
    disk_path: Path | None = None
    kind: str = "file"
    mac: str | None = None  # the phone this file belongs to, for per-phone profiles

    def open(self) -> FileReader:
        return FileReader(self)


class FileReader:
    """Random access to a served file; one per transfer, closed when the transfer ends."""

    def __init__(self, served: ServedFile) -> None:
        self.served = served
        self._fd: int | None = None
        if served.data is None and served.disk_path is not None:
            self._fd = os.open(served.disk_path, os.O_RDONLY)

    def read_at(self, offset: int, size: int) -> bytes:
        if self.served.data is not None:
            return self.served.data[offset : offset + size]
        if self._fd is None:
            return b""
        return os.pread(self._fd, size, offset)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FileReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class FileTree:
    """Name -> ServedFile: the plan's files first, then `root` on disk (if given)."""

    def __init__(self, files: Mapping[str, PlannedFile], root: Path | None = None) -> None:
        self._files = {path: _served(planned) for path, planned in files.items()}
        self.root = root.resolve() if root is not None else None

    def __len__(self) -> int:
        return len(self._files)

    def lookup(self, name: str) -> ServedFile | None:
        """The file for a requested name; None when absent; ForbiddenPath when refused."""
        key = normalize_request_path(name)
        served = self._files.get(key)
        if served is not None:
            return served
        if self.root is None:
            return None
        candidate = (self.root / key).resolve()
        if not candidate.is_relative_to(self.root):
            raise ForbiddenPath("the name resolves outside the served folder")
        if not candidate.is_file():
            return None
        return ServedFile(key, candidate.stat().st_size, disk_path=candidate)


def _served(planned: PlannedFile) -> ServedFile:
    return ServedFile(planned.path, planned.size, planned.data, planned.disk_path, planned.kind,
                      planned.mac)
