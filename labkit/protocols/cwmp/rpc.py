"""Every CWMP RPC the MPP chapter lists, with its response, and the CWMP Fault: frozen values whose
fields follow cwmp-1-2.xsd (TR-069 Amendment 3, Annex A) in element order, checked when built.

Direction (TR-069 Table 5): ACS → CPE: GetRPCMethods, SetParameterValues, GetParameterValues,
SetParameterAttributes, GetParameterAttributes, GetParameterNames, AddObject, DeleteObject,
Reboot, Download, FactoryReset; CPE → ACS: Inform, TransferComplete, GetRPCMethods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from labkit.protocols.cwmp.codes import fault_string, soap_faultcode
from labkit.protocols.cwmp.fields import (
    Boolean,
    Checked,
    Integer,
    Nested,
    Strings,
    Structs,
    Text,
    Time,
    Typed,
)
from labkit.protocols.cwmp.values import UNKNOWN_TIME, CwmpError, Value

# Download file types (TR-069 Amendment 3 §A.3.2.8). The chapter's "custom certificate authority
# file" has no number in the spec; a vendor type takes the form "X <OUI> <name>" (cwmp-1-2.xsd,
# DownloadFileType). Cisco's exact string is not published: labkit uses "X 00000C Custom CA File"
# (00000C is a Cisco OUI) [I]; the CPE side takes the string from its settings.
FIRMWARE = "1 Firmware Upgrade Image"
WEB_CONTENT = "2 Web Content"
VENDOR_CONFIG = "3 Vendor Configuration File"
CUSTOM_CA = "X 00000C Custom CA File"

S32, S64, S256 = Text(32), Text(64), Text(256)
STATUS = Integer(0, 1, signed=True)
NOTIFICATION = Integer(0, 6, signed=True)


# --------------------------------------------------------------------------- structures


@dataclass(frozen=True)
class ParameterValueStruct(Checked):
    name: str
    value: Value
    ELEMENT: ClassVar[str] = "ParameterValueStruct"
    FIELDS = (("name", "Name", S256), ("value", "Value", Typed()))


@dataclass(frozen=True)
class DeviceIdStruct(Checked):
    manufacturer: str
    oui: str
    product_class: str
    serial_number: str
    ELEMENT: ClassVar[str] = "DeviceIdStruct"
    FIELDS = (("manufacturer", "Manufacturer", S64), ("oui", "OUI", Text(6, exact=6)),
              ("product_class", "ProductClass", S64), ("serial_number", "SerialNumber", S64))


@dataclass(frozen=True)
class EventStruct(Checked):
    code: str  # "0 BOOTSTRAP", "M Download", ...
    command_key: str = ""
    ELEMENT: ClassVar[str] = "EventStruct"
    FIELDS = (("code", "EventCode", S64), ("command_key", "CommandKey", S32))


@dataclass(frozen=True)
class ParameterInfoStruct(Checked):
    name: str
    writable: bool
    ELEMENT: ClassVar[str] = "ParameterInfoStruct"
    FIELDS = (("name", "Name", S256), ("writable", "Writable", Boolean()))


@dataclass(frozen=True)
class SetParameterAttributesStruct(Checked):
    name: str
    notification_change: bool
    notification: int  # 0 off, 1 passive, 2 active
    access_list_change: bool = False
    access_list: tuple[str, ...] = ()
    ELEMENT: ClassVar[str] = "SetParameterAttributesStruct"
    FIELDS = (("name", "Name", S256), ("notification_change", "NotificationChange", Boolean()),
              ("notification", "Notification", NOTIFICATION),
              ("access_list_change", "AccessListChange", Boolean()),
              ("access_list", "AccessList", Strings(64, ("Subscriber",))))


@dataclass(frozen=True)
class ParameterAttributeStruct(Checked):
    name: str
    notification: int
    access_list: tuple[str, ...] = ()
    ELEMENT: ClassVar[str] = "ParameterAttributeStruct"
    FIELDS = (("name", "Name", S256), ("notification", "Notification", NOTIFICATION),
              ("access_list", "AccessList", Strings(64, ("Subscriber",))))


@dataclass(frozen=True)
class TransferFault(Checked):
    """TransferCompleteFaultStruct: code 0 is success."""

    code: int = 0
    string: str = ""
    ELEMENT: ClassVar[str] = "FaultStruct"
    FIELDS = (("code", "FaultCode", Integer(0, 9899)), ("string", "FaultString", S256))


@dataclass(frozen=True)
class SetParameterValuesFault(Checked):
    name: str
    code: int
    string: str = ""
    ELEMENT: ClassVar[str] = "SetParameterValuesFault"
    FIELDS = (("name", "ParameterName", Text()), ("code", "FaultCode", Integer(9000, 9899)),
              ("string", "FaultString", Text()))

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.string:
            object.__setattr__(self, "string", fault_string(self.code))


# --------------------------------------------------------------------------- RPCs


class Rpc(Checked):
    """Base of every message a SOAP Body carries."""


@dataclass(frozen=True)
class GetRPCMethods(Rpc):
    ELEMENT: ClassVar[str] = "GetRPCMethods"


@dataclass(frozen=True)
class GetRPCMethodsResponse(Rpc):
    methods: tuple[str, ...] = ()
    ELEMENT: ClassVar[str] = "GetRPCMethodsResponse"
    FIELDS = (("methods", "MethodList", Strings(64)),)


@dataclass(frozen=True)
class SetParameterValues(Rpc):
    parameters: tuple[ParameterValueStruct, ...]
    parameter_key: str = ""
    ELEMENT: ClassVar[str] = "SetParameterValues"
    FIELDS = (("parameters", "ParameterList", Structs(ParameterValueStruct)),
              ("parameter_key", "ParameterKey", S32))


@dataclass(frozen=True)
class SetParameterValuesResponse(Rpc):
    status: int = 0
    ELEMENT: ClassVar[str] = "SetParameterValuesResponse"
    FIELDS = (("status", "Status", STATUS),)


@dataclass(frozen=True)
class GetParameterValues(Rpc):
    names: tuple[str, ...]
    ELEMENT: ClassVar[str] = "GetParameterValues"
    FIELDS = (("names", "ParameterNames", Strings(256)),)


@dataclass(frozen=True)
class GetParameterValuesResponse(Rpc):
    parameters: tuple[ParameterValueStruct, ...] = ()
    ELEMENT: ClassVar[str] = "GetParameterValuesResponse"
    FIELDS = (("parameters", "ParameterList", Structs(ParameterValueStruct)),)


@dataclass(frozen=True)
class SetParameterAttributes(Rpc):
    parameters: tuple[SetParameterAttributesStruct, ...]
    ELEMENT: ClassVar[str] = "SetParameterAttributes"
    FIELDS = (("parameters", "ParameterList", Structs(SetParameterAttributesStruct)),)


@dataclass(frozen=True)
class SetParameterAttributesResponse(Rpc):
    ELEMENT: ClassVar[str] = "SetParameterAttributesResponse"


@dataclass(frozen=True)
class GetParameterAttributes(Rpc):
    names: tuple[str, ...]
    ELEMENT: ClassVar[str] = "GetParameterAttributes"
    FIELDS = (("names", "ParameterNames", Strings(256)),)


@dataclass(frozen=True)
class GetParameterAttributesResponse(Rpc):
    parameters: tuple[ParameterAttributeStruct, ...] = ()
    ELEMENT: ClassVar[str] = "GetParameterAttributesResponse"
    FIELDS = (("parameters", "ParameterList", Structs(ParameterAttributeStruct)),)


@dataclass(frozen=True)
class GetParameterNames(Rpc):
    path: str = ""
    next_level: bool = False
    ELEMENT: ClassVar[str] = "GetParameterNames"
    FIELDS = (("path", "ParameterPath", S256), ("next_level", "NextLevel", Boolean()))


@dataclass(frozen=True)
class GetParameterNamesResponse(Rpc):
    parameters: tuple[ParameterInfoStruct, ...] = ()
    ELEMENT: ClassVar[str] = "GetParameterNamesResponse"
    FIELDS = (("parameters", "ParameterList", Structs(ParameterInfoStruct)),)


@dataclass(frozen=True)
class AddObject(Rpc):
    object_name: str  # ends with "."
    parameter_key: str = ""
    ELEMENT: ClassVar[str] = "AddObject"
    FIELDS = (("object_name", "ObjectName", S256), ("parameter_key", "ParameterKey", S32))


@dataclass(frozen=True)
class AddObjectResponse(Rpc):
    instance_number: int
    status: int = 0
    ELEMENT: ClassVar[str] = "AddObjectResponse"
    FIELDS = (("instance_number", "InstanceNumber", Integer(1)), ("status", "Status", STATUS))


@dataclass(frozen=True)
class DeleteObject(Rpc):
    object_name: str
    parameter_key: str = ""
    ELEMENT: ClassVar[str] = "DeleteObject"
    FIELDS = (("object_name", "ObjectName", S256), ("parameter_key", "ParameterKey", S32))


@dataclass(frozen=True)
class DeleteObjectResponse(Rpc):
    status: int = 0
    ELEMENT: ClassVar[str] = "DeleteObjectResponse"
    FIELDS = (("status", "Status", STATUS),)


@dataclass(frozen=True)
class Reboot(Rpc):
    command_key: str = ""
    ELEMENT: ClassVar[str] = "Reboot"
    FIELDS = (("command_key", "CommandKey", S32),)


@dataclass(frozen=True)
class RebootResponse(Rpc):
    ELEMENT: ClassVar[str] = "RebootResponse"


@dataclass(frozen=True)
class FactoryReset(Rpc):
    ELEMENT: ClassVar[str] = "FactoryReset"


@dataclass(frozen=True)
class FactoryResetResponse(Rpc):
    ELEMENT: ClassVar[str] = "FactoryResetResponse"


@dataclass(frozen=True)
class Download(Rpc):
    command_key: str
    file_type: str  # FIRMWARE, VENDOR_CONFIG, CUSTOM_CA, ...
    url: str
    username: str = ""
    password: str = ""
    file_size: int = 0
    target_file_name: str = ""
    delay_seconds: int = 0
    success_url: str = ""
    failure_url: str = ""
    ELEMENT: ClassVar[str] = "Download"
    FIELDS = (("command_key", "CommandKey", S32), ("file_type", "FileType", S64), ("url", "URL", S256),
              ("username", "Username", S256), ("password", "Password", S256),
              ("file_size", "FileSize", Integer()), ("target_file_name", "TargetFileName", S256),
              ("delay_seconds", "DelaySeconds", Integer()), ("success_url", "SuccessURL", S256),
              ("failure_url", "FailureURL", S256))


@dataclass(frozen=True)
class DownloadResponse(Rpc):
    status: int  # 0 done and applied, 1 not yet (TransferComplete follows)
    start_time: datetime = UNKNOWN_TIME
    complete_time: datetime = UNKNOWN_TIME
    ELEMENT: ClassVar[str] = "DownloadResponse"
    FIELDS = (("status", "Status", STATUS), ("start_time", "StartTime", Time()),
              ("complete_time", "CompleteTime", Time()))


@dataclass(frozen=True)
class Inform(Rpc):
    device_id: DeviceIdStruct
    events: tuple[EventStruct, ...]
    max_envelopes: int = 1
    current_time: datetime = UNKNOWN_TIME
    retry_count: int = 0
    parameters: tuple[ParameterValueStruct, ...] = ()
    ELEMENT: ClassVar[str] = "Inform"
    FIELDS = (("device_id", "DeviceId", Nested(DeviceIdStruct)),
              ("events", "Event", Structs(EventStruct, max_items=64)),
              ("max_envelopes", "MaxEnvelopes", Integer()), ("current_time", "CurrentTime", Time()),
              ("retry_count", "RetryCount", Integer()),
              ("parameters", "ParameterList", Structs(ParameterValueStruct)))

    def event_codes(self) -> tuple[str, ...]:
        return tuple(event.code for event in self.events)


@dataclass(frozen=True)
class InformResponse(Rpc):
    max_envelopes: int = 1
    ELEMENT: ClassVar[str] = "InformResponse"
    FIELDS = (("max_envelopes", "MaxEnvelopes", Integer()),)


@dataclass(frozen=True)
class TransferComplete(Rpc):
    command_key: str
    fault: TransferFault = field(default_factory=TransferFault)
    start_time: datetime = UNKNOWN_TIME
    complete_time: datetime = UNKNOWN_TIME
    ELEMENT: ClassVar[str] = "TransferComplete"
    FIELDS = (("command_key", "CommandKey", S32), ("fault", "FaultStruct", Nested(TransferFault)),
              ("start_time", "StartTime", Time()), ("complete_time", "CompleteTime", Time()))


@dataclass(frozen=True)
class TransferCompleteResponse(Rpc):
    ELEMENT: ClassVar[str] = "TransferCompleteResponse"


@dataclass(frozen=True)
class Fault(Rpc):
    """A CWMP fault: the SOAP Fault whose detail holds cwmp:Fault (TR-069 §A.5)."""

    code: int
    string: str = ""
    set_parameter_values_faults: tuple[SetParameterValuesFault, ...] = ()
    soap_faultcode: str = ""  # "Client" or "Server"; empty: the one TR-069 gives the code
    ELEMENT: ClassVar[str] = "Fault"
    FIELDS = (("code", "FaultCode", Integer(8000, 9899)), ("string", "FaultString", Text()),
              ("set_parameter_values_faults", "SetParameterValuesFault",
               Structs(SetParameterValuesFault)))

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (8000 <= self.code <= 8899 or 9000 <= self.code <= 9899):
            raise CwmpError(f"fault code {self.code} is neither an ACS (8000-8899) nor a CPE (9000-9899) one")
        if self.soap_faultcode not in ("", "Client", "Server"):
            raise CwmpError(f"SOAP faultcode {self.soap_faultcode[:40]!r} is neither Client nor Server")
        if not self.soap_faultcode:
            object.__setattr__(self, "soap_faultcode", soap_faultcode(self.code))
        if not self.string:
            object.__setattr__(self, "string", fault_string(self.code))


REQUESTS_TO_CPE: tuple[type[Rpc], ...] = (
    GetRPCMethods, SetParameterValues, GetParameterValues, SetParameterAttributes,
    GetParameterAttributes, GetParameterNames, AddObject, DeleteObject, Reboot, Download,
    FactoryReset)
REQUESTS_TO_ACS: tuple[type[Rpc], ...] = (Inform, TransferComplete, GetRPCMethods)
RESPONSES: dict[type[Rpc], type[Rpc]] = {
    GetRPCMethods: GetRPCMethodsResponse, SetParameterValues: SetParameterValuesResponse,
    GetParameterValues: GetParameterValuesResponse, SetParameterAttributes: SetParameterAttributesResponse,
    GetParameterAttributes: GetParameterAttributesResponse, GetParameterNames: GetParameterNamesResponse,
    AddObject: AddObjectResponse, DeleteObject: DeleteObjectResponse, Reboot: RebootResponse,
    Download: DownloadResponse, FactoryReset: FactoryResetResponse, Inform: InformResponse,
    TransferComplete: TransferCompleteResponse,
}
ALL: tuple[type[Rpc], ...] = (*RESPONSES, *RESPONSES.values(), Fault)
BY_NAME: dict[str, type[Rpc]] = {cls.ELEMENT: cls for cls in ALL}
