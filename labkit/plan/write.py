"""`labkit render`: write the Plan to a folder a person can read (zones/, files/, dhcp.json)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from labkit.errors import LabkitError
from labkit.plan.build import Plan
from labkit.plan.dhcp import OptionSet, jsonable

MANIFEST = ".labkit-render.json"  # what the last render wrote, so the next one deletes only that
OWN_FOLDERS = ("zones", "files")
MAX_SCANNED = 100_000  # files looked at for ones labkit did not write (a wrong -o, a home folder)


class RenderRefused(LabkitError):
    """`render -o DIR` would delete files it did not write."""


def option_set_json(options: OptionSet) -> list[dict[str, Any]]:
    out = []
    for code, planned in options.options.items():
        out.append({
            "code": code,
            "name": planned.name,
            "level": planned.level,
            "always_sent": planned.forced,
            "hex": planned.payload.hex(),
            "decoded": jsonable(code, planned.decoded()),
        })
    return out


def dhcp_json(plan: Plan) -> dict[str, Any]:
    inv = plan.inventory
    phones = {}
    for mac, phone_plan in plan.phones.items():
        phone = phone_plan.phone
        phones[mac] = {
            "name": phone.name,
            "model": phone.model,
            "serial": phone.serial,
            "ip": str(phone.ip) if phone.ip else None,
            "vendor_class": phone_plan.vendor_class,
            "options": option_set_json(phone_plan.options),
        }
    pool = inv.lab.pool
    return {
        "answer": inv.lab.answer,
        "pool": {
            "range": [str(pool.start), str(pool.end)] if pool else None,
            "options": option_set_json(plan.pool_options),
            "classes": {match: option_set_json(o) for match, o in plan.class_options.items()},
        },
        "phones": phones,
    }


def written_before(out_dir: Path) -> set[str]:
    """Paths (relative to `out_dir`) the last render wrote, from its manifest."""
    try:
        data = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    return {str(p) for p in data.get("written", [])} if isinstance(data, dict) else set()


def foreign_files(out_dir: Path) -> list[str]:
    """Files in zones/ and files/ under `out_dir` that no earlier render wrote (sorted, relative)."""
    ours = written_before(out_dir)
    foreign: list[str] = []
    scanned = 0
    for folder in OWN_FOLDERS:
        for root, _dirs, names in os.walk(out_dir / folder):
            for name in names:
                rel = (Path(root) / name).relative_to(out_dir).as_posix()
                if rel not in ours:
                    foreign.append(rel)
                scanned += 1
                if scanned >= MAX_SCANNED:
                    return sorted(foreign) or ["(more files than labkit checks)"]
    return sorted(foreign)


def write_plan(plan: Plan, out_dir: Path, *, force: bool = False) -> list[Path]:
    """Write zones/, files/ and dhcp.json under `out_dir`; returns the paths written.

    An earlier render's zones/ and files/ are replaced whole (a stale file must not look
    planned), but files labkit did not write there stop it with RenderRefused unless `force`."""
    foreign = foreign_files(out_dir)
    if foreign and not force:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise RenderRefused(f"{out_dir} holds {len(foreign)} file(s) labkit did not write, which rendering "
                            f"would delete: {shown}; move them away, choose another -o, or use --force")
    written: list[Path] = []
    zones_dir = out_dir / "zones"
    files_dir = out_dir / "files"
    for folder in (zones_dir, files_dir):
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    for zone in plan.zones.values():
        path = zones_dir / zone.file_name
        path.write_text(zone.text, encoding="ascii")
        written.append(path)
    for rel, planned in sorted(plan.files.items()):
        path = files_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if planned.data is not None:
            path.write_bytes(planned.data)
        elif planned.disk_path is not None:
            # a copy, not a link: editing the rendered tree must never alter the source firmware
            shutil.copyfile(planned.disk_path, path)
        written.append(path)
    dhcp_path = out_dir / "dhcp.json"
    dhcp_path.write_text(json.dumps(dhcp_json(plan), indent=2) + "\n", encoding="utf-8")
    written.append(dhcp_path)
    manifest = {"written": [p.relative_to(out_dir).as_posix() for p in written]}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return written
