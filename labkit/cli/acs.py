"""`labkit acs ...`: the TR-069 ACS of a running lab, through its control socket.

    labkit acs set MAC Name=value [Name:type=value ...] [--now]
    labkit acs get MAC Name [Name ...] [--now]
    labkit acs names MAC [PATH] [--next-level] [--now]
    labkit acs reboot MAC [--now]
    labkit acs download MAC URL [--file-type firmware|config|ca|"1 Firmware Upgrade Image"] [--now]
    labkit acs attributes MAC Name=2 [...] [--now]
    labkit acs rpc MAC get_attributes|add|delete|factory_reset|rpc_methods [NAME...] [--now]
    labkit acs connect MAC
    labkit acs sessions [MAC]

A request waits for the CPE's next session (or goes into the one under way); `--now` (and
`connect`) sends a Connection Request so the CPE opens one at once. `--json` prints the lab's
answer as one JSON object: queue {version, key, queued, waiting, in, connection_request?};
connect {version, key, ok, status, detail}; sessions {version, sessions: [{id, key, mac, client,
started, ended, events, outcome, exchanges: [{time, action, request, answer, result}]}], open:
[...], cpes: [{key, mac, device, connection_request_url, last_inform, last_events, pending,
client}]}.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from labkit.cli.common import StateOption, fail, out, state_folder
from labkit.cli.words import WordsCommand, WordsGroup
from labkit.macros import normalize_mac

app = typer.Typer(cls=WordsGroup, no_args_is_help=True,
                  help="The TR-069 ACS of a running lab: queue requests for a phone, knock on it, "
                  "list the sessions.")

MacArg = Annotated[str, typer.Argument(help="The phone's MAC (or the ACS's OUI-serial key for it).")]
NowOption = Annotated[bool, typer.Option("--now", help="Send a Connection Request right after: the "
                                         "phone opens a session at once.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the lab's answer as one JSON object.")]
XSD_TYPES = ("string", "int", "unsignedInt", "boolean", "dateTime", "base64")


def _key(mac: str) -> str:
    try:
        return normalize_mac(mac)
    except ValueError:
        if "-" in mac and ":" not in mac:
            return mac  # OUI-SerialNumber
        fail(f"acs: {mac!r} is not a MAC address", 2)


def _call(state: Path, method: str, path: str, data: dict[str, Any] | None = None) -> Any:
    from labkit.services.acs_admin import AcsCallError, call
    from labkit.services.admin import NoLab

    state_folder(state)
    try:
        return call(state, method, path, data)
    except (NoLab, AcsCallError) as exc:
        fail(f"acs: {exc}")


def _queue(state: Path, mac: str, body: dict[str, Any], now: bool, as_json: bool) -> None:
    key = _key(mac)
    answer = _call(state, "POST", f"/api/acs/{key}/queue", {**body, "connect": now})
    if as_json:
        from labkit.cli.shapes import emit

        emit(answer)
        return
    out.print(f"{answer['queued']} for {answer['key']}: {answer['waiting']} waiting for {answer['in']}",
              markup=False)
    knocked = answer.get("connection_request")
    if knocked is not None:
        out.print(f"connection request: {knocked['detail']}", markup=False)
        if not knocked["ok"]:
            raise typer.Exit(1)


def _param(text: str) -> tuple[str, dict[str, str]]:
    """`Name=value` or `Name:type=value`."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        fail(f"acs set: {text!r}: expected Name=value (or Name:type=value)", 2)
    name, _, kind = name.partition(":")
    if kind and kind not in XSD_TYPES:
        fail(f"acs set: {text!r}: type {kind!r} is not one of {', '.join(XSD_TYPES)}", 2)
    return name, {"value": value, "type": kind or "string"}


@app.command("set", cls=WordsCommand)
def set_values(
    mac: MacArg,
    values: Annotated[list[str], typer.Argument(help="Name=value, or Name:type=value (type: string, int, "
                                                "unsignedInt, boolean, dateTime, base64).")],
    now: NowOption = False, state: StateOption = Path(".labkit"), as_json: JsonOption = False,
) -> None:
    """Queue SetParameterValues for the phone."""
    params = dict(_param(v) for v in values)
    _queue(state, mac, {"kind": "set", "params": params}, now, as_json)


@app.command("get", cls=WordsCommand)
def get_values(
    mac: MacArg,
    names: Annotated[list[str], typer.Argument(help="Parameter names (a name ending in '.' asks for a "
                                               "whole object).")],
    now: NowOption = False, state: StateOption = Path(".labkit"), as_json: JsonOption = False,
) -> None:
    """Queue GetParameterValues; the answer shows in `labkit acs sessions MAC` and the timeline."""
    _queue(state, mac, {"kind": "get", "names": names}, now, as_json)


@app.command("names", cls=WordsCommand)
def get_names(
    mac: MacArg,
    path: Annotated[str, typer.Argument(help="A partial path such as Device. (default: the root).")] = "",
    next_level: Annotated[bool, typer.Option("--next-level", help="Only the level under PATH.")] = False,
    now: NowOption = False, state: StateOption = Path(".labkit"), as_json: JsonOption = False,
) -> None:
    """Queue GetParameterNames."""
    _queue(state, mac, {"kind": "names", "path": path, "next_level": next_level}, now, as_json)


@app.command("reboot", cls=WordsCommand)
def reboot(mac: MacArg, now: NowOption = False, state: StateOption = Path(".labkit"),
           as_json: JsonOption = False) -> None:
    """Queue Reboot (the phone comes back with "1 BOOT" and "M Reboot")."""
    _queue(state, mac, {"kind": "reboot"}, now, as_json)


@app.command("download", cls=WordsCommand)
def download(
    mac: MacArg,
    url: Annotated[str, typer.Argument(help="Where the phone fetches the file (http, https or tftp).")],
    file_type: Annotated[str, typer.Option("--file-type", metavar="TYPE", help="firmware, config, ca, or a "
                                           "TR-069 FileType string.")] = "firmware",
    now: NowOption = False, state: StateOption = Path(".labkit"), as_json: JsonOption = False,
) -> None:
    """Queue Download (TransferComplete follows in a later session)."""
    _queue(state, mac, {"kind": "download", "url": url, "file_type": file_type}, now, as_json)


@app.command("attributes", cls=WordsCommand)
def set_attributes(
    mac: MacArg,
    levels: Annotated[list[str], typer.Argument(help="Name=notification (0 off, 1 passive, 2 active).")],
    now: NowOption = False, state: StateOption = Path(".labkit"), as_json: JsonOption = False,
) -> None:
    """Queue SetParameterAttributes (a parameter with active notification comes back as VALUE CHANGE)."""
    given = {}
    for text in levels:
        name, _, level = text.partition("=")
        if not name or level not in ("0", "1", "2"):
            fail(f"acs attributes: {text!r}: expected Name=0, Name=1 or Name=2", 2)
        given[name] = int(level)
    _queue(state, mac, {"kind": "attributes", "attributes": given}, now, as_json)


@app.command("rpc", cls=WordsCommand)
def other_rpc(
    mac: MacArg,
    kind: Annotated[str, typer.Argument(help="get_attributes NAME..., add OBJECT., delete OBJECT., "
                                        "factory_reset or rpc_methods.")],
    names: Annotated[list[str] | None, typer.Argument(help="The names or the object.")] = None,
    now: NowOption = False, state: StateOption = Path(".labkit"), as_json: JsonOption = False,
) -> None:
    """Queue any other request the ACS sends: GetParameterAttributes, AddObject, DeleteObject,
    FactoryReset, GetRPCMethods."""
    given = list(names or [])
    body: dict[str, Any] = {"kind": kind}
    if kind == "get_attributes":
        body["names"] = given
    elif kind in ("add", "delete"):
        if len(given) != 1:
            fail(f"acs rpc {kind}: expected one object name ending in '.'", 2)
        body["object"] = given[0]
    elif kind not in ("factory_reset", "rpc_methods"):
        fail(f"acs rpc: {kind!r}: expected get_attributes, add, delete, factory_reset or rpc_methods", 2)
    _queue(state, mac, body, now, as_json)


@app.command("connect", cls=WordsCommand)
def connect(mac: MacArg, state: StateOption = Path(".labkit"), as_json: JsonOption = False) -> None:
    """Send a Connection Request: the phone opens a session now."""
    answer = _call(state, "POST", f"/api/acs/{_key(mac)}/connect", {})
    if as_json:
        from labkit.cli.shapes import emit

        emit(answer)
    else:
        out.print(f"{answer['key']}: {answer['detail']}", markup=False)
    if not answer["ok"]:
        raise typer.Exit(1)


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).strftime("%H:%M:%S")


@app.command("sessions", cls=WordsCommand)
def sessions(
    mac: Annotated[str | None, typer.Argument(help="Only this phone's sessions.")] = None,
    state: StateOption = Path(".labkit"), as_json: JsonOption = False,
) -> None:
    """The CWMP sessions the ACS recorded (oldest first), each exchange in order."""
    path = "/api/acs/sessions" + (f"/{_key(mac)}" if mac else "")
    answer = _call(state, "GET", path)
    if as_json:
        from labkit.cli.shapes import emit

        emit(answer)
        return
    for cpe in answer["cpes"]:
        out.print(f"{cpe['key']}: last Inform {_when(cpe['last_inform'])} ({', '.join(cpe['last_events'])}), "
                  f"{cpe['pending']} waiting, connection request URL {cpe['connection_request_url'] or '-'}",
                  markup=False)
    listed = [*answer["sessions"], *answer["open"]]
    for record in listed:
        out.print(f"\nsession {record['id']} {record['key'] or '?'} from {record['client']} "
                  f"{_when(record['started'])}-{_when(record['ended'])}: {record['outcome']} "
                  f"[{', '.join(record['events'])}]", markup=False)
        for x in record["exchanges"]:
            out.print(f"  {_when(x['time'])} {x['request']} -> {x['answer']} [{x['result']}]", markup=False)
    if not listed:
        out.print("no sessions yet", markup=False)
