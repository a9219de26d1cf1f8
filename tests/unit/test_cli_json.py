"""`--json` on leases, timeline, check, explain and scenario: one JSON object each, in the shapes
`labkit.cli.shapes` documents."""

from __future__ import annotations

import json
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from labkit.cli import app
from labkit.events import Event
from labkit.protocols.dhcp.leases import Lease
from tests.helpers import ONE_PHONE_LAB, write_lab

MAC = "00:56:2b:00:00:01"


def run_json(*args: str, code: int = 0) -> dict[str, Any]:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == code, result.output
    shape = json.loads(result.stdout)
    assert shape["version"] == 1
    return shape


def test_check_json_says_ok_with_the_counts(tmp_path: Path) -> None:
    inventory = write_lab(tmp_path)
    shape = run_json("check", str(inventory))
    assert shape["ok"] is True and shape["file"].endswith("lab.yaml")
    assert shape["domain"] == "t.example" and shape["phones"] == 1 and shape["models"] == 1
    assert shape["files"] > 0 and shape["warnings"] == []


def test_check_json_locates_each_error(tmp_path: Path) -> None:
    inventory = write_lab(tmp_path, ONE_PHONE_LAB.replace('"00:56:2b:00:00:01"', '"not-a-mac"'))
    shape = run_json("check", str(inventory), code=1)
    assert shape["ok"] is False and shape["errors"]
    error = shape["errors"][0]
    assert error["file"].endswith("lab.yaml") and error["line"] == 3 and "mac" in error["field"]


def test_explain_json_lists_each_option_with_its_bytes(tmp_path: Path) -> None:
    inventory = write_lab(tmp_path)
    shape = run_json("explain", str(inventory), "--phone", MAC)
    assert shape["mac"] == MAC and shape["model"] == "CP-8851-3PCC" and shape["ip"] == "192.0.2.9"
    by_code = {o["code"]: o for o in shape["options"]}
    assert by_code[54]["sent"] is True and by_code[54]["hex"] == "c0000201"
    assert by_code[54]["value"] == "192.0.2.1"
    keys = {"code", "name", "level", "forced", "sent", "hex", "value"}
    assert all(set(option) == keys for option in shape["options"])
    assert MAC in shape["explanation"] and "DHCP options in its ACK" in shape["explanation"]


def test_scenario_list_json() -> None:
    from labkit.scenarios import names

    assert run_json("scenario", "--list")["scenarios"] == names()


def test_leases_json(tmp_path: Path, monkeypatch: Any) -> None:
    import labkit.services.leases

    leases = [Lease(MAC, IPv4Address("192.0.2.50"), "bound", 4_000_000_000.0, phone="desk-1"),
              Lease(MAC, IPv4Address("192.0.2.51"), "bound", 1.0),
              Lease("00:56:2b:00:00:09", IPv4Address("192.0.2.52"), "declined", 4_000_000_000.0)]
    monkeypatch.setattr(labkit.services.leases, "read_leases", lambda state: leases)
    shape = run_json("leases", "--state", str(tmp_path))
    assert shape["state"] == str(tmp_path)
    assert shape["leases"] == [
        {"mac": MAC, "ip": "192.0.2.50", "phone": "desk-1", "expires": 4_000_000_000.0, "state": "bound"},
        {"mac": MAC, "ip": "192.0.2.51", "phone": None, "expires": 1.0, "state": "expired"},
        {"mac": None, "ip": "192.0.2.52", "phone": None, "expires": 4_000_000_000.0, "state": "declined"}]


def test_timeline_json(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    events = [Event(10.0, "dhcp", "0.0.0.0:68", MAC, "request", "REQUEST", "ACK 192.0.2.9", "ok",
                    {"ip": "192.0.2.9"}),
              Event(11.0, "tftp", "192.0.2.9:1000", None, "rrq", "/CP-8851-3PCC.xml", "not found",
                    "not-found", {})]
    log.write_text("".join(e.to_json() + "\n" for e in events))
    shape = run_json("timeline", MAC.upper(), "--log", str(log))
    assert shape["mac"] == MAC and shape["reached"] == ["lease"]
    assert [e["action"] for e in shape["events"]] == ["request", "rrq"]
    assert shape["events"][1]["result"] == "not-found" and "stalled after" in shape["diagnosis"]
