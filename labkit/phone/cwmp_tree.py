"""The virtual phone's TR-069 parameter tree (pure): built from its identity, its lease and its
flat-profile parameters, and the answers to the parameter RPCs with the CPE fault codes.

Standard names are TR-181 (Device:2) ones: Device.DeviceInfo.*, Device.ManagementServer.*.
The flat-profile parameters appear under a configurable rule, by default
`Device.X_CISCO_COM_<Param>` (TR-106 vendor prefix X_<OUI or domain>_; Cisco's own TR-069 names
are in its admin guides' "XML vs TR-69" tables, not available here): every such name is marked
`inferred` [I]. Forced active notification (TR-069 Amendment 3 §3.2.1, Table 5 of TR-181's
"forcedInform/activeNotify"): SoftwareVersion, ProvisioningCode, ConnectionRequestURL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from labkit.protocols.cwmp import codes, rpc
from labkit.protocols.cwmp.values import CwmpError, Value

FORCED_ACTIVE = ("Device.DeviceInfo.SoftwareVersion", "Device.DeviceInfo.ProvisioningCode",
                 "Device.ManagementServer.ConnectionRequestURL")
# what every Inform carries (TR-181's forcedInform parameters)
INFORM_PARAMETERS = ("Device.RootDataModelVersion", "Device.DeviceInfo.HardwareVersion",
                     "Device.DeviceInfo.SoftwareVersion", "Device.DeviceInfo.ProvisioningCode",
                     "Device.ManagementServer.ParameterKey", "Device.ManagementServer.ConnectionRequestURL")
HIDDEN = ("Device.ManagementServer.Password", "Device.ManagementServer.ConnectionRequestPassword")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass
class Node:
    value: Value
    writable: bool = False
    notification: int = 0  # 0 off, 1 passive, 2 active
    access_list: tuple[str, ...] = ()
    inferred: bool = False  # a name labkit's mapping rule made up [I]
    source: str | None = None  # the flat-profile parameter it mirrors
    minimum: int | None = None  # unsignedInt parameters with a lower bound (9007 below it)


@dataclass(frozen=True)
class TreeRules:
    """How the flat profile maps into the tree (configurable; the defaults are labkit's [I])."""

    template: str = "Device.X_CISCO_COM_{name}"
    names: Mapping[str, str] = field(default_factory=dict)  # explicit flat name -> TR-069 name
    tables: tuple[tuple[str, tuple[tuple[str, Value], ...]], ...] = (
        # TR-104 voice lines, one object per line (standard names; the content is labkit's)
        ("Device.Services.VoiceService.1.VoiceProfile.1.Line.",
         (("Enable", Value.string("Enabled")), ("DirectoryNumber", Value.string("")))),
    )
    # TR-069's notification rule as labkit reads it (the PDF was not at hand): a change the ACS
    # made itself with SetParameterValues raises no VALUE CHANGE; True reports those too [I]
    acs_changes_notify: bool = False
    max_instances: int = 10  # per table (an 8851 has at most 10 lines [I]); AddObject beyond: 9004

    def name_for(self, flat: str) -> str:
        return self.names.get(flat) or self.template.format(name=_UNSAFE.sub("_", flat))


@dataclass(frozen=True)
class DeviceFacts:
    manufacturer: str
    oui: str
    model: str
    serial: str
    software: str
    hardware: str = "1"
    ip: str = ""


class ParameterTree:
    def __init__(self, nodes: dict[str, Node], rules: TreeRules) -> None:
        self.nodes = nodes
        self.rules = rules
        self.tables: dict[str, dict[int, None]] = {path: {} for path, _ in rules.tables}
        self.templates = {path: params for path, params in rules.tables}
        self.changed: set[str] = set()  # changed (not by the ACS) since the last Inform

    # ------------------------------------------------------------------ building

    @classmethod
    def build(cls, device: DeviceFacts, management: Mapping[str, Value], profile: Mapping[str, str],
              rules: TreeRules | None = None, writable_profile: Iterable[str] | None = None) -> ParameterTree:
        """`management`: Device.ManagementServer.<name> values; `profile`: flat name -> value;
        `writable_profile`: the flat names the ACS may set (default: all)."""
        rules = rules or TreeRules()
        nodes: dict[str, Node] = {
            "Device.RootDataModelVersion": Node(Value.string("2.11")),
            "Device.DeviceInfo.Manufacturer": Node(Value.string(device.manufacturer)),
            "Device.DeviceInfo.ManufacturerOUI": Node(Value.string(device.oui)),
            "Device.DeviceInfo.ProductClass": Node(Value.string(device.model)),
            "Device.DeviceInfo.ModelName": Node(Value.string(device.model)),
            "Device.DeviceInfo.SerialNumber": Node(Value.string(device.serial)),
            "Device.DeviceInfo.HardwareVersion": Node(Value.string(device.hardware)),
            "Device.DeviceInfo.SoftwareVersion": Node(Value.string(device.software), notification=2),
            "Device.DeviceInfo.ProvisioningCode": Node(Value.string(""), writable=True, notification=2),
            "Device.IP.Interface.1.IPv4Address.1.IPAddress": Node(Value.string(device.ip)),
        }
        for name, value in management.items():
            full = f"Device.ManagementServer.{name}"
            nodes[full] = Node(value, writable=name not in ("ParameterKey", "ConnectionRequestURL"),
                               notification=2 if full in FORCED_ACTIVE else 0,
                               minimum=1 if name in ("PeriodicInformInterval",) else None)
        allowed = None if writable_profile is None else set(writable_profile)
        for flat, text in profile.items():
            writable = allowed is None or flat in allowed
            nodes[rules.name_for(flat)] = Node(Value.string(text), writable=writable,
                                               inferred=flat not in rules.names, source=flat)
        return cls(nodes, rules)

    # ------------------------------------------------------------------ reading

    def value(self, name: str) -> Value:
        return self.nodes[name].value

    def text(self, name: str, default: str = "") -> str:
        node = self.nodes.get(name)
        return node.value.text() if node is not None else default

    def _matching(self, path: str) -> list[str]:
        """The parameters a name or partial path (ending in ".") stands for; "" is everything."""
        if path == "":
            return list(self.nodes)
        if path.endswith("."):
            return [name for name in self.nodes if name.startswith(path)]
        return [path] if path in self.nodes else []

    def _shown(self, name: str) -> Value:
        # TR-069 A.3.2.2: a password reads back as an empty string
        return Value.string("") if name in HIDDEN else self.nodes[name].value

    def get_values(self, request: rpc.GetParameterValues) -> rpc.Rpc:
        found: list[rpc.ParameterValueStruct] = []
        for path in request.names:
            names = self._matching(path)
            if not names:
                return rpc.Fault(codes.INVALID_NAME, f"no parameter {path}"[:200])
            found += [rpc.ParameterValueStruct(n, self._shown(n)) for n in names]
        return rpc.GetParameterValuesResponse(tuple(found))

    def get_names(self, request: rpc.GetParameterNames) -> rpc.Rpc:
        path = request.path
        if path and not path.endswith("."):
            if path not in self.nodes:
                return rpc.Fault(codes.INVALID_NAME, f"no parameter {path}"[:200])
            if request.next_level:
                return rpc.Fault(codes.INVALID_ARGUMENTS, "NextLevel true on a parameter")
            return rpc.GetParameterNamesResponse((rpc.ParameterInfoStruct(path, self.nodes[path].writable),))
        # NextLevel false: the object itself and everything below; true: its children only
        names = self._matching(path) + [p for p in self._objects()
                                        if p.startswith(path) and (p != path or not request.next_level)]
        if path and not names:
            return rpc.Fault(codes.INVALID_NAME, f"no object {path}"[:200])
        return rpc.GetParameterNamesResponse(tuple(self._infos(path, names, request.next_level)))

    def _objects(self) -> list[str]:
        """Every object path (partial path) the parameters imply, and the tables."""
        found: dict[str, None] = dict.fromkeys(self.tables)
        for name in self.nodes:
            parts = name.split(".")[:-1]
            for end in range(1, len(parts) + 1):
                found[".".join(parts[:end]) + "."] = None
        return list(found)

    def _infos(self, path: str, names: list[str], next_level: bool) -> list[rpc.ParameterInfoStruct]:
        infos: dict[str, rpc.ParameterInfoStruct] = {}
        depth = path.count(".")
        for name in names:
            if next_level:
                parts = name.split(".")
                child = ".".join(parts[: depth + 1]) + ("." if len(parts) > depth + 1 else "")
                if child.endswith(".") and child.count(".") != depth + 1:
                    continue
                name = child
            node = self.nodes.get(name)
            writable = node.writable if node is not None else name in self.tables
            infos.setdefault(name, rpc.ParameterInfoStruct(name, writable))
        return list(infos.values())

    def get_attributes(self, request: rpc.GetParameterAttributes) -> rpc.Rpc:
        found: list[rpc.ParameterAttributeStruct] = []
        for path in request.names:
            names = self._matching(path)
            if not names:
                return rpc.Fault(codes.INVALID_NAME, f"no parameter {path}"[:200])
            found += [rpc.ParameterAttributeStruct(n, self.nodes[n].notification, self.nodes[n].access_list)
                      for n in names]
        return rpc.GetParameterAttributesResponse(tuple(found))

    # ------------------------------------------------------------------ changing

    def set_values(self, request: rpc.SetParameterValues) -> rpc.Rpc:
        """All or nothing (TR-069 A.3.2.1): every fault listed, nothing applied on a fault."""
        if len({p.name for p in request.parameters}) != len(request.parameters):
            return rpc.Fault(codes.INVALID_ARGUMENTS, "a parameter is named twice")
        faults: list[rpc.SetParameterValuesFault] = []
        staged: dict[str, Value] = {}
        for item in request.parameters:
            outcome = self._check_set(item)
            if isinstance(outcome, rpc.SetParameterValuesFault):
                faults.append(outcome)
            else:
                staged[item.name] = outcome
        if faults:
            return rpc.Fault(codes.INVALID_ARGUMENTS, set_parameter_values_faults=tuple(faults))
        for name, value in staged.items():
            self._assign(name, value, by_acs=True)
        self.nodes["Device.ManagementServer.ParameterKey"] = replace(
            self.nodes.get("Device.ManagementServer.ParameterKey", Node(Value.string(""))),
            value=Value.string(request.parameter_key))
        return rpc.SetParameterValuesResponse(0)

    def _check_set(self, item: rpc.ParameterValueStruct) -> Value | rpc.SetParameterValuesFault:
        node = self.nodes.get(item.name)
        if node is None:
            return rpc.SetParameterValuesFault(item.name, codes.INVALID_NAME)
        if not node.writable:
            return rpc.SetParameterValuesFault(item.name, codes.NOT_WRITABLE)
        value = item.value
        if value.type != node.value.type:
            if node.value.type == "string":
                value = Value.string(value.text())
            elif value.type != "string":
                return rpc.SetParameterValuesFault(item.name, codes.INVALID_TYPE)
            else:
                try:
                    value = Value.parse(node.value.type, value.text())
                except CwmpError:
                    return rpc.SetParameterValuesFault(item.name, codes.INVALID_VALUE)
        if node.minimum is not None and isinstance(value.value, int) and value.value < node.minimum:
            return rpc.SetParameterValuesFault(item.name, codes.INVALID_VALUE, f"below {node.minimum}")
        return value

    def _assign(self, name: str, value: Value, *, by_acs: bool) -> None:
        node = self.nodes[name]
        if node.value == value:
            return
        node.value = value
        if node.notification and (not by_acs or self.rules.acs_changes_notify):
            self.changed.add(name)

    def local_set(self, name: str, value: Value) -> None:
        """A change from the device itself (its web page, a resync, a new firmware): noted for
        VALUE CHANGE when the parameter has notification on."""
        if name not in self.nodes:
            self.nodes[name] = Node(value)
            return
        self._assign(name, value, by_acs=False)

    def apply_profile(self, params: Mapping[str, str]) -> None:
        """A profile the device read (a vendor configuration file, a resync): its values land in
        the tree as local changes; new names join it under the mapping rule."""
        for flat, text in params.items():
            name = self.rules.name_for(flat)
            if name in self.nodes:
                self._assign(name, Value.string(text), by_acs=False)
            else:
                inferred = flat not in self.rules.names
                self.nodes[name] = Node(Value.string(text), writable=True, inferred=inferred, source=flat)

    def set_attributes(self, request: rpc.SetParameterAttributes) -> rpc.Rpc:
        staged: list[tuple[str, rpc.SetParameterAttributesStruct]] = []
        for item in request.parameters:
            names = self._matching(item.name)
            if not names:
                return rpc.Fault(codes.INVALID_NAME, f"no parameter {item.name}"[:200])
            for name in names:
                if item.notification_change and name in FORCED_ACTIVE and item.notification != 2:
                    return rpc.Fault(codes.NOTIFICATION_REJECTED, f"{name}: active notification is forced")
                staged.append((name, item))
        for name, item in staged:
            node = self.nodes[name]
            if item.notification_change:
                node.notification = item.notification
            if item.access_list_change:
                node.access_list = item.access_list
        return rpc.SetParameterAttributesResponse()

    def add_object(self, request: rpc.AddObject) -> rpc.Rpc:
        table = self.tables.get(request.object_name)
        if table is None:
            return rpc.Fault(codes.INVALID_NAME, f"no multi-instance object {request.object_name}"[:200])
        if len(table) >= self.rules.max_instances:
            limit = self.rules.max_instances
            return rpc.Fault(codes.RESOURCES_EXCEEDED, f"{request.object_name}: at most {limit}"[:200])
        number = max(table, default=0) + 1
        table[number] = None
        for param, default in self.templates[request.object_name]:
            self.nodes[f"{request.object_name}{number}.{param}"] = Node(default, writable=True)
        self._set_key(request.parameter_key)
        return rpc.AddObjectResponse(number, 0)

    def delete_object(self, request: rpc.DeleteObject) -> rpc.Rpc:
        path = request.object_name
        table_path, _, rest = path.rstrip(".").rpartition(".")
        table = self.tables.get(table_path + ".")
        if table is None or not rest.isdigit() or int(rest) not in table:
            return rpc.Fault(codes.INVALID_NAME, f"no object instance {path}"[:200])
        del table[int(rest)]
        for name in [n for n in self.nodes if n.startswith(path)]:
            del self.nodes[name]
        self._set_key(request.parameter_key)
        return rpc.DeleteObjectResponse(0)

    def _set_key(self, key: str) -> None:
        node = self.nodes.get("Device.ManagementServer.ParameterKey")
        if node is not None:
            node.value = Value.string(key)

    def factory_reset(self) -> None:
        """Back to the factory: the profile's parameters, added objects, attributes and the
        ParameterKey are gone; the device's own parameters stay."""
        for name in [n for n, node in self.nodes.items() if node.source is not None]:
            del self.nodes[name]
        for path, table in self.tables.items():
            for number in list(table):
                self.delete_object(rpc.DeleteObject(f"{path}{number}."))
        for name, node in self.nodes.items():
            node.notification = 2 if name in FORCED_ACTIVE else 0
            node.access_list = ()
        self._set_key("")
        self.changed.clear()

    # ------------------------------------------------------------------ Inform

    def inform_parameters(self) -> tuple[rpc.ParameterValueStruct, ...]:
        names = [n for n in INFORM_PARAMETERS if n in self.nodes]
        names += sorted(self.changed - set(names))
        return tuple(rpc.ParameterValueStruct(n, self._shown(n)) for n in names)

    def active_change(self) -> bool:
        """A parameter with active notification changed: the CPE opens a session for it."""
        return any(self.nodes[n].notification == 2 for n in self.changed if n in self.nodes)

    def informed(self) -> None:
        self.changed.clear()

    def profile_values(self) -> dict[str, str]:
        """The flat-profile parameters as the tree holds them now (the ACS may have set some)."""
        return {node.source: node.value.text() for node in self.nodes.values() if node.source}

    def inferred_names(self) -> list[str]:
        return sorted(name for name, node in self.nodes.items() if node.inferred)
