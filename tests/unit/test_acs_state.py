"""What the ACS remembers, without sockets: the bounded queue per CPE, when the plan's actions are
due (first session, BOOTSTRAP, a changed plan; reboot and factory reset once), how a CPE is
identified, the bounded session history, and the operator's JSON turned into CWMP requests."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from labkit.plan import acs as planned
from labkit.protocols.cwmp import rpc
from labkit.protocols.cwmp.values import Value
from labkit.protocols.result import Fact
from labkit.services.acs_rpcs import RequestError, from_operator, from_plan
from labkit.services.acs_state import (
    CPES_KEPT,
    EXCHANGES_KEPT,
    SESSIONS_KEPT,
    AcsState,
    QueueFull,
    SessionRecord,
    identify,
)

MAC = "00:56:2b:00:00:01"
URL = "Device.ManagementServer.ConnectionRequestURL"


def inform(serial: str = "FCH1", *events: str, **params: str) -> rpc.Inform:
    listed = tuple(rpc.ParameterValueStruct(name, Value.string(v)) for name, v in params.items())
    return rpc.Inform(rpc.DeviceIdStruct("Cisco", "00562B", "CP-8851-3PCC", serial),
                      tuple(rpc.EventStruct(e) for e in events), parameters=listed)


def plan_with(*actions: planned.AcsRpc) -> planned.AcsPlan:
    return planned.AcsPlan(enabled=True, actions=MappingProxyType({MAC: actions}))


def test_the_queue_is_bounded_per_cpe_and_drains_in_order() -> None:
    state = AcsState(queue_limit=2)
    assert state.queue(MAC, rpc.Reboot("a")) == 1
    assert state.queue(MAC, rpc.GetRPCMethods()) == 2
    with pytest.raises(QueueFull, match="already has 2 requests waiting"):
        state.queue(MAC, rpc.FactoryReset())
    assert state.queue("other", rpc.FactoryReset()) == 1  # another CPE has its own bound
    assert state.take(MAC) == [rpc.Reboot("a"), rpc.GetRPCMethods()]
    assert state.take(MAC) == [] and state.pending(MAC) == 0


def test_planned_actions_come_once_again_after_bootstrap_and_after_a_change() -> None:
    state = AcsState(8)
    values = planned.SetValues((planned.ParamValue("Device.A", "1", "unsignedInt"),))
    plan = plan_with(values, planned.Reboot())
    cpe = state.heard(MAC, MAC, inform("FCH1", "1 BOOT"), 1.0, "c", URL)
    assert state.planned(cpe, plan, ("1 BOOT",)) == [from_plan(values), rpc.Reboot("labkit reboot")]
    assert state.planned(cpe, plan, ("1 BOOT", "M Reboot")) == []
    assert state.planned(cpe, plan, ("0 BOOTSTRAP",)) == [from_plan(values)]  # no second reboot
    changed = plan_with(values, planned.FactoryReset())
    assert state.planned(cpe, changed, ("1 BOOT",)) == [from_plan(values), rpc.FactoryReset()]
    assert state.planned(cpe, changed, ("0 BOOTSTRAP",)) == [from_plan(values)]  # no reset loop
    unknown = state.heard("00562B-X", None, inform("X"), 2.0, "c", URL)
    assert state.planned(unknown, plan, ("0 BOOTSTRAP",)) == []


def test_a_cpe_is_known_by_serial_then_mac_parameter_then_address_then_device_id() -> None:
    serials = {"FCH1": MAC}
    nobody = lambda address: None  # noqa: E731
    assert identify(inform("FCH1"), serials, nobody, "127.0.0.1") == (MAC, MAC)
    by_param = inform("ZZ", **{"Device.LAN.MACAddress": "00562B000002"})
    assert identify(by_param, serials, nobody, "127.0.0.1") == ("00:56:2b:00:00:02",) * 2
    by_address = lambda a: MAC if a == "10.0.0.9" else None  # noqa: E731
    assert identify(inform("ZZ"), serials, by_address, "10.0.0.9") == (MAC, MAC)
    assert identify(inform("ZZ"), serials, nobody, "127.0.0.1") == ("00562B-ZZ", None)


def test_the_inform_gives_the_connection_request_url_and_memory_is_bounded() -> None:
    state = AcsState(4)
    cpe = state.heard(MAC, MAC, inform("FCH1", "0 BOOTSTRAP", **{URL: "http://10.0.0.9:7547/cr"}), 5.0,
                      "10.0.0.9:4000", URL)
    assert cpe.connection_request_url == "http://10.0.0.9:7547/cr" and cpe.last_events == ("0 BOOTSTRAP",)
    assert state.find(MAC) is cpe and cpe.device["serial"] == "FCH1"
    state.queue("00562B-0", rpc.GetRPCMethods())
    for n in range(CPES_KEPT + 1):
        state.heard(f"00562B-{n}", None, inform(str(n)), 6.0 + n, "c", URL)
    # the least recently heard from are forgotten, with what waited for them
    assert len(state.cpes) == CPES_KEPT and state.find(MAC) is None and state.find("00562B-0") is None
    assert state.pending("00562B-0") == 0 and state.find(f"00562B-{CPES_KEPT}") is not None
    record = SessionRecord("s", "c", 0.0)
    for n in range(EXCHANGES_KEPT + 5):
        record.add(float(n), Fact("Inform", "x", "y", "ok"))
    assert len(record.exchanges) == EXCHANGES_KEPT
    for n in range(SESSIONS_KEPT + 3):
        state.history.append(SessionRecord(str(n), "c", 0.0, key=MAC, mac=MAC))
    assert len(state.sessions(MAC)) == SESSIONS_KEPT and state.sessions("nobody") == []


@pytest.mark.parametrize(("body", "expected"), [
    ({"kind": "set", "params": {"Device.A": {"value": "5", "type": "unsignedInt"}, "Device.B": "x",
                                "Device.C": True}},
     rpc.SetParameterValues((rpc.ParameterValueStruct("Device.A", Value.unsigned(5)),
                             rpc.ParameterValueStruct("Device.B", Value.string("x")),
                             rpc.ParameterValueStruct("Device.C", Value.boolean(True))), "labkit operator")),
    ({"kind": "get", "names": ["Device.A", "Device."]}, rpc.GetParameterValues(("Device.A", "Device."))),
    ({"kind": "names", "path": "Device.", "next_level": True}, rpc.GetParameterNames("Device.", True)),
    ({"kind": "attributes", "attributes": {"Device.A": 2}},
     rpc.SetParameterAttributes((rpc.SetParameterAttributesStruct("Device.A", True, 2),))),
    ({"kind": "add", "object": "Device.X."}, rpc.AddObject("Device.X.", "labkit operator")),
    ({"kind": "reboot"}, rpc.Reboot("labkit reboot")),
    ({"kind": "download", "url": "http://h/f.loads", "file_type": "firmware"},
     rpc.Download("labkit firmware", rpc.FIRMWARE, "http://h/f.loads")),
    ({"kind": "download", "url": "http://h/ca.pem", "file_type": "ca"},
     rpc.Download("labkit ca", rpc.CUSTOM_CA, "http://h/ca.pem")),
])
def test_operator_requests(body: dict[str, object], expected: rpc.Rpc) -> None:
    assert from_operator(body) == expected


@pytest.mark.parametrize(("body", "says"), [
    ({"kind": "nope"}, "unknown kind 'nope'"),
    ({"kind": "set", "params": {}}, "expected params"),
    ({"kind": "set", "params": {"Device.A": {"value": "x", "type": "int"}}}, "not an integer"),
    ({"kind": "get", "names": "Device.A"}, "expected names"),
    ({"kind": "add", "object": "Device.X"}, "ending in '.'"),
    ({"kind": "download"}, "expected url"),
])
def test_operator_requests_that_make_no_cwmp_request(body: dict[str, object], says: str) -> None:
    with pytest.raises(RequestError, match=says):
        from_operator(body)
