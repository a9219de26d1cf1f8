"""labkit's DHCP server against real clients, in network namespaces joined by a veth pair.

dhclient, udhcpc and dhcpcd each take a lease as an MPP 8851 would (vendor class CP-8851-3PCC,
asking for 66/150/159/160/43/125); what they store is compared byte for byte with what the
inventory below says. Then: leases survive SIGTERM and kill -9 in the middle of a burst, a relay
is answered on port 67, the preflight names a rival dnsmasq, and tshark decodes OFFER and ACK.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_module
from tests.interop.netns import (
    PYTHON,
    REPO,
    NetnsLab,
    Segment,
    launch_lab,
    new_segment,
    start_lab,
    stop_process,
    tool,
    wait_for,
)

PHONE_IP = "10.42.0.60"
VENDOR = "CP-8851-3PCC"
LAB = """\
lab:
  name: dhcp-interop
  domain: lab.example
  interface: {interface}
  address: 10.42.0.1/24
  pool: {{start: 10.42.0.100, end: 10.42.0.199}}
services: {{dns: {{enabled: false}}, tftp: {{enabled: false}}, https: {{enabled: false}}}}
dhcp:
  lease_time: 3600
  options:
    routers: [10.42.0.254]
    dns_servers: [10.42.0.53, 10.42.0.54]
    domain_name: lab.example
    ntp_servers: [10.42.0.123]
    tftp_server_name: "10.42.0.1"
  classes:
    - match: "CP-*-3PCC"
      options:
        tftp_servers: [10.42.0.1, 10.42.0.2]
        provisioning_server: "http://10.42.0.1"
        provisioning_url: "http://prov.lab.example/cfg/"
        vendor_specific:
          tr069: {{acs_url: "http://acs.lab.example:7547/", provisioning_code: bench,
                  retry_min_wait: 5, retry_multiplier: 2000}}
        vendor_identifying:
          - enterprise: 3561
            tr111: {{gateway_manufacturer_oui: "00562B", gateway_serial_number: LABKIT0001,
                    gateway_product_class: labkit}}
      force: [125]
models: {{CP-8851-3PCC: {{}}}}
phones:
  - {{mac: "{mac}", model: CP-8851-3PCC, ip: {phone_ip}, name: bench-phone}}
{more}"""


def _tlv(code: int, data: bytes) -> bytes:
    return bytes([code, len(data)]) + data


# What the inventory above says, written out by hand (not through labkit's codec).
TR069 = (_tlv(1, b"http://acs.lab.example:7547/") + _tlv(2, b"bench") + _tlv(3, b"5") + _tlv(4, b"2000"))
TR111 = _tlv(4, b"00562B") + _tlv(5, b"LABKIT0001") + _tlv(6, b"labkit")
VIVSO = (3561).to_bytes(4, "big") + bytes([len(TR111)]) + TR111
EXPECTED: dict[int, Any] = {
    1: "255.255.255.0",
    3: ["10.42.0.254"],
    6: ["10.42.0.53", "10.42.0.54"],
    15: "lab.example",
    42: ["10.42.0.123"],
    43: TR069,
    66: "10.42.0.1",
    125: VIVSO,
    150: ["10.42.0.1", "10.42.0.2"],
    159: "http://10.42.0.1",
    160: "http://prov.lab.example/cfg/",
}
REQUESTED = (1, 3, 6, 15, 42, 43, 66, 125, 150, 159, 160)


def write_lab(directory: Path, seg: Segment, more_phones: Sequence[str] = ()) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    more = "".join(f'  - {{mac: "{mac}", model: CP-8851-3PCC}}\n' for mac in more_phones)
    inventory = directory / "lab.yaml"
    inventory.write_text(LAB.format(interface=seg.server_if, mac=seg.client_mac, phone_ip=PHONE_IP,
                                     more=more))
    return inventory


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def ips(text: str, separator: str | None = None) -> list[str]:
    return [str(IPv4Address(part.strip())) for part in text.split(separator) if part.strip()]


def server_lease(lab: NetnsLab, mac: str) -> tuple[str, str | None] | None:
    """(ip, vendor class) of `mac` as the server stored it (SQLite, read-only)."""
    with closing(sqlite3.connect(f"file:{lab.state / 'leases.sqlite3'}?mode=ro", uri=True)) as db:
        row = db.execute("SELECT ip, vendor_class FROM leases WHERE mac = ? AND state = 'bound'",
                         (mac,)).fetchone()
    return (row[0], row[1]) if row else None


@pytest.fixture(scope="module")
def client_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Segment, NetnsLab]]:
    """One server for the client tests; each test starts its client on a clean interface."""
    seg = new_segment()
    try:
        directory = tmp_path_factory.mktemp("dhcp-clients")
        lab = start_lab(seg, write_lab(directory, seg), directory / "state")
        yield seg, lab
        assert lab.stop() == 0, lab.text()
        assert "Traceback" not in lab.text()
    finally:
        seg.close()


def fresh_client(seg: Segment) -> None:
    seg.client.run("ip", "addr", "flush", "dev", seg.client_if)


def check_options(got: dict[int, Any], client: str) -> None:
    for code in REQUESTED:
        assert code in got, f"{client} did not report option {code}; it reported {sorted(got)}"
        assert got[code] == EXPECTED[code], f"{client}: option {code} is {got[code]!r}"


# ------------------------------------------------------------------------------------------ clients


def _dhclient_value(raw: str) -> Any:
    raw = raw.strip()
    if raw.startswith('"'):
        return raw[1:-1]
    return raw


def _colon_hex(raw: str) -> bytes:
    """dhclient prints non-text strings as colon-separated hex without leading zeros."""
    if raw.startswith('"'):
        return raw[1:-1].encode()
    return bytes(int(part, 16) for part in raw.split(":"))


def dhclient_lease(seg: Segment, tmp_path: Path) -> tuple[str, dict[int, Any]]:
    """dhclient's lease file: the address and the options, as dhclient stored them."""
    dhclient = tool("dhclient")
    config = tmp_path / "dhclient.conf"
    # codes dhclient has no name for are declared, so they land in the lease file typed
    config.write_text(f"""\
option mpp-tftp-servers code 150 = array of ip-address;
option mpp-provisioning-server code 159 = text;
option mpp-provisioning-url code 160 = text;
option mpp-vivso code 125 = string;
send vendor-class-identifier "{VENDOR}";
request subnet-mask, routers, domain-name-servers, domain-name, ntp-servers, tftp-server-name,
    mpp-tftp-servers, mpp-provisioning-server, mpp-provisioning-url, vendor-encapsulated-options,
    mpp-vivso;
""")
    leases = tmp_path / "dhclient.leases"
    leases.touch()
    # our own script: the stock dhclient-script would rewrite the machine's /etc/resolv.conf
    hook = script(tmp_path / "hook.sh", f'env > "{tmp_path}/env.$reason"\n')
    process = seg.start(seg.client, [dhclient, "-1", "-d", "-v", "-cf", str(config), "-lf", str(leases),
                                     "-pf", str(tmp_path / "dhclient.pid"), "-sf", str(hook),
                                     seg.client_if], tmp_path / "dhclient.out")
    try:
        text = wait_for(lambda: "fixed-address" in leases.read_text() and leases.read_text(), 90,
                        "dhclient's lease file")
    finally:
        stop_process(process)
    lease = text[text.rindex("lease {"):]
    address = re.search(r"fixed-address ([0-9.]+);", lease)
    values = dict(re.findall(r"^\s*option ([\w-]+) (.*);$", lease, re.MULTILINE))
    by_code = {1: "subnet-mask", 3: "routers", 6: "domain-name-servers", 15: "domain-name",
               42: "ntp-servers", 43: "vendor-encapsulated-options", 66: "tftp-server-name",
               125: "mpp-vivso", 150: "mpp-tftp-servers", 159: "mpp-provisioning-server",
               160: "mpp-provisioning-url"}
    got: dict[int, Any] = {}
    for code, name in by_code.items():
        if name not in values:
            continue
        raw = values[name]
        if code in (3, 6, 42, 150):
            got[code] = ips(raw, ",")
        elif code in (43, 125):
            got[code] = _colon_hex(raw)
        else:
            got[code] = _dhclient_value(raw)
    return (address.group(1) if address else ""), got


def _env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def _hex_ips(value: str) -> list[str]:
    raw = bytes.fromhex(value)
    return [str(IPv4Address(raw[i:i + 4])) for i in range(0, len(raw), 4)]


def udhcpc_lease(seg: Segment, tmp_path: Path) -> tuple[str, dict[int, Any]]:
    """udhcpc's script environment on `bound`."""
    # the udhcpc package, else busybox's own udhcpc (the same code)
    udhcpc = shutil.which("udhcpc") or shutil.which("udhcpc", path="/usr/sbin:/sbin")
    command = [udhcpc] if udhcpc else [tool("busybox"), "udhcpc"]
    hook = script(tmp_path / "hook.sh", f'env > "{tmp_path}/env.$1"\n')
    asked = [arg for code in (66, 150, 159, 160, 43, 125, 42, 15) for arg in ("-O", str(code))]
    done = seg.client.run(*command, "-f", "-q", "-n", "-i", seg.client_if, "-V", VENDOR, *asked,
                          "-s", str(hook), "-t", "10", "-T", "3", timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    env = _env(tmp_path / "env.bound")
    got = {1: env.get("subnet"), 3: ips(env.get("router", "")), 6: ips(env.get("dns", "")),
           15: env.get("domain"), 42: ips(env.get("ntpsrv", "")), 66: env.get("tftp"),
           150: _hex_ips(env["opt150"]) if "opt150" in env else None,
           # udhcpc knows no names for these: it hands them over as hex
           159: bytes.fromhex(env["opt159"]).decode() if "opt159" in env else None,
           160: bytes.fromhex(env["opt160"]).decode() if "opt160" in env else None,
           43: bytes.fromhex(env["opt43"]) if "opt43" in env else None,
           125: bytes.fromhex(env["opt125"]) if "opt125" in env else None}
    return env.get("ip", ""), got


def dhcpcd_lease(seg: Segment, tmp_path: Path) -> tuple[str, dict[int, Any]]:
    """dhcpcd's hook environment on BOUND."""
    dhcpcd = tool("dhcpcd")
    config = tmp_path / "dhcpcd.conf"
    # 125 redefined as raw hex: dhcpcd's own definition only exports the enterprise number
    config.write_text(f"""\
define 125 binhex mpp_vivso
define 159 string mpp_provisioning_server
define 160 string mpp_provisioning_url
vendorclassid {VENDOR}
option subnet_mask, routers, domain_name_servers, domain_name, ntp_servers, tftp_server_name
option tftp_servers, mpp_provisioning_server, mpp_provisioning_url, vendor_encapsulated_options
option mpp_vivso
clientid
noarp
noipv4ll
""")
    seg.cleanup_files.append(Path(f"/var/lib/dhcpcd/{seg.client_if}.lease"))  # dhcpcd's own lease file
    hook = script(tmp_path / "hook.sh", f'env > "{tmp_path}/env.$reason"\n')
    argv = [dhcpcd, "-f", str(config), "-c", str(hook), "-4", "--oneshot", "--nobackground", "-t", "60",
            seg.client_if]
    answer = seg.client.call("reap", argv=argv, timeout=150)
    assert answer["returncode"] == 0
    env = _env(tmp_path / "env.BOUND")
    got = {1: env.get("new_subnet_mask"), 3: ips(env.get("new_routers", "")),
           6: ips(env.get("new_domain_name_servers", "")), 15: env.get("new_domain_name"),
           42: ips(env.get("new_ntp_servers", "")), 66: env.get("new_tftp_server_name"),
           150: ips(env.get("new_tftp_servers", "")),
           159: env.get("new_mpp_provisioning_server"), 160: env.get("new_mpp_provisioning_url"),
           43: bytes.fromhex(env.get("new_vendor_encapsulated_options", "")),
           125: bytes.fromhex(env.get("new_mpp_vivso", ""))}
    return env.get("new_ip_address", ""), got


@dataclass(frozen=True)
class Client:
    """A real DHCP client, and how to read what it stored: (address, {code: value})."""

    name: str
    take_lease: Callable[[Segment, Path], tuple[str, dict[int, Any]]]


CLIENTS = (Client("dhclient", dhclient_lease), Client("udhcpc", udhcpc_lease), Client("dhcpcd", dhcpcd_lease))


@pytest.mark.parametrize("client", CLIENTS, ids=lambda c: c.name)
def test_client_stores_the_inventory_options(client_lab: tuple[Segment, NetnsLab], tmp_path: Path,
                                             client: Client) -> None:
    seg, lab = client_lab
    fresh_client(seg)
    address, got = client.take_lease(seg, tmp_path)
    assert address == PHONE_IP
    check_options(got, client.name)
    assert server_lease(lab, seg.client_mac) == (PHONE_IP, VENDOR)


# ------------------------------------------------------------------------------------------ tshark

MPP_OPTION_159 = '"159","MPP provisioning server","string"'


def tshark_lines(tshark: str, capture: Path, *args: str) -> list[str]:
    done = subprocess.run([tshark, "-n", "-r", str(capture), *args], capture_output=True, text=True,
                          timeout=120, check=True)
    return [line for line in done.stdout.splitlines() if line.strip()]


def test_tshark_decodes_offer_and_ack_without_errors(client_lab: tuple[Segment, NetnsLab],
                                                     tmp_path: Path) -> None:
    seg, _lab = client_lab
    tshark = tool("tshark")
    require_module("scapy")  # the phone-like client that takes the lease
    fresh_client(seg)
    capture = tmp_path / "dhcp.pcapng"
    output = tmp_path / "tshark.out"
    # tshark stops by itself after the four DORA packets, so the file is complete when it exits
    process = seg.start(seg.client, [tshark, "-n", "-i", seg.client_if, "-w", str(capture),
                                     "-f", "udp port 67 or udp port 68", "-a", "packets:4",
                                     "-a", "duration:120"], output)
    try:
        wait_for(lambda: "Capturing on" in output.read_text(errors="replace"), 60, "tshark to capture")
        answer = seg.client.call("dora", iface=seg.client_if, macs=[seg.client_mac], settle=0.5)
        assert [r["type"] for r in answer["results"]] == ["offer", "ack"], answer
        assert process.wait(timeout=150) == 0, output.read_text()
    finally:
        stop_process(process, signal.SIGINT)
    assert len(tshark_lines(tshark, capture)) == 4
    assert tshark_lines(tshark, capture, "-Y", "dhcp.option.dhcp == 2 && dhcp.ip.your == " + PHONE_IP)
    assert tshark_lines(tshark, capture, "-Y", "dhcp.option.dhcp == 5 && dhcp.ip.your == " + PHONE_IP)
    # Wireshark reads 159 as RFC 7618 port parameters (IANA's 159) and flags its length; Cisco
    # MPP uses 159 for a URL text. That is the only finding, and it is about the option number:
    flagged = tshark_lines(tshark, capture, "-Y", "_ws.malformed || _ws.expert.severity >= warning",
                           "-T", "fields", "-e", "_ws.expert.message")
    assert {m for line in flagged for m in line.split(",")} <= {"length must be 4"}, flagged
    # told that 159 is text (as MPP phones read it), Wireshark finds nothing at all
    custom = ("-o", f"uat:custom_bootp:{MPP_OPTION_159}")
    problems = "_ws.malformed || _ws.expert.severity >= warning"
    assert tshark_lines(tshark, capture, *custom, "-Y", problems) == []
    expert = tshark_lines(tshark, capture, *custom, "-q", "-z", "expert")
    assert not any(re.search(r"\b(Errors|Warnings) \(", line) for line in expert), expert
    detail = "\n".join(tshark_lines(tshark, capture, *custom, "-V", "-Y", "dhcp.option.dhcp == 5"))
    assert "MPP provisioning server" in detail and "http://10.42.0.1" in detail
    assert "http://prov.lab.example/cfg/" in detail  # 160: Wireshark calls it "ex DHCP Captive-Portal"


# ------------------------------------------------------------------------------------------ leases

BURST_MACS = [f"00:56:2b:10:00:{n:02x}" for n in range(50)]
UNKNOWN_MAC = "00:56:2b:ee:ee:ee"


@pytest.fixture
def burst_segment() -> Iterator[Segment]:
    require_module("scapy")  # builds the burst's frames
    seg = new_segment()
    try:
        seg.client.run("ip", "link", "set", seg.client_if, "promisc", "on")  # replies go to 50 MACs
        yield seg
    finally:
        seg.close()


def acks(results: list[dict[str, Any]]) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = {}
    for entry in results:
        if entry["type"] == "ack":
            seen.setdefault(entry["mac"], set()).add(entry["ip"])
    return seen


def stored_leases(state: Path) -> dict[str, str]:
    with closing(sqlite3.connect(f"file:{state / 'leases.sqlite3'}?mode=ro", uri=True)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = db.execute("SELECT mac, ip FROM leases WHERE state = 'bound'").fetchall()
    addresses = [ip for _, ip in rows]
    assert len(addresses) == len(set(addresses)), f"an address is bound to two MACs: {rows}"
    return dict(rows)


def labkit_leases(state: Path) -> dict[str, str]:
    """`labkit leases` as a user sees it: MAC -> IP from its table."""
    done = subprocess.run([PYTHON, "-m", "labkit", "leases", "--state", str(state)], capture_output=True,
                          text=True, timeout=60, cwd=REPO, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    rows = re.findall(r"([0-9a-f]{2}(?::[0-9a-f]{2}){5})\s*│\s*(\d+\.\d+\.\d+\.\d+)", done.stdout)
    addresses = [ip for _, ip in rows]
    assert len(addresses) == len(set(addresses)), done.stdout
    return dict(rows)


def check_one_address_per_mac(results: list[dict[str, Any]]) -> dict[str, str]:
    seen = acks(results)
    moved = {mac: sorted(found) for mac, found in seen.items() if len(found) > 1}
    assert not moved, f"MACs acknowledged with different addresses: {moved}"
    mapping = {mac: found.pop() for mac, found in seen.items()}
    assert len(set(mapping.values())) == len(mapping), f"one address acknowledged to two MACs: {mapping}"
    return mapping


def test_leases_survive_a_restart_and_unknown_macs_get_nothing(burst_segment: Segment,
                                                               tmp_path: Path) -> None:
    seg = burst_segment
    inventory = write_lab(tmp_path, seg, BURST_MACS)
    state = tmp_path / "state"
    macs = [seg.client_mac, *BURST_MACS, UNKNOWN_MAC]
    lab = start_lab(seg, inventory, state, name="first")
    first = seg.client.call("dora", iface=seg.client_if, macs=macs, expect=macs[:-1])["results"]
    assert lab.stop() == 0, lab.text()
    before = check_one_address_per_mac(first)
    assert set(before) == {seg.client_mac, *BURST_MACS}, sorted(set(macs) - set(before))
    assert before[seg.client_mac] == PHONE_IP
    assert all(100 <= int(before[mac].rsplit(".", 1)[1]) <= 199 for mac in BURST_MACS)  # the pool
    # offers to clients without an address went to their own MAC, as L2 unicast (RFC 2131 §4.1)
    offers = [r for r in first if r["type"] == "offer"]
    assert all(r["eth_dst"] == r["mac"] and r["ip_dst"] == r["ip"] for r in offers), offers[:3]
    assert stored_leases(state) == before

    lab = start_lab(seg, inventory, state, name="second")
    second = seg.client.call("dora", iface=seg.client_if, macs=macs, expect=macs[:-1])["results"]
    assert check_one_address_per_mac(first + second) == before
    assert [r["type"] for r in first + second if r["mac"] == UNKNOWN_MAC] == ["timeout", "timeout"]
    assert lab.wait_event(lambda e: e["phone"] == UNKNOWN_MAC)["result"] == "unknown-client"
    assert lab.stop() == 0, lab.text()
    assert stored_leases(state) == before
    assert labkit_leases(state) == before


def test_leases_survive_kill_9_in_the_middle_of_a_burst(burst_segment: Segment, tmp_path: Path) -> None:
    seg = burst_segment
    inventory = write_lab(tmp_path, seg, BURST_MACS)
    state = tmp_path / "state"
    known = [seg.client_mac, *BURST_MACS]
    out, stop_file = tmp_path / "burst.jsonl", tmp_path / "burst.stop"
    lab = start_lab(seg, inventory, state, name="first")
    # DORA rounds for all 52 clients back to back (bounded: 300 rounds or 240 s); the burst itself
    # kills the server halfway through its second round, between two REQUESTs
    burst = seg.start(seg.client, [PYTHON, "-m", "tests.interop.netns", "dora", json.dumps(
        {"iface": seg.client_if, "macs": [*known, UNKNOWN_MAC], "expect": known, "out": str(out),
         "rounds": 300, "seconds": 240, "wait": 5, "settle": 0.2, "stop_file": str(stop_file),
         "kill_pid": lab.process.pid, "kill_after_requests": len(known) * 3 // 2})], tmp_path / "burst.out")

    def lines() -> list[dict[str, Any]]:
        text = out.read_text() if out.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.endswith("}")]

    try:
        assert lab.process.wait(timeout=120) == -signal.SIGKILL, lab.text()
        killed = wait_for(lambda: next((r for r in lines() if r["type"] == "killed"), None), 60, "the kill")
        kill_round = killed["round"]
        stored_leases(state)  # readable and consistent right after the kill
        lab = start_lab(seg, inventory, state, name="second")

        def complete_round_after_restart() -> bool:
            done: dict[int, int] = {}
            for r in lines():
                if r["round"] > kill_round and r["type"] == "ack":
                    done[r["round"]] = done.get(r["round"], 0) + 1
            return any(count == len(known) for count in done.values())

        wait_for(complete_round_after_restart, 120, "a full round of ACKs after the restart")
        stop_file.touch()
        assert burst.wait(timeout=60) == 0, (tmp_path / "burst.out").read_text()
    finally:
        stop_process(burst)
    results = lines()
    in_kill_round = [r for r in results if r["round"] == kill_round and r.get("mac") in known]
    # REQUESTs left after the kill: some exchanges were in flight and never answered
    assert any(r["type"] == "timeout" for r in in_kill_round), in_kill_round
    assert any(r["type"] == "ack" for r in in_kill_round), in_kill_round
    mapping = check_one_address_per_mac(results)  # before the kill, after the restart: one address
    assert set(mapping) == set(known)
    assert all(r["type"] == "timeout" for r in results if r.get("mac") == UNKNOWN_MAC)
    assert lab.stop() == 0, lab.text()
    assert stored_leases(state) == mapping
    assert labkit_leases(state) == mapping


# ------------------------------------------------------------------------------------------ relay


def test_a_relayed_request_is_answered_to_the_relay_on_port_67(tmp_path: Path) -> None:
    require_module("scapy")  # crafts the relayed messages
    seg = new_segment(client_address="10.42.0.2/24")  # the relay agent's address on the segment
    try:
        lab = start_lab(seg, write_lab(tmp_path, seg), tmp_path / "state")
        answer = seg.client.call("relay", server="10.42.0.1", relay_address="10.42.0.2", mac=seg.client_mac)
        replies = answer["replies"]
        assert [r["type"] for r in replies] == [2, 5]  # OFFER, ACK
        for reply in replies:
            assert reply["from"] == ["10.42.0.1", 67]  # received on the relay's port 67 socket
            assert reply["giaddr"] == "10.42.0.2"
            assert reply["yiaddr"] == PHONE_IP
            assert reply["chaddr"] == seg.client_mac.replace(":", "")
            assert reply["options"]["relay_agent_information"] == answer["relay_circuit"]  # RFC 3046 echo
        event = lab.wait_event(
            lambda e: e["action"] == "request" and "via relay 10.42.0.2" in str(e["request"]))
        assert event["result"] == "ok"
        assert lab.stop() == 0, lab.text()
    finally:
        seg.close()


# ------------------------------------------------------------------------------------------ preflight


def test_preflight_names_a_rival_dnsmasq_and_allow_other_dhcp_overrides(tmp_path: Path) -> None:
    dnsmasq = tool("dnsmasq")
    seg = new_segment(client_address="10.42.0.250/24")
    try:
        inventory = write_lab(tmp_path, seg)
        rival_log = tmp_path / "dnsmasq.out"
        seg.start(seg.client, [
            dnsmasq, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            "--port=0", f"--interface={seg.client_if}", "--bind-interfaces", "--no-ping",
            "--dhcp-range=10.42.0.150,10.42.0.160,255.255.255.0,1h", "--user=root",
            f"--dhcp-leasefile={tmp_path / 'dnsmasq.leases'}", f"--pid-file={tmp_path / 'dnsmasq.pid'}",
            "--log-facility=-", "--log-dhcp"], rival_log)
        wait_for(lambda: "DHCP, IP range" in rival_log.read_text(errors="replace"), 60, "dnsmasq to start")

        output = tmp_path / "refused.out"
        refused = launch_lab(seg, inventory, tmp_path / "state", output, tmp_path / "refused.jsonl")
        assert refused.wait(timeout=120) == 1, output.read_text()
        message = output.read_text()
        assert "10.42.0.250" in message and seg.client_mac in message, message
        assert "--allow-other-dhcp" in message
        assert "DHCPOFFER" in rival_log.read_text()  # dnsmasq did answer the probe

        lab = start_lab(seg, inventory, tmp_path / "state", "--allow-other-dhcp", name="allowed")
        assert lab.stop() == 0, lab.text()
    finally:
        seg.close()
