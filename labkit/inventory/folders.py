"""The folders an inventory declares (firmware, templates, uploads) hold what is served from them.

A symbolic link inside such a folder that points outside it would let TFTP and HTTP serve (or a
WRQ write) any file the kit can reach, with no authentication: `labkit check` refuses it, naming
the field that declares the folder. Links that stay inside their folder are fine (aliases).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from labkit.inventory.source import Path_

if TYPE_CHECKING:
    from labkit.inventory.load import LoadedInventory

MAX_ENTRIES = 200_000  # a declared folder bigger than this is not walked further (and says so)


@dataclass(frozen=True)
class LeavingLink:
    """A link found in a declared folder whose target lies outside that folder."""

    link: Path  # relative to the folder
    target: Path  # where it leads, resolved as far as it exists


@dataclass(frozen=True)
class FolderScan:
    leaving: tuple[LeavingLink, ...]
    truncated: bool  # MAX_ENTRIES reached before the walk ended


def declared_folders(loaded: LoadedInventory) -> Iterator[tuple[Path_, str, Path]]:
    """(field path, the value as written, the folder) for every source folder the inventory names."""
    lab = loaded.inventory.lab
    yield ("lab", "firmware_dir"), lab.firmware_dir, loaded.firmware_dir
    yield ("lab", "templates_dir"), lab.templates_dir, loaded.templates_dir
    upload = loaded.inventory.services.tftp.upload_dir
    if upload is not None:
        yield ("services", "tftp", "upload_dir"), upload, loaded.base_dir / upload


def scan(folder: Path, max_entries: int = MAX_ENTRIES) -> FolderScan:
    """Every link under `folder` (at any depth, links not followed) that resolves outside it."""
    if not folder.is_dir():
        return FolderScan((), False)
    root = Path(os.path.realpath(folder))  # a declared folder may itself be a link: its target counts
    leaving: list[LeavingLink] = []
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root):  # os.walk never descends into linked folders
        for name in sorted(dirnames + filenames):
            seen += 1
            if seen > max_entries:
                return FolderScan(tuple(leaving), True)
            entry = Path(dirpath) / name
            if not entry.is_symlink():
                continue
            target = Path(os.path.realpath(entry))  # never raises, even for loops or dangling links
            if not target.is_relative_to(root):
                leaving.append(LeavingLink(entry.relative_to(root), target))
    return FolderScan(tuple(leaving), False)
