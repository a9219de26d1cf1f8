"""The served tree refuses links that leave their declared folder, at every request (issue 10
item 6, serve-time part), and uploads land only as new files inside the upload folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from labkit.plan.profiles import PlannedFile
from labkit.services.filetree import FileTree, ForbiddenPath, ServedFile, UploadExists, UploadFolder


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


def _answer(tree: FileTree, name: str, reference: bool) -> object:
    """What a look-up answers: the ServedFile, None, or the exception's type."""
    try:
        if reference:
            assert tree.root is not None
            from labkit.services.filetree import normalize_request_path
            return tree._resolved(normalize_request_path(name))
        return tree.lookup(name)
    except (ForbiddenPath, OSError, RuntimeError) as exc:  # RuntimeError: pathlib's link loop
        return type(exc)


@pytest.fixture
def ugly_root(tmp_path: Path) -> Path:
    """A served folder with every kind of entry the look-up must tell apart."""
    import os
    root = tmp_path / "a" / "root"
    (root / "dir" / "deep").mkdir(parents=True)
    (root / "f.bin").write_bytes(b"x" * 700)
    (root / "dir" / "deep" / "g.bin").write_bytes(b"y" * 3)
    (root / "EMPTY").write_bytes(b"")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "o.bin").write_bytes(b"secret")
    (root / "in-link").symlink_to(root / "f.bin")  # a link that stays inside: served
    (root / "rel-link").symlink_to("dir/deep/g.bin")
    (root / "out-link").symlink_to(tmp_path / "outside" / "o.bin")
    (root / "out-dir").symlink_to(tmp_path / "outside")
    (root / "dir-link").symlink_to(root / "dir")
    (root / "dangling").symlink_to(root / "nowhere")
    (root / "loop").symlink_to(root / "loop")
    (root / "up").symlink_to("..")
    os.mkfifo(root / "fifo")
    return root


UGLY_NAMES = ["f.bin", "/f.bin", "F.BIN", "EMPTY", "dir", "dir/", "dir/deep/g.bin", "dir/deep/G.bin",
              "missing", "missing/f.bin", "f.bin/x", "dir/deep/g.bin/x", "in-link", "rel-link",
              "out-link", "out-dir/o.bin", "out-dir", "dir-link/deep/g.bin", "dangling", "loop",
              "loop/x", "up/root/f.bin", "up/../x", "../f.bin", "dir/../f.bin", "./f.bin",
              "dir//deep/g.bin", "a\\b", "nul\x00", "", "/", "x" * 300, "dir/" + "y" * 300,
              "fifo", "dir/deep"]


def test_plain_lookup_answers_as_the_resolving_one(ugly_root: Path) -> None:
    """The look-up without pathlib (no link on the way) and the reference through `resolve`
    give the same answer for every name, the served path and size included; after the root's
    own parent becomes a link, and after a file becomes a link out, too."""
    tree = FileTree({}, ugly_root)
    answers = {name: _answer(tree, name, reference=False) for name in UGLY_NAMES}
    for name in UGLY_NAMES:
        assert answers[name] == _answer(tree, name, reference=True), name
    assert isinstance(answers["f.bin"], ServedFile) and answers["f.bin"].size == 700
    assert isinstance(tree._plain("dir/deep/g.bin"), ServedFile)  # the case the fast path takes
    assert tree._plain("in-link") is None and tree._plain("missing") is False
    assert answers["missing"] is None and answers["fifo"] is None
    assert answers["out-link"] is ForbiddenPath and answers["up/root/f.bin"] is not None
    # Swapped under a running tree: the file for a link out, the root's parent for a link.
    (ugly_root / "f.bin").unlink()
    (ugly_root / "f.bin").symlink_to(ugly_root.parent.parent / "outside" / "o.bin")
    assert _answer(tree, "f.bin", reference=False) is ForbiddenPath
    parent = ugly_root.parent
    parent.rename(parent.with_name("moved"))
    parent.symlink_to(parent.with_name("moved"))
    for name in UGLY_NAMES:
        assert _answer(tree, name, reference=False) == _answer(tree, name, reference=True), name
    assert _answer(tree, "dir/deep/g.bin", reference=False) is ForbiddenPath


def test_planned_files_confined_alike_without_pathlib(firmware: Path, tmp_path: Path) -> None:
    """A planned file with no link on its way is confined without `resolve`; every other case
    (links in or out, a missing file, a linked folder) gets the reference's answer."""
    import os
    linked = tmp_path / "linked-firmware"
    linked.symlink_to(firmware)
    cases = {"real.loads": firmware / "real.loads", "escape.loads": firmware / "escape.loads",
             "passwd.loads": firmware / "passwd.loads", "sub/inside.loads": firmware / "sub" / "inside.loads",
             "gone.loads": firmware / "gone.loads", "via-link.loads": linked / "real.loads",
             "dotted.loads": firmware / "sub" / ".." / "real.loads"}
    (firmware / "gone.loads").write_bytes(b"soon gone")
    files = {name: PlannedFile(name, "firmware", disk_path=path) for name, path in cases.items()}
    trees = [FileTree(files, sources=sources) for sources in ((), (firmware,), (linked,))]
    (firmware / "gone.loads").unlink()  # removed after the plan was made
    for tree in trees:
        for name, path in cases.items():
            served = tree._files[name]
            declared = Path(os.path.abspath(path))
            assert _outcome(tree._confined, served) == \
                _outcome(tree._confined_resolved, served, declared), (tree.sources, name)
    fast = trees[0]._confined(trees[0]._files["real.loads"])
    assert fast.disk_path == firmware / "real.loads"


def _outcome(step: Callable[..., ServedFile], *args: object) -> object:
    try:
        return step(*args)
    except ForbiddenPath as exc:
        return ("forbidden", str(exc))
