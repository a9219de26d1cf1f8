"""The `--json` output of every command that has one, in stable, documented shapes, and the
human rendering of `labkit status`.

Every shape is one JSON object with `"version": 1` (a field that changes meaning bumps it; new
fields may appear). Times are epoch seconds (floats); MACs are lower-case, colon-separated.

- `labkit status --json`: `labkit.services.ops.LabOps.snapshot()`: {version, now, events,
  last_event, stages: {waiting, dhcp, profile, firmware, provisioned: count}, phones: [{mac, name,
  model, address, state, problem, first_contact, last_contact, provisioned_at,
  seconds_to_provisioned, firmware, faults: {rule: hits}, events}], services: {name: {requests,
  errors, malformed, kernel_drops, by_action, errors_by_reason}}, faults_fired: {rule: count},
  unknown_clients: {address: events}, leases_in_use, lab: {name, domain}, faults_in_force:
  [{label, service, action, when, match}], admin: url or null}
- `labkit leases --json`: {version, state, leases: [{mac, ip, phone, expires, state}]} (state:
  bound, expired, released, declined, ...; mac null for a declined address)
- `labkit timeline --json`: {version, mac, events: [event as in the log], reached: [milestone],
  diagnosis}
- `labkit check --json`: {version, ok, file, lab, domain, phones, models, files, zones, warnings:
  [text]} or, for a broken inventory, {version, ok: false, file, errors: [{file, line, field,
  message}], warnings}
- `labkit explain --json`: {version, mac, name, model, ip, vendor_class, options: [{code, name,
  level, forced, sent, hex, value}], explanation: the text `labkit explain` prints}
- `labkit scenario --json`: {version, results: [{name, description, passed, problems,
  fault_events}]}; with --list: {version, scenarios: [name]}
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from rich.table import Table

from labkit.cli.common import out

if TYPE_CHECKING:
    from labkit.events import Event
    from labkit.inventory.source import InventoryError
    from labkit.plan.build import Plan
    from labkit.protocols.dhcp.leases import Lease
    from labkit.scenarios import ScenarioResult
    from labkit.timeline import Story

VERSION = 1


def emit(shape: dict[str, Any]) -> None:
    """One JSON document on stdout (never through rich: no wrapping, no markup)."""
    print(json.dumps({"version": VERSION, **shape}, indent=2, default=str))


def leases_shape(state: str, leases: Iterable[Lease], now: float) -> dict[str, Any]:
    rows = []
    for lease in leases:
        state_text: str = lease.state
        if lease.state == "bound" and lease.expires <= now:
            state_text = "expired"
        rows.append({"mac": None if lease.state == "declined" else lease.mac, "ip": str(lease.ip),
                     "phone": lease.phone, "expires": lease.expires, "state": state_text})
    return {"state": state, "leases": rows}


def event_shape(event: Event) -> dict[str, Any]:
    return {"time": event.time, "service": event.service, "client": event.client, "phone": event.phone,
            "action": event.action, "request": event.request, "answer": event.answer,
            "result": event.result, "detail": event.detail}


def timeline_shape(story: Story) -> dict[str, Any]:
    return {"mac": story.mac, "events": [event_shape(e) for e in story.events],
            "reached": sorted(set(story.reached)), "diagnosis": story.diagnosis() if story.events else None}


def check_failed_shape(file: str, exc: InventoryError) -> dict[str, Any]:
    errors = [{"file": p.location.file if p.location else None,
               "line": p.location.line if p.location else None, "field": p.field, "message": p.message}
              for p in exc.problems if p.severity == "error"]
    warnings = [p.render() for p in exc.problems if p.severity != "error"]
    return {"ok": False, "file": file, "errors": errors, "warnings": warnings}


def explain_shape(plan: Plan, mac: str, text: str) -> dict[str, Any]:
    from labkit.phone.discovery import MPP_PARAMETER_REQUEST_LIST

    phone_plan = plan.phones[mac]
    phone = phone_plan.phone
    sent = phone_plan.options.for_request(list(MPP_PARAMETER_REQUEST_LIST))
    sent_codes = {p.code for p in sent}
    ordered = [*sent, *(p for p in phone_plan.options.options.values() if p.code not in sent_codes)]
    options = [{"code": p.code, "name": p.name, "level": p.level, "forced": p.forced,
                "sent": p.code in sent_codes, "hex": p.payload.hex(), "value": _plain(p.decoded())}
               for p in ordered]
    return {"mac": mac, "name": phone.name, "model": phone.model, "ip": str(phone.ip) if phone.ip else None,
            "vendor_class": phone_plan.vendor_class, "options": options, "explanation": text}


def _plain(value: Any) -> Any:
    """A decoded option value as JSON can hold it (addresses and bytes as text)."""
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def scenario_shape(results: Iterable[ScenarioResult]) -> dict[str, Any]:
    return {"results": [{"name": r.name, "description": r.description, "passed": r.passed,
                         "problems": list(r.problems), "fault_events": r.fault_events} for r in results]}


def ago(when: float | None, now: float) -> str:
    if when is None:
        return "never"
    seconds = max(0.0, now - when)
    wall = datetime.datetime.fromtimestamp(when).strftime("%H:%M:%S")
    if seconds < 90:
        return f"{seconds:.0f} s ago ({wall})"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago ({wall})"
    return f"{seconds / 3600:.1f} h ago ({wall})"


def print_status(snapshot: dict[str, Any]) -> None:
    """`labkit status` for people: the phones, then the services, then the faults."""
    now = time.time()
    lab = snapshot.get("lab") or {}
    stages = ", ".join(f"{n} {stage}" for stage, n in snapshot["stages"].items() if n)
    out.print(f"lab {lab.get('name', '?')!r} ({lab.get('domain', '?')}): {snapshot['events']} events; "
              f"phones: {stages or 'none'}; leases in use {snapshot['leases_in_use']}", markup=False)
    phones = Table(title="phones")
    for column in ("phone", "MAC", "address", "state", "last contact", "firmware", "faults hit"):
        phones.add_column(column, overflow="fold")
    for p in snapshot["phones"]:
        state = p["state"] + (f": {p['problem']}" if p["problem"] and p["state"] != "provisioned" else "")
        faults = ", ".join(f"{rule} x{n}" for rule, n in p["faults"].items())
        phones.add_row(p["name"] or p["mac"], p["mac"], p["address"] or "-", state,
                       ago(p["last_contact"], now), p["firmware"] or "-", faults or "-")
    out.print(phones)
    services = Table(title="services")
    for column in ("service", "requests", "errors", "malformed", "kernel drops"):
        services.add_column(column, justify="right" if column != "service" else "left")
    for name, c in snapshot["services"].items():
        services.add_row(name, *(str(c[key]) for key in ("requests", "errors", "malformed", "kernel_drops")))
    out.print(services)
    for fault in snapshot.get("faults_in_force", []):
        fired = snapshot["faults_fired"].get(fault["label"], 0)
        out.print(f"fault in force: {fault['label']}: {fault['service']} {fault['action']} "
                  f"(fired {fired})", markup=False)
    if snapshot.get("admin"):
        out.print(f"dashboard: {snapshot['admin']}", markup=False)
