"""The served tree refuses links that leave their declared folder, at every request (issue 10
item 6, serve-time part), and uploads land only as new files inside the upload folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.plan.profiles import PlannedFile
from labkit.services.filetree import FileTree, ForbiddenPath, UploadExists, UploadFolder


@pytest.fixture
def firmware(tmp_path: Path) -> Path:
    folder = tmp_path / "firmware"
    (folder / "sub").mkdir(parents=True)
    (folder / "real.loads").write_bytes(b"firmware")
    (tmp_path / "outside.txt").write_bytes(b"not yours")
    (folder / "escape.loads").symlink_to(tmp_path / "outside.txt")
    (folder / "passwd.loads").symlink_to("/etc/passwd")
    (folder / "sub" / "inside.loads").symlink_to(folder / "real.loads")
    return folder


def planned(folder: Path, name: str) -> dict[str, PlannedFile]:
    return {name: PlannedFile(name, "firmware", disk_path=folder / name)}


@pytest.mark.parametrize("name", ["escape.loads", "passwd.loads"])
def test_link_leaving_its_folder_is_refused(firmware: Path, name: str) -> None:
    tree = FileTree(planned(firmware, name), sources=[firmware])
    with pytest.raises(ForbiddenPath, match="leaves its folder"):
        tree.lookup(name)
    # Without the declared folder, the folder the file was found in is the bound.
    with pytest.raises(ForbiddenPath):
        FileTree(planned(firmware, name)).lookup(name)


def test_link_inside_its_declared_folder_is_served(firmware: Path) -> None:
    tree = FileTree(planned(firmware, "sub/inside.loads"), sources=[firmware])
    served = tree.lookup("sub/inside.loads")
    assert served is not None and served.disk_path == (firmware / "real.loads").resolve()
    with served.open() as reader:
        assert reader.read_at(0, 100) == b"firmware"


def test_link_placed_after_start_is_refused(firmware: Path) -> None:
    tree = FileTree(planned(firmware, "real.loads"), sources=[firmware])
    assert tree.lookup("real.loads") is not None
    (firmware / "real.loads").unlink()
    (firmware / "real.loads").symlink_to("/etc/passwd")
    with pytest.raises(ForbiddenPath):
        tree.lookup("real.loads")


def test_read_ahead_gives_the_same_bytes(tmp_path: Path) -> None:
    content = bytes(range(256)) * 1000
    (tmp_path / "f").write_bytes(content)
    served = FileTree({}, tmp_path).lookup("f")
    assert served is not None
    with served.open(read_ahead=True) as ahead:
        pieces = [ahead.read_at(offset, 1000) for offset in range(0, len(content), 1000)]
        assert b"".join(pieces) == content
        assert ahead.read_at(10, 5) == content[10:15]  # backwards: read again


def test_upload_folder(tmp_path: Path) -> None:
    folder = UploadFolder(tmp_path)
    upload = folder.open("logs/a.txt")
    upload.write(b"hello")
    assert upload.commit()
    upload.close()
    assert (tmp_path / "logs" / "a.txt").read_bytes() == b"hello"
    assert [p.name for p in (tmp_path / "logs").iterdir()] == ["a.txt"]  # no part file left
    with pytest.raises(UploadExists):
        folder.open("logs/a.txt")
    with pytest.raises(ForbiddenPath):
        folder.open("../x")
    (tmp_path / "out").symlink_to("/tmp")
    with pytest.raises(ForbiddenPath):
        folder.open("out/x")
