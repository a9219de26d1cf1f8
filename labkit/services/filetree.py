"""The tree TFTP and HTTP serve: the plan's files, plus an optional folder on disk.

Both protocols resolve names here, so confinement rules live in one place: the leading `/`
phones send is stripped; `..` segments, empty segments (doubled slashes), backslashes and
NUL bytes are refused; a name found on disk must stay inside the root once symlinks are
resolved, and so must a planned file on disk stay inside the folder it was declared in
(`firmware_dir` or any declared source folder), checked again at every request so that a link
placed after `labkit check` is refused too. Files on disk are read by offset (os.pread), never
loaded whole, so firmware of any size streams to many clients at once.

Uploads (TFTP WRQ) land in an `UploadFolder`: new files only, written to a hidden part file and
linked into place only when whole.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISDIR, S_ISLNK, S_ISREG
from typing import IO

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

    def open(self, *, read_ahead: bool = False) -> FileReader:
        return FileReader(self, read_ahead=read_ahead)


class FileReader:
    """Random access to a served file; one per transfer, closed when the transfer ends.

    read_ahead: one pread per 64 KiB rather than one per block. Blocks are requested in order
    (and re-requested only within a window), so a small forward buffer removes most read system
    calls; memory stays bounded at one chunk per transfer.
    """

    CHUNK = 64 * 1024

    def __init__(self, served: ServedFile, *, read_ahead: bool = False) -> None:
        self.served = served
        self.size, self.mac, self.kind = served.size, served.mac, served.kind
        self._fd: int | None = None
        self._ahead = read_ahead
        self._start = 0
        self._data = b""
        if served.data is None and served.disk_path is not None:
            self._fd = os.open(served.disk_path, os.O_RDONLY)

    def read_at(self, offset: int, size: int) -> bytes:
        if self.served.data is not None:
            return self.served.data[offset : offset + size]
        if self._fd is None:
            return b""
        if not self._ahead or size >= self.CHUNK:
            return os.pread(self._fd, size, offset)
        start = offset - self._start
        if start >= 0 and start + size <= len(self._data):
            return self._data[start : start + size]
        self._data = os.pread(self._fd, self.CHUNK, offset)
        self._start = offset
        return self._data[:size]

    @property
    def source(self) -> bytes | int:
        """What a compiled sender reads instead of calling read_at (labkit.native._tftp): the
        bytes in memory, or the open file descriptor (read by offset, 64 KiB ahead, alike)."""
        if self.served.data is not None:
            return self.served.data
        return self._fd if self._fd is not None else b""

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FileReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class FileTree:
    """Name -> ServedFile: the plan's files first, then `root` on disk (if given).

    sources: the declared folders planned files on disk come from (firmware_dir, ...). A planned
    file on disk must resolve inside the declared folder that holds it (the deepest one), or,
    when none is declared, inside the folder it was found in.
    """

    def __init__(self, files: Mapping[str, PlannedFile], root: Path | None = None,
                 sources: Iterable[Path] = ()) -> None:
        self._files = {path: _served(planned) for path, planned in files.items()}
        self.root = root.resolve() if root is not None else None
        # The root as a string, for `_plain` ("" for "/": names join with "/").
        self._root_prefix = str(self.root).rstrip("/") if self.root is not None else ""
        self.sources = tuple(sorted((Path(os.path.abspath(s)) for s in sources),
                                    key=lambda p: len(p.parts), reverse=True))

    def __len__(self) -> int:
        return len(self._files)

    def lookup(self, name: str) -> ServedFile | None:
        """The file for a requested name; None when absent; ForbiddenPath when refused."""
        key = normalize_request_path(name)
        served = self._files.get(key)
        if served is not None:
            return self._confined(served)
        if self.root is None:
            return None
        plain = self._plain(key)
        if plain is not None:
            return plain if isinstance(plain, ServedFile) else None
        return self._resolved(key)

    def _resolved(self, key: str) -> ServedFile | None:
        """The reference: the name resolved with every link followed, then confined."""
        assert self.root is not None
        candidate = (self.root / key).resolve()
        if not candidate.is_relative_to(self.root):
            raise ForbiddenPath("the name resolves outside the served folder")
        if not candidate.is_file():
            return None
        return ServedFile(key, candidate.stat().st_size, disk_path=candidate)

    def _plain(self, key: str) -> ServedFile | bool | None:
        """`_resolved`'s answer without pathlib when no link is on the way: the root and its
        ancestors (`_no_link_on`), then every segment of the name lstat'd in turn, each a plain
        directory (the last a regular file). The real path is then the name itself, inside the
        root, so `_resolved` would answer the same (profiled: realpath's Python was most of a
        TFTP request's look-up, ~45 µs). False: absent (a missing segment, or a file or directory
        where the name needs the other); None: a link or any other error on the way, for
        `_resolved` to decide."""
        path = self._root_prefix
        if not _no_link_on(path or "/"):
            return None
        segments = key.split("/")
        last = len(segments) - 1
        for index, segment in enumerate(segments):
            path = f"{path}/{segment}"
            try:
                mode = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                return False
            except OSError:
                return None
            if S_ISLNK(mode.st_mode):
                return None
            if index == last:
                return ServedFile(key, mode.st_size, disk_path=Path(path)) if S_ISREG(mode.st_mode) else False
            if not S_ISDIR(mode.st_mode):
                return False
        return None


    def _confined(self, served: ServedFile) -> ServedFile:
        """A planned file on disk, refused when its real path leaves its declared folder."""
        if served.disk_path is None:
            return served
        declared = Path(os.path.abspath(served.disk_path))
        if _no_link_on(str(declared)):  # then resolve() is `declared`, inside its folder
            return ServedFile(served.path, served.size, None, declared, served.kind, served.mac)
        return self._confined_resolved(served, declared)

    def _confined_resolved(self, served: ServedFile, declared: Path) -> ServedFile:
        """The reference: the planned file's real path, with every link followed."""
        folder = next((s for s in self.sources if declared.is_relative_to(s)), declared.parent)
        real = declared.resolve()
        if not real.is_relative_to(folder.resolve()):
            raise ForbiddenPath(f"{served.path} is a link that leaves its folder {folder} "
                                f"(to {real})")
        return ServedFile(served.path, served.size, None, real, served.kind, served.mac)


def _no_link_on(path: str) -> bool:
    """True when every ancestor of the absolute, normalized `path` and `path` itself exist and
    none is a symbolic link (so the path is its own real path); False for anything else, left
    to pathlib's resolve."""
    at = 0
    while True:
        at = path.find("/", at + 1)
        try:
            if S_ISLNK(os.lstat(path if at < 0 else path[:at]).st_mode):
                return False
        except OSError:
            return False
        if at < 0:
            return True


class UploadExists(LabkitError):
    """An upload's name is taken (uploads never overwrite)."""


class UploadFolder:
    """Where uploads land: new files only, confined to the folder."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def open(self, name: str) -> UploadFile:
        """ForbiddenPath, UploadExists or OSError when the name cannot be written."""
        key = normalize_request_path(name)
        target = (self.root / key).resolve()
        if not target.is_relative_to(self.root) or target == self.root:
            raise ForbiddenPath("the name resolves outside the upload folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() or target.is_symlink():
            raise UploadExists(key)
        return UploadFile(target)


class UploadFile:
    """An upload in progress: a hidden part file, linked into place only when whole."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.part = target.with_name(f".{target.name}.part-{secrets.token_hex(4)}")
        self.file: IO[bytes] | None = open(self.part, "xb")  # noqa: SIM115 - closed in close()

    def write(self, data: bytes) -> None:
        if self.file is None:
            raise OSError("upload already closed")
        self.file.write(data)

    def commit(self) -> bool:
        """Link the whole upload into place; False when that name appeared meanwhile."""
        if self.file is not None:
            self.file.close()
        try:
            os.link(self.part, self.target)  # link, not replace: never overwrite
        except FileExistsError:
            return False
        return True

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        with contextlib.suppress(OSError):
            os.unlink(self.part)


def _served(planned: PlannedFile) -> ServedFile:
    return ServedFile(planned.path, planned.size, planned.data, planned.disk_path, planned.kind,
                      planned.mac)
