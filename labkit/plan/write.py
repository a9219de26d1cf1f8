"""`labkit render`: write the Plan to a folder a person can read (zones/, files/, dhcp.json)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from labkit.plan.build import Plan
from labkit.plan.dhcp import OptionSet, jsonable


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


def write_plan(plan: Plan, out_dir: Path) -> list[Path]:
    """Write zones/, files/ and dhcp.json under `out_dir`; returns the paths written."""
    written: list[Path] = []
    zones_dir = out_dir / "zones"
    files_dir = out_dir / "files"
    for folder in (zones_dir, files_dir):
        if folder.exists():
            shutil.rmtree(folder)  # a stale file from an earlier render must not look planned
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
    return written

