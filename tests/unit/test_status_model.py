"""The status model folded from events (pure: event sequences in, a snapshot out)."""

from __future__ import annotations

import json

from labkit.services.status import STAGES, LabStatus, fold
from tests.helpers import event

MAC = "00:56:2b:00:00:01"
OTHER = "00:56:2b:00:00:02"
PHONES = {MAC: ("desk-1", "CP-8851-3PCC", None), OTHER: ("desk-2", "CP-8851-3PCC", "192.0.2.20")}
FIRMWARE = "sip88xx.12-0-1MPP-0001.loads"


def boot(mac: str = MAC, ip: str = "192.0.2.50", start: float = 100.0) -> list:
    """A whole provisioning: DHCP, DNS, the model profile, its own profile, firmware, a syslog line."""
    client = f"{ip}:5060"
    return [
        event(start, "dhcp", action="discover", request="DISCOVER", answer=f"OFFER {ip}", phone=mac,
              client="0.0.0.0:68", ip=ip),
        event(start + 0.1, "dhcp", action="request", request="REQUEST", answer=f"ACK {ip}", phone=mac,
              client="0.0.0.0:68", ip=ip),
        event(start + 0.2, "dns", request="SRV _ciscoprov-https._tls.t.example", client=client),
        event(start + 0.5, "tftp", action="rrq", request="/CP-8851-3PCC.xml", answer="2048 bytes",
              client=client),
        event(start + 1.0, "http", action="get", request=f"/Cisco/desk-1/{mac}.cfg", answer="200",
              client=client),
        event(start + 4.0, "http", action="get", request=f"/firmware/{FIRMWARE}", answer="200",
              client=client),
        event(start + 5.0, "syslog", action="log", request="booted", client=client),
    ]


def test_every_inventory_phone_is_listed_waiting_before_anything_happens() -> None:
    snapshot = fold([], PHONES).snapshot()
    assert [p["state"] for p in snapshot["phones"]] == ["waiting", "waiting"]
    assert snapshot["stages"] == {"waiting": 2, "dhcp": 0, "profile": 0, "firmware": 0, "provisioned": 0}
    assert snapshot["phones"][1]["address"] == "192.0.2.20"  # its fixed address, before any contact
    json.dumps(snapshot)  # the documented shape is plain JSON


def test_a_phone_walks_dhcp_profile_firmware_provisioned() -> None:
    status = LabStatus.of_phones((mac, *info) for mac, info in PHONES.items())
    seen = []
    for e in boot():
        changed = status.apply(e)
        assert changed is not None and changed.mac == MAC  # address-only events find the leased phone
        seen.append(changed.stage)
    assert seen == ["dhcp", "profile", "profile", "profile", "firmware", "provisioned", "provisioned"]
    phone = status.phones[MAC].to_dict()
    assert phone["address"] == "192.0.2.50" and phone["firmware"] == FIRMWARE
    assert phone["first_contact"] == 100.0 and phone["last_contact"] == 105.0
    assert phone["provisioned_at"] == 104.0 and phone["seconds_to_provisioned"] == 4.0
    assert phone["problem"] is None and phone["events"] == 7
    assert status.leases == {"192.0.2.50": MAC}


def test_where_a_phone_is_stuck_and_why() -> None:
    events = [*boot()[:3],
              event(101.0, "tftp", "not-found", action="rrq", request="/CP-8851-3PCC.xml",
                    answer="error 1 file not found", client="192.0.2.50:5060")]
    phone = fold(events, PHONES).phones[MAC]
    assert phone.stage == "profile"
    assert phone.problem == "tftp /CP-8851-3PCC.xml -> error 1 file not found [not-found]"
    # the next step forward clears the problem
    phone_after = fold([*events, *boot()[3:5]], PHONES).phones[MAC]
    assert phone_after.stage == "firmware" and phone_after.problem is None


def test_faults_are_counted_once_per_firing_by_rule() -> None:
    fault = event(101.0, "http", "fault", action="fault", request="/CP-8851-3PCC.xml", answer="status=404",
                  phone=MAC, rule="flaky profile")
    faulted = event(101.0, "http", "fault", action="get", request="/CP-8851-3PCC.xml", answer="404 (fault)",
                    phone=MAC)
    status = fold([*boot()[:2], fault, faulted, fault, faulted], PHONES)
    assert status.phones[MAC].faults == {"flaky profile": 2}
    assert status.faults_fired == {"flaky profile": 2}
    http = status.services["http"]
    assert http.requests == 2 and http.errors == 2 and http.errors_by_reason == {"fault": 2}


def test_service_counters_requests_errors_malformed_and_kernel_drops() -> None:
    events = [
        event(1.0, "tftp", "accepted", action="wrq", request="/upload.log"),  # not an error
        event(1.1, "dns", "nxdomain", request="A nope.t.example"),
        event(1.2, "dns", "formerr", action="malformed", request="12 bytes", client="198.51.100.7:53"),
        event(1.3, "dhcp", "malformed", action="malformed", request="3 bytes", client=None),
        event(1.4, "syslog", "overflow", action="kernel-drops", request="5 datagrams", client=None, total=5),
        event(1.5, "syslog", "overflow", action="kernel-drops", request="2 datagrams", client=None, total=7),
        event(1.6, "dhcp", "ignored", action="request", request="REQUEST", phone=OTHER),
    ]
    snapshot = fold(events, PHONES).snapshot()
    services = snapshot["services"]
    assert services["tftp"]["requests"] == 1 and services["tftp"]["errors"] == 0
    assert services["dns"] == {"requests": 2, "errors": 1, "malformed": 1, "kernel_drops": 0,
                               "by_action": {"malformed": 1, "query": 1}, "errors_by_reason": {"nxdomain": 1}}
    assert services["dhcp"]["malformed"] == 1 and services["dhcp"]["errors"] == 0
    assert services["syslog"]["kernel_drops"] == 7 and services["syslog"]["requests"] == 0
    assert snapshot["unknown_clients"] == {"192.0.2.9": 2, "198.51.100.7": 1}


def test_a_phone_outside_the_inventory_is_listed_when_a_service_names_it() -> None:
    stranger = "00:56:2b:99:99:99"
    status = fold([event(1.0, "dhcp", "unknown-client", action="discover", request="DISCOVER",
                         answer="no answer (not in the inventory)", phone=stranger)], PHONES)
    phone = status.phones[stranger]
    assert phone.stage == "dhcp" and phone.problem is not None and "unknown-client" in phone.problem


def test_loopback_clients_are_not_attributed_by_address() -> None:
    """On loopback every virtual phone shares 127.0.0.1: only events naming a phone count for it."""
    events = [event(1.0, "dhcp", action="request", request="REQUEST", answer="ACK 127.0.0.1", phone=MAC,
                    ip="127.0.0.1"),
              event(1.1, "http", action="get", request="/CP-8851-3PCC.xml", client="127.0.0.1:4000")]
    status = fold(events, PHONES)
    assert status.phones[MAC].stage == "profile" and status.phones[MAC].events == 1


def test_snapshot_shape_is_stable() -> None:
    snapshot = fold(boot(), PHONES).snapshot(now=200.0)
    assert set(snapshot) == {"version", "now", "events", "last_event", "stages", "phones", "services",
                             "faults_fired", "unknown_clients", "leases_in_use"}
    assert tuple(snapshot["stages"]) == STAGES and snapshot["version"] == 1 and snapshot["now"] == 200.0
    assert set(snapshot["phones"][0]) == {"mac", "name", "model", "address", "state", "problem",
                                          "first_contact", "last_contact", "provisioned_at",
                                          "seconds_to_provisioned", "firmware", "faults", "events"}
    assert snapshot["leases_in_use"] == 1 and snapshot["events"] == 7


def test_a_reload_adds_its_new_phones_and_keeps_the_story_of_the_others() -> None:
    status = LabStatus.of_phones([(MAC, "desk-1", "CP-8851-3PCC", None)])
    for e in boot():
        status.apply(e)
    status.add_phones([(MAC, "renamed", "CP-8851-3PCC", None),
                       (OTHER, "desk-2", "CP-8851-3PCC", "192.0.2.20")])
    snapshot = {p["mac"]: p for p in status.snapshot()["phones"]}
    assert snapshot[MAC]["state"] == "provisioned"  # its story carries on through the reload
    assert snapshot[OTHER]["state"] == "waiting" and snapshot[OTHER]["address"] == "192.0.2.20"
