"""`labkit reports`: the Report_Rule uploads a lab kept in its state folder, per phone.

`--json` shape: {version, state, reports: [{name, mac, time, method, path, content_type,
encoding, size, stored_size, decoded, note, client, file}]}; with `--show NAME`: {version,
report: {...same fields}, text: the stored body as UTF-8 (undecodable bytes replaced), base64:
the stored body}.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from labkit.cli.common import StateOption, fail, out, state_folder
from labkit.errors import CodecError
from labkit.macros import normalize_mac

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON object (shape: labkit.cli.reports).")
]


def reports(
    mac: Annotated[str | None, typer.Argument(help="Only this phone's uploads (its MAC).")] = None,
    state: StateOption = Path(".labkit"),
    show: Annotated[str | None, typer.Option("--show", metavar="NAME",
                                             help="Print one upload (its name as listed).")] = None,
    as_json: JsonOption = False,
) -> None:
    """List the Report_Rule uploads kept in the state folder (PUT or POST, per phone), or print one."""
    from labkit.services.reports import find_report, list_reports

    state_folder(state)
    phone = None
    if mac is not None:
        try:
            phone = normalize_mac(mac)
        except CodecError as exc:
            fail(f"reports: {exc}", 2)
    if show is not None:
        found = find_report(state, show)
        if found is None:
            fail(f"reports: no upload named {show!r} in {state}/reports (`labkit reports` lists them)")
        record, data = found
        _print_one(record, data, as_json)
        return
    rows = list_reports(state, phone)
    if as_json:
        from labkit.cli.shapes import emit

        emit({"state": str(state), "reports": rows})
        return
    _print_table(rows, state, phone)


def _print_one(record: dict[str, Any], data: bytes, as_json: bool) -> None:
    import base64

    text = data.decode("utf-8", errors="replace")
    if as_json:
        from labkit.cli.shapes import emit

        emit({"report": record, "text": text, "base64": base64.b64encode(data).decode("ascii")})
        return
    for key in ("name", "mac", "method", "path", "content_type", "encoding", "size", "decoded", "note"):
        if record.get(key) not in (None, ""):
            out.print(f"{key + ':':<14}{record[key]}", markup=False)
    out.print("", markup=False)
    out.print(text, markup=False, end="" if text.endswith("\n") else "\n")


def _print_table(rows: list[dict[str, Any]], state: Path, phone: str | None) -> None:
    import datetime

    from rich.table import Table

    table = Table(title=f"reports in {state}" + (f" from {phone}" if phone else ""))
    for column in ("time (UTC)", "MAC", "method", "path", "bytes", "encoding", "name"):
        table.add_column(column)
    for row in rows:
        when = datetime.datetime.fromtimestamp(float(row.get("time") or 0), datetime.UTC)
        encoding = str(row.get("encoding") or "-")
        if encoding != "-":
            encoding += " (decoded)" if row.get("decoded") else " (as received)"
        table.add_row(when.strftime("%Y-%m-%d %H:%M:%S"), str(row.get("mac") or "unidentified"),
                      str(row.get("method")), str(row.get("path")), str(row.get("size")), encoding,
                      str(row.get("name")))
    out.print(table)
    if not rows:
        out.print("no reports yet", markup=False)
