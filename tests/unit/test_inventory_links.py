"""A link in a declared source folder that leads out of it is refused by `labkit check` (issue 10 item 6).

TFTP serves the firmware and template folders without authentication, and WRQs land in the upload
folder: a link out of them would serve (or overwrite) any file the kit can read.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from labkit.inventory.folders import scan
from labkit.inventory.load import load
from labkit.inventory.source import InventoryError
from tests.helpers import FIRMWARE, ONE_PHONE_LAB, write_lab


@pytest.fixture()
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "outside" / "secret.txt"
    path.parent.mkdir()
    path.write_text("not for phones\n")
    return path


def _problems(path: Path) -> list[tuple[str, str, str]]:
    with pytest.raises(InventoryError) as caught:
        load(path)
    return [(str(p.location), p.field, p.message) for p in caught.value.problems]


def test_a_firmware_link_out_of_the_folder_is_an_error_at_its_field(tmp_path: Path, secret: Path) -> None:
    inventory = write_lab(tmp_path / "lab", ONE_PHONE_LAB.replace("lab: {", "lab: {firmware_dir: fw, "),
                          firmware=False)
    (tmp_path / "lab" / "fw").mkdir()
    (tmp_path / "lab" / "fw" / FIRMWARE).symlink_to(secret)
    [(where, field, message)] = _problems(inventory)
    assert where == f"{inventory}:1" and field == "lab.firmware_dir"
    assert f"fw/{FIRMWARE} is a link to {secret}, which is outside fw/" in message


def test_links_out_of_templates_and_upload_folders_at_any_depth(tmp_path: Path, secret: Path) -> None:
    text = ONE_PHONE_LAB + "services:\n  tftp:\n    upload_dir: uploads\n"
    inventory = write_lab(tmp_path / "lab", text)
    (tmp_path / "lab" / "templates" / "sub").mkdir()
    (tmp_path / "lab" / "templates" / "sub" / "phone.xml.j2").symlink_to(secret)
    (tmp_path / "lab" / "uploads").mkdir()
    (tmp_path / "lab" / "uploads" / "escape").symlink_to(secret.parent, target_is_directory=True)
    problems = _problems(inventory)
    assert {(where, field) for where, field, _ in problems} == {
        (f"{inventory}:1", "lab.templates_dir"), (f"{inventory}:6", "services.tftp.upload_dir")}
    messages = " | ".join(message for _, _, message in problems)
    assert "templates/sub/phone.xml.j2 is a link to" in messages
    assert f"uploads/escape is a link to {secret.parent}" in messages


def test_a_dangling_link_out_of_the_folder_is_refused_too(tmp_path: Path) -> None:
    inventory = write_lab(tmp_path / "lab")
    (tmp_path / "lab" / "firmware" / "later.loads").symlink_to("/nonexistent/labkit/later.loads")
    [(_, field, message)] = _problems(inventory)
    assert field == "lab.firmware_dir"
    assert "firmware/later.loads is a link to /nonexistent/labkit/later.loads" in message


def test_links_that_stay_inside_and_a_linked_folder_itself_are_fine(tmp_path: Path) -> None:
    real = tmp_path / "store" / "firmware"
    write_lab(tmp_path / "store")  # the firmware file lives in store/firmware
    inventory = write_lab(tmp_path / "lab", firmware=False)
    (tmp_path / "lab" / "firmware").rmdir()
    (tmp_path / "lab" / "firmware").symlink_to(real, target_is_directory=True)  # the folder as declared
    (real / "alias.loads").symlink_to(FIRMWARE)  # an alias inside the folder
    (real / "loop").symlink_to("loop")  # a loop inside the folder leads nowhere outside
    assert load(inventory).inventory.lab.firmware_dir == "firmware"
    assert scan(real).leaving == ()


def test_the_scan_is_bounded_and_says_so(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"f{i}").write_text("x")
    assert scan(tmp_path, max_entries=3).truncated
    assert not scan(tmp_path, max_entries=5).truncated


def test_labkit_check_names_file_line_and_field(tmp_path: Path, secret: Path) -> None:
    inventory = write_lab(tmp_path / "lab")
    (tmp_path / "lab" / "firmware" / "evil.loads").symlink_to(secret)
    result = subprocess.run([sys.executable, "-m", "labkit", "check", str(inventory)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert f"{inventory}:1" in output and "lab.firmware_dir" in output
    assert f"firmware/evil.loads is a link to {secret}" in output
    assert "Traceback" not in output
