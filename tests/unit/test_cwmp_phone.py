"""The virtual phone's CWMP side against the sans-IO ACS, without sockets: discovery, events,
the parameter tree and its faults, Download, Reboot, FactoryReset, retries."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest

from labkit.phone.cwmp import (
    AwaitConnectionRequest,
    CwmpAnswer,
    CwmpEnd,
    CwmpPost,
    CwmpSettings,
    discover,
    vendor_class,
)
from labkit.phone.cwmp_flow import CwmpPhone
from labkit.phone.cwmp_setup import Identity, prepare
from labkit.phone.effects import Fetch, FetchResult, Lease, Log, Now, Sleep
from labkit.protocols.cwmp import rpc
from labkit.protocols.cwmp.acs_session import AcsSession
from labkit.protocols.cwmp.soap import decode
from labkit.protocols.cwmp.values import Value
from labkit.protocols.dhcp.options import SubOption, Tr069, Tr111, VendorBlock

ACS = "http://acs.lab.example:7547/"
MAC = "00:56:2b:04:36:15"
FIRMWARE_URL = "http://10.42.0.1/firmware/sip88xx.12-0-1MPP-0001.loads"
PROFILE = {"Display_Name_1_": "Alice", "Profile_Rule": "http://10.42.0.1/$PSN.xml", "Enable_TR-069": "Yes"}
CA_PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
SPV = rpc.SetParameterValues


LAB_TR069 = Tr069(ACS, "lab-code")


def lease(*, tr: Tr069 | None = LAB_TR069, blocks: tuple[VendorBlock, ...] = ()) -> Lease:
    options: dict[int, Any] = {}
    if tr is not None:
        options[43] = tr.to_suboptions()
    if blocks:
        options[125] = blocks
    return Lease("10.42.0.50", "10.42.0.1", options, 3600)


def make_phone(settings: CwmpSettings | None = None, profile: dict[str, str] | None = None,
               the_lease: Lease | None = None) -> CwmpPhone:
    who = Identity(MAC, "CP-8851-3PCC", "FCH2203001", "sip88xx.11-3-1MPP-0001", "Cisco-CP-8851-3PCC/11.3.1")
    setup = prepare(who, the_lease or lease(), PROFILE if profile is None else profile,
                    settings or CwmpSettings(duration=0))
    assert setup.phone is not None, setup.why
    return setup.phone


@dataclass
class World:
    """Performs the phone's effects: one AcsSession per CWMP session, files, a clock."""

    scripts: list[list[rpc.Rpc]] = field(default_factory=list)  # the ACS's requests per session
    files: dict[str, FetchResult] = field(default_factory=dict)
    connection_requests: list[bool] = field(default_factory=list)
    inform_fault: Callable[[int], int | None] = lambda _n: None
    clock: float = 1_790_000_000.0
    informs: list[rpc.Inform] = field(default_factory=list)
    acs: list[AcsSession] = field(default_factory=list)
    fetched: list[Fetch] = field(default_factory=list)

    def _session(self) -> AcsSession:
        script = self.scripts.pop(0) if self.scripts else []

        def on_inform(inform: rpc.Inform) -> Iterable[rpc.Rpc]:
            return script
        session = AcsSession(on_inform=on_inform)
        self.acs.append(session)
        return session

    def perform(self, effect: Any) -> Any:
        if isinstance(effect, CwmpPost):
            if effect.new_session:
                self._session()
            sent = decode(effect.body).body
            if isinstance(sent, rpc.Inform):
                self.informs.append(sent)
            fault = self.inform_fault(len(self.acs)) if self.acs[-1].inform is None else None
            reply = self.acs[-1].receive(effect.body, fault=fault)
            return CwmpAnswer(reply.status, reply.body)
        if isinstance(effect, Now):
            return self.clock
        if isinstance(effect, Sleep):
            self.clock += effect.seconds
            return None
        if isinstance(effect, AwaitConnectionRequest):
            if self.connection_requests and self.connection_requests.pop(0):
                self.clock += 1
                return True
            self.clock += effect.seconds
            return False
        if isinstance(effect, Fetch):
            self.fetched.append(effect)
            return self.files.get(effect.url, FetchResult(404))
        if isinstance(effect, CwmpEnd | Log):
            return None
        raise AssertionError(f"unexpected effect {effect!r}")

    def run(self, phone: CwmpPhone) -> None:
        flow, reply = phone.run(), None
        for _ in range(2000):
            try:
                reply = self.perform(flow.send(reply))
            except StopIteration:
                return
        raise AssertionError("the phone's flow did not end")


def answers(world: World, session: int) -> list[rpc.Rpc]:
    """What the phone answered in one session, from the ACS's log (the facts' answers)."""
    return [f.answer for f in world.acs[session].log]


def test_vendor_class_and_discovery_from_options_43_and_125() -> None:
    assert vendor_class("CP-8851-3PCC", "append") == "CP-8851-3PCC dslforum.org"
    assert vendor_class("CP-8851-3PCC", "replace") == "dslforum.org"
    found = discover(lease(tr=Tr069(ACS, "code", 10, 3000)).options)
    assert (found.url, found.provisioning_code, found.retry_min_wait) == (ACS, "code", 10)
    assert found.source == "option 43"
    block = VendorBlock(3561, (*Tr111(gateway_manufacturer_oui="00D0B7", gateway_serial_number="GW1",
                                     gateway_product_class="Router").to_block().suboptions,
                               SubOption(11, b"https://acs125.lab.example/")))
    found = discover(lease(tr=None, blocks=(block,)).options)
    assert found.url == "https://acs125.lab.example/" and found.source == "option 125"
    assert found.gateway is not None and found.gateway.gateway_serial_number == "GW1"
    assert discover({43: (SubOption(1, b"\xff\xfe"),)}).url is None  # unreadable: as absent
    assert discover({}).url is None


def test_tr069_is_off_unless_the_inventory_or_profile_enables_it() -> None:
    who = Identity(MAC, "CP-8851-3PCC", None, "load")
    assert prepare(who, lease(), {}, CwmpSettings()).phone is None
    assert prepare(who, lease(), {"Enable_TR-069": "Yes"}, CwmpSettings()).phone is not None
    assert prepare(who, lease(), {}, CwmpSettings(enabled=True)).phone is not None
    nowhere = prepare(who, lease(tr=None), {}, CwmpSettings(enabled=True))
    assert nowhere.phone is None and "no ACS URL" in nowhere.why
    chosen = prepare(who, lease(), {"Enable_TR-069": "Yes", "ACS_URL": "http://profile-acs/"}, CwmpSettings())
    assert chosen.phone is not None and chosen.phone.acs_url == "http://profile-acs/"


def test_bootstrap_session_reads_and_sets_the_profile_tree() -> None:
    phone = make_phone()
    name = "Device.X_CISCO_COM_Display_Name_1_"
    world = World(scripts=[[rpc.GetParameterValues((name, "Device.DeviceInfo.")),
                            SPV((rpc.ParameterValueStruct(name, Value.string("Bob")),), "key-1")]])
    world.run(phone)
    first = world.informs[0]
    assert first.event_codes() == ("0 BOOTSTRAP", "1 BOOT")
    assert first.device_id == rpc.DeviceIdStruct("Cisco Systems, Inc.", "00562B", "CP-8851-3PCC",
                                                 "FCH2203001")
    sent = {p.name: p.value.text() for p in first.parameters}
    assert sent["Device.ManagementServer.ConnectionRequestURL"] == "http://10.42.0.50:7547/cwmp-cr"
    assert sent["Device.DeviceInfo.ProvisioningCode"] == "lab-code"
    assert [f.result for f in world.acs[0].log] == ["ok", "ok", "ok", "ok"]
    assert "Display_Name_1_=Alice" in world.acs[0].log[1].answer
    assert phone.tree.profile_values()["Display_Name_1_"] == "Bob"
    assert phone.tree.text("Device.ManagementServer.ParameterKey") == "key-1"
    assert phone.tree.nodes[name].inferred and name in phone.tree.inferred_names()
    assert phone.state.bootstrapped and phone.state.events == {}


def _fault_of(phone: CwmpPhone, request: rpc.Rpc) -> tuple[int, tuple[tuple[str, int], ...]]:
    answer = phone.handle(request)
    assert isinstance(answer, rpc.Fault), answer
    return answer.code, tuple((f.name, f.code) for f in answer.set_parameter_values_faults)


def test_cpe_faults_where_they_apply() -> None:
    phone = make_phone()
    string = Value.string

    def spv(name: str, value: Value) -> rpc.SetParameterValues:
        return SPV((rpc.ParameterValueStruct(name, value),))
    assert _fault_of(phone, spv("Device.Nope", string("1"))) == (9003, (("Device.Nope", 9005),))
    assert _fault_of(phone, spv("Device.DeviceInfo.SerialNumber", string("x")))[1] == (
        ("Device.DeviceInfo.SerialNumber", 9008),)
    interval = "Device.ManagementServer.PeriodicInformInterval"
    assert _fault_of(phone, spv(interval, Value.boolean(True)))[1] == ((interval, 9006),)
    assert _fault_of(phone, spv(interval, string("soon")))[1] == ((interval, 9007),)
    assert _fault_of(phone, spv(interval, Value.unsigned(0)))[1] == ((interval, 9007),)
    assert isinstance(phone.handle(spv(interval, string("600"))), rpc.SetParameterValuesResponse)
    assert phone.tree.value(interval) == Value.unsigned(600)
    assert _fault_of(phone, rpc.GetParameterValues(("Device.Nope.",)))[0] == 9005
    assert _fault_of(phone, rpc.GetParameterNames("Device.DeviceInfo.SerialNumber", True))[0] == 9003
    assert _fault_of(phone, rpc.SetParameterAttributes((rpc.SetParameterAttributesStruct(
        "Device.DeviceInfo.SoftwareVersion", True, 0),)))[0] == 9009
    assert _fault_of(phone, rpc.AddObject("Device.DeviceInfo."))[0] == 9005
    line9 = "Device.Services.VoiceService.1.VoiceProfile.1.Line.9."
    assert _fault_of(phone, rpc.DeleteObject(line9))[0] == 9005
    assert _fault_of(phone, rpc.Download("k", "2 Web Content", "http://x/"))[0] == 9003
    assert _fault_of(phone, rpc.Download("k", rpc.FIRMWARE, "ftp://x/f"))[0] == 9013
    # the password reads back empty (TR-069 A.3.2.2)
    got = phone.handle(rpc.GetParameterValues(("Device.ManagementServer.ConnectionRequestPassword",)))
    assert isinstance(got, rpc.GetParameterValuesResponse) and got.parameters[0].value == Value.string("")


def test_names_attributes_and_objects() -> None:
    phone = make_phone()
    names = phone.handle(rpc.GetParameterNames("Device.", True))
    assert isinstance(names, rpc.GetParameterNamesResponse)
    listed = {p.name for p in names.parameters}
    assert {"Device.DeviceInfo.", "Device.ManagementServer.", "Device.X_CISCO_COM_Profile_Rule"} <= listed
    assert all(n.count(".") <= 2 for n in listed)
    table = "Device.Services.VoiceService.1.VoiceProfile.1.Line."
    added = phone.handle(rpc.AddObject(table, "k2"))
    assert added == rpc.AddObjectResponse(1, 0)
    assert phone.handle(rpc.AddObject(table)) == rpc.AddObjectResponse(2, 0)
    assert phone.tree.text(f"{table}2.Enable") == "Enabled"
    assert phone.handle(rpc.DeleteObject(f"{table}1.")) == rpc.DeleteObjectResponse(0)
    for _ in range(9):
        assert isinstance(phone.handle(rpc.AddObject(table)), rpc.AddObjectResponse)
    assert _fault_of(phone, rpc.AddObject(table))[0] == 9004  # ten lines at most
    assert f"{table}1.Enable" not in phone.tree.nodes
    attrs = rpc.SetParameterAttributes((rpc.SetParameterAttributesStruct(
        "Device.X_CISCO_COM_Display_Name_1_", True, 2, True, ("Subscriber",)),))
    assert phone.handle(attrs) == rpc.SetParameterAttributesResponse()
    got = phone.handle(rpc.GetParameterAttributes(("Device.X_CISCO_COM_Display_Name_1_",)))
    assert got == rpc.GetParameterAttributesResponse((rpc.ParameterAttributeStruct(
        "Device.X_CISCO_COM_Display_Name_1_", 2, ("Subscriber",)),))
    methods = phone.handle(rpc.GetRPCMethods())
    assert isinstance(methods, rpc.GetRPCMethodsResponse) and "Download" in methods.methods


def test_firmware_download_transfer_complete_and_boot() -> None:
    phone = make_phone()
    world = World(scripts=[[rpc.Download("fw-1", rpc.FIRMWARE, FIRMWARE_URL, file_size=4)]],
                  files={FIRMWARE_URL: FetchResult(200, b"LOAD")})
    world.run(phone)
    assert [f.url for f in world.fetched] == [FIRMWARE_URL]
    assert world.fetched[0].user_agent.startswith("Cisco-CP-8851-3PCC")
    second = world.informs[1]
    assert set(second.event_codes()) == {"1 BOOT", "7 TRANSFER COMPLETE", "M Download", "4 VALUE CHANGE"}
    assert dict((e.code, e.command_key) for e in second.events)["M Download"] == "fw-1"
    sent = {p.name: p.value.text() for p in second.parameters}
    assert sent["Device.DeviceInfo.SoftwareVersion"] == "sip88xx.12-0-1MPP-0001"
    delivered = world.acs[1].log[1]
    assert delivered.action == "TransferComplete" and "fault 0" in delivered.request
    assert phone.state.firmware == "sip88xx.12-0-1MPP-0001" and phone.state.requests == []
    assert phone.state.boots == 2


def test_failed_download_reports_its_fault() -> None:
    phone = make_phone()
    world = World(scripts=[[rpc.Download("fw-2", rpc.FIRMWARE, "http://10.42.0.1/missing.loads")],
                           [rpc.Download("ca-1", rpc.CUSTOM_CA, "tftp://10.42.0.1/ca.pem")]],
                  files={"tftp://10.42.0.1/ca.pem": FetchResult(200, b"not a certificate")})
    world.run(phone)
    assert "fault 9016" in world.acs[1].log[1].request
    assert "fault 9018" in world.acs[2].log[1].request
    assert phone.state.custom_ca is None and phone.state.firmware == "sip88xx.11-3-1MPP-0001"


def test_vendor_configuration_and_custom_ca_downloads_are_applied() -> None:
    phone = make_phone()
    config = (b"<flat-profile><Display_Name_1_>Carol</Display_Name_1_>"
              b"<Station_Name>desk</Station_Name></flat-profile>")
    world = World(scripts=[[rpc.Download("cfg", rpc.VENDOR_CONFIG, "https://10.42.0.1/cfg.xml"),
                            rpc.Download("ca", rpc.CUSTOM_CA, "http://10.42.0.1/ca.pem")]],
                  files={"https://10.42.0.1/cfg.xml": FetchResult(200, config),
                         "http://10.42.0.1/ca.pem": FetchResult(200, CA_PEM)})
    world.run(phone)
    assert phone.tree.profile_values()["Display_Name_1_"] == "Carol"
    assert phone.tree.text("Device.X_CISCO_COM_Station_Name") == "desk"
    assert phone.state.custom_ca == CA_PEM
    results = [f.request for f in world.acs[1].log if f.action == "TransferComplete"]
    assert results == ["TransferComplete 'cfg' fault 0", "TransferComplete 'ca' fault 0"]


def test_reboot_and_factory_reset() -> None:
    phone = make_phone()
    world = World(scripts=[[rpc.Reboot("rb-7")], [rpc.FactoryReset()], []])
    world.run(phone)
    assert world.informs[1].event_codes() == ("1 BOOT", "M Reboot")
    assert dict((e.code, e.command_key) for e in world.informs[1].events)["M Reboot"] == "rb-7"
    assert world.informs[2].event_codes() == ("0 BOOTSTRAP", "1 BOOT")
    assert phone.tree.profile_values() == {}  # the profile is gone, the device's own values stay
    assert phone.tree.text("Device.DeviceInfo.SerialNumber") == "FCH2203001"


def test_periodic_inform_and_connection_request() -> None:
    phone = make_phone(CwmpSettings(duration=10_000, periodic_interval=3600))
    world = World(connection_requests=[True, False, False, False])
    world.run(phone)
    codes = [i.event_codes() for i in world.informs]
    assert codes[:3] == [("0 BOOTSTRAP", "1 BOOT"), ("6 CONNECTION REQUEST",), ("2 PERIODIC",)]
    assert len(world.informs) == 4  # 3 periodic windows fit in 10000 s after the CR


def test_acs_retry_fault_backs_off_and_counts_retries() -> None:
    phone = make_phone(CwmpSettings(duration=100_000, periodic_enable=False))
    world = World(inform_fault=lambda n: 8005 if n <= 2 else None)
    start = world.clock
    world.run(phone)
    assert [i.retry_count for i in world.informs] == [0, 1, 2]
    assert all(i.event_codes() == ("0 BOOTSTRAP", "1 BOOT") for i in world.informs)
    assert world.clock - start == pytest.approx(100_000)  # retries, then idle until the end
    # TR-069 §3.2.1.1: retry n waits between 5·2^(n-1) and 5·2^n seconds
    for n in range(1, 12):
        wait = phone.retry_wait(n)
        k = min(n, 10)
        assert 5 * 2 ** (k - 1) <= wait <= 5 * 2**k


def test_value_change_from_the_device_opens_a_session_with_event_4() -> None:
    phone = make_phone()
    name = "Device.X_CISCO_COM_Display_Name_1_"
    world = World(scripts=[[rpc.SetParameterAttributes((rpc.SetParameterAttributesStruct(name, True, 2),)),
                            SPV((rpc.ParameterValueStruct(name, Value.string("set by the ACS")),))]])
    world.run(phone)
    assert not phone.tree.changed  # TR-069: a change the ACS made is not notified back
    phone.tree.apply_profile({"Display_Name_1_": "changed on the web page"})
    assert phone.tree.active_change()
    world.run(phone)
    last = world.informs[-1]
    assert "4 VALUE CHANGE" in last.event_codes()
    assert any(p.name == name and p.value.text() == "changed on the web page" for p in last.parameters)


@pytest.mark.parametrize("mode", ["append", "replace"])
def test_settings_from_the_profile(mode: str) -> None:
    settings = CwmpSettings.from_profile({"Enable_TR-069": "yes", "ACS_Username": "cpe", "ACS_Password": "pw",
                                          "Periodic_Inform_Interval": "120", "Periodic_Inform_Enable": "No"},
                                         CwmpSettings(vendor_class_mode=mode))  # type: ignore[arg-type]
    assert (settings.enabled, settings.username, settings.password) == (True, "cpe", "pw")
    assert (settings.periodic_interval, settings.periodic_enable) == (120, False)
    assert settings.vendor_class_mode == mode


def test_every_message_the_phone_sends_is_valid_against_cwmp_1_2() -> None:
    from tests.unit.test_cwmp_schema import _validate

    class Checked(World):
        def perform(self, effect: Any) -> Any:
            if isinstance(effect, CwmpPost) and effect.body:
                _validate(effect.body)
            return super().perform(effect)

    phone = make_phone(CwmpSettings(duration=5000, periodic_interval=3600))
    world = Checked(scripts=[[rpc.GetParameterNames("", False), rpc.GetParameterAttributes(("Device.",)),
                              rpc.Download("fw", rpc.FIRMWARE, FIRMWARE_URL), rpc.AddObject("Device.Nope.")],
                             [rpc.Reboot("r")]],
                    files={FIRMWARE_URL: FetchResult(200, b"LOAD")})
    world.run(phone)
    assert len(world.informs) >= 3
