"""One short line per CWMP message, for the event log and `labkit acs sessions`."""

from __future__ import annotations

from labkit.protocols.cwmp import rpc

MAX_SUMMARY = 160


def _clip(text: str) -> str:
    return text if len(text) <= MAX_SUMMARY else text[: MAX_SUMMARY - 1] + "…"


def _values(parameters: tuple[rpc.ParameterValueStruct, ...]) -> str:
    return ", ".join(f"{p.name}={p.value.text()}" for p in parameters)


def summarize(message: rpc.Rpc) -> str:
    """`Inform 0 BOOTSTRAP,1 BOOT`, `SetParameterValues A=1`, `Fault 9005 Invalid parameter name`."""
    name = message.ELEMENT
    if isinstance(message, rpc.Inform):
        detail = ",".join(message.event_codes())
    elif isinstance(message, rpc.SetParameterValues | rpc.GetParameterValuesResponse):
        detail = _values(message.parameters)
    elif isinstance(message, rpc.GetParameterValues | rpc.GetParameterAttributes):
        detail = ", ".join(message.names)
    elif isinstance(message, rpc.SetParameterAttributes | rpc.GetParameterAttributesResponse):
        detail = ", ".join(f"{p.name} notification={p.notification}" for p in message.parameters)
    elif isinstance(message, rpc.GetParameterNames):
        detail = f"{message.path or '(root)'} next_level={str(message.next_level).lower()}"
    elif isinstance(message, rpc.GetParameterNamesResponse):
        detail = f"{len(message.parameters)} names"
    elif isinstance(message, rpc.AddObject | rpc.DeleteObject):
        detail = message.object_name
    elif isinstance(message, rpc.AddObjectResponse):
        detail = f"instance {message.instance_number}"
    elif isinstance(message, rpc.Download):
        detail = f"{message.file_type} {message.url}"
    elif isinstance(message, rpc.TransferComplete):
        detail = f"{message.command_key!r} fault {message.fault.code}"
    elif isinstance(message, rpc.Fault):
        detail = f"{message.code} {message.string}"
    elif isinstance(message, rpc.GetRPCMethodsResponse):
        detail = ",".join(message.methods)
    elif isinstance(message, rpc.Reboot):
        detail = repr(message.command_key)
    elif hasattr(message, "status"):
        detail = f"status {message.status}"
    else:
        detail = ""
    return _clip(f"{name} {detail}".rstrip())
