"""The ACS's requests as the CWMP core's RPC values: the plan's per-phone actions
(`labkit.plan.acs`) and the operator's commands (JSON from the admin API, `labkit acs ...`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labkit.errors import LabkitError
from labkit.plan import acs as planned
from labkit.protocols.cwmp import rpc
from labkit.protocols.cwmp.values import CwmpError, Value

# operator command -> what it asks (the admin API's `kind`)
KINDS = ("set", "get", "names", "attributes", "get_attributes", "add", "delete", "reboot",
         "factory_reset", "download", "rpc_methods")
FILE_TYPES = {"firmware": rpc.FIRMWARE, "config": rpc.VENDOR_CONFIG, "ca": rpc.CUSTOM_CA}


class RequestError(LabkitError):
    """An operator's request that does not make a CWMP request (the admin API answers 400)."""


def _value(param: planned.ParamValue) -> Value:
    return Value.parse(param.type, param.value)


def from_plan(action: planned.AcsRpc) -> rpc.Rpc:
    """One planned action as the RPC the ACS sends."""
    if isinstance(action, planned.SetValues):
        values = tuple(rpc.ParameterValueStruct(p.name, _value(p)) for p in action.params)
        return rpc.SetParameterValues(values, action.key)
    if isinstance(action, planned.SetAttributes):
        return rpc.SetParameterAttributes(tuple(
            rpc.SetParameterAttributesStruct(c.name, c.notification is not None, c.notification or 0,
                                             c.access_list is not None, c.access_list or ())
            for c in action.changes))
    if isinstance(action, planned.AddObject):
        return rpc.AddObject(action.name, action.key)
    if isinstance(action, planned.DeleteObject):
        return rpc.DeleteObject(action.name, action.key)
    if isinstance(action, planned.DownloadFile):
        return rpc.Download(action.command_key, action.file_type, action.url, action.username,
                            action.password, action.file_size, action.target_file_name, action.delay)
    if isinstance(action, planned.Reboot):
        return rpc.Reboot(action.key)
    return rpc.FactoryReset()


def _set(body: Mapping[str, Any]) -> rpc.Rpc:
    params = body.get("params")
    if not isinstance(params, dict) or not params:
        raise RequestError("set: expected params: {name: value, ...}")
    structs = []
    for name, given in params.items():
        if isinstance(given, dict):
            kind, text = str(given.get("type", "string")), given.get("value")
        else:
            kind, text = "string", given
        if isinstance(text, bool):
            kind, text = "boolean" if kind == "string" else kind, "true" if text else "false"
        elif isinstance(text, int):
            kind = ("unsignedInt" if text >= 0 else "int") if kind == "string" else kind
        structs.append(rpc.ParameterValueStruct(str(name), Value.parse(kind, str(text))))
    return rpc.SetParameterValues(tuple(structs), str(body.get("key", "labkit operator")))


def _names(body: Mapping[str, Any]) -> tuple[str, ...]:
    names = body.get("names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise RequestError("expected names: [Name, ...]")
    return tuple(names)


def _download(body: Mapping[str, Any]) -> rpc.Rpc:
    url = body.get("url")
    kind = str(body.get("file_type", "firmware"))
    if not isinstance(url, str) or not url:
        raise RequestError("download: expected url")
    file_type = FILE_TYPES.get(kind, kind)  # a short name, or the TR-069 FileType string itself
    return rpc.Download(str(body.get("command_key", f"labkit {kind}"))[:32], file_type, url,
                        str(body.get("username", "")), str(body.get("password", "")),
                        int(body.get("file_size", 0)), str(body.get("target_file_name", "")),
                        int(body.get("delay", 0)))


def _attributes(body: Mapping[str, Any]) -> rpc.Rpc:
    given = body.get("attributes")
    if not isinstance(given, dict) or not given:
        raise RequestError("attributes: expected attributes: {name: notification (0, 1 or 2)}")
    return rpc.SetParameterAttributes(tuple(
        rpc.SetParameterAttributesStruct(str(name), True, int(level)) for name, level in given.items()))


def from_operator(body: Mapping[str, Any]) -> rpc.Rpc:
    """The request an operator's JSON asks for (`{"kind": "set", "params": {...}}`, ...)."""
    kind = body.get("kind")
    try:
        if kind == "set":
            return _set(body)
        if kind == "get":
            return rpc.GetParameterValues(_names(body))
        if kind == "get_attributes":
            return rpc.GetParameterAttributes(_names(body))
        if kind == "names":
            return rpc.GetParameterNames(str(body.get("path", "")), bool(body.get("next_level", False)))
        if kind == "attributes":
            return _attributes(body)
        if kind in ("add", "delete"):
            name = body.get("object")
            if not isinstance(name, str) or not name.endswith("."):
                raise RequestError(f"{kind}: expected object: a name ending in '.'")
            cls = rpc.AddObject if kind == "add" else rpc.DeleteObject
            return cls(name, str(body.get("key", "labkit operator")))
        if kind == "reboot":
            return rpc.Reboot(str(body.get("command_key", "labkit reboot"))[:32])
        if kind == "factory_reset":
            return rpc.FactoryReset()
        if kind == "download":
            return _download(body)
        if kind == "rpc_methods":
            return rpc.GetRPCMethods()
    except (CwmpError, ValueError, TypeError) as exc:
        raise RequestError(f"{kind}: {exc}") from None
    raise RequestError(f"unknown kind {kind!r}; expected one of: {', '.join(KINDS)}")
