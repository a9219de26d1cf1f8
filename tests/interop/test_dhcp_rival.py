"""Another DHCP server on the lab segment (issue 10 item 1), in network namespaces only.

The preflight hears dnsmasq on its default settings (it pings an address ~3 s before offering
it) and a server that answers only REQUESTs; while serving, another server's OFFER becomes a
"rival" event, and with `lab.on_rival_dhcp: stop` labkit stops answering. ISC dhcpd is tried
when installed.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import pytest

from tests.conftest import require_module
from tests.interop.netns import PYTHON, Segment, launch_lab, new_segment, start_lab, tool, wait_for
from tests.interop.test_dhcp_clients import write_lab

RIVAL = "10.42.0.250"

# A server that answers only REQUESTs (with an ACK for whatever is asked), never a DISCOVER;
# bounded in time and answers. Runs in the client namespace with labkit's codec.
REQUEST_ONLY = textwrap.dedent("""\
    import socket, sys, time
    from ipaddress import IPv4Address
    from labkit.protocols.dhcp.message import ACK, REQUEST, ZERO, DhcpDecodeError, build, parse, reply_to
    interface, server = sys.argv[1], IPv4Address(sys.argv[2])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    sock.setsockopt(socket.SOL_SOCKET, 25, interface.encode() + b"\\0")  # SO_BINDTODEVICE
    sock.bind(("0.0.0.0", 67))
    sock.settimeout(0.5)
    print("ready", flush=True)
    deadline, answered = time.monotonic() + 300, 0
    while time.monotonic() < deadline and answered < 50:
        try:
            request = parse(sock.recvfrom(4096)[0])
        except (TimeoutError, DhcpDecodeError):
            continue
        if request.message_type != REQUEST:
            continue
        wanted = request.ip_option(50) or request.ciaddr
        if wanted == ZERO:
            continue
        options = [(54, server.packed), (51, (3600).to_bytes(4, "big")), (1, bytes([255, 255, 255, 0]))]
        sock.sendto(build(reply_to(request, ACK, yiaddr=wanted, options=options)), ("255.255.255.255", 68))
        answered += 1
        print("ACK", wanted, flush=True)
""")


def dnsmasq_argv(seg: Segment, tmp_path: Path, *extra: str) -> list[str]:
    return [tool("dnsmasq"), "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            "--port=0", f"--interface={seg.client_if}", "--bind-interfaces",
            "--dhcp-range=10.42.0.150,10.42.0.160,255.255.255.0,1h", "--user=root",
            f"--dhcp-leasefile={tmp_path / 'dnsmasq.leases'}", f"--pid-file={tmp_path / 'dnsmasq.pid'}",
            "--log-facility=-", "--log-dhcp", *extra]


def start_dnsmasq(seg: Segment, tmp_path: Path, *extra: str) -> Path:
    log = tmp_path / "dnsmasq.out"
    seg.start(seg.client, dnsmasq_argv(seg, tmp_path, *extra), log)
    wait_for(lambda: "DHCP, IP range" in log.read_text(errors="replace"), 60, "dnsmasq to start")
    return log


def refused_by_preflight(seg: Segment, tmp_path: Path) -> str:
    """Start `labkit up` on the segment; it must refuse; its message."""
    output = tmp_path / "refused.out"
    inventory = write_lab(tmp_path, seg)
    refused = launch_lab(seg, inventory, tmp_path / "state", output, tmp_path / "refused.jsonl")
    assert refused.wait(timeout=120) == 1, output.read_text()
    return output.read_text()


def test_preflight_hears_dnsmasq_that_pings_before_it_offers(tmp_path: Path) -> None:
    seg = new_segment(client_address=f"{RIVAL}/24")
    try:
        log = start_dnsmasq(seg, tmp_path)  # no --no-ping: dnsmasq's default
        message = refused_by_preflight(seg, tmp_path)
        assert RIVAL in message and seg.client_mac in message, message
        assert re.search(r"offered 10\.42\.0\.1(5\d|60)\b", message), message  # from dnsmasq's range
        assert "--allow-other-dhcp" in message
        assert "DHCPOFFER" in log.read_text()
    finally:
        seg.close()


def test_preflight_hears_a_server_that_only_answers_requests(tmp_path: Path) -> None:
    seg = new_segment(client_address=f"{RIVAL}/24")
    try:
        script = tmp_path / "request_only.py"
        script.write_text(REQUEST_ONLY)
        log = tmp_path / "request_only.out"
        seg.start(seg.client, [PYTHON, str(script), seg.client_if, RIVAL], log)
        wait_for(lambda: "ready" in log.read_text(), 60, "the REQUEST-only server to start")
        message = refused_by_preflight(seg, tmp_path)
        assert f"server {RIVAL}" in message and "acknowledged 10.42.0.100" in message, message
        assert "ACK 10.42.0.100" in log.read_text()
    finally:
        seg.close()


def test_preflight_hears_isc_dhcpd(tmp_path: Path) -> None:
    dhcpd = shutil.which("dhcpd") or shutil.which("dhcpd", path="/usr/sbin:/sbin")
    if dhcpd is None:
        pytest.skip("ISC dhcpd is not installed")
    seg = new_segment(client_address=f"{RIVAL}/24")
    try:
        config = tmp_path / "dhcpd.conf"
        config.write_text("authoritative;\nsubnet 10.42.0.0 netmask 255.255.255.0 {\n"
                          "  range 10.42.0.150 10.42.0.160;\n}\n")
        leases = tmp_path / "dhcpd.leases"
        leases.touch()
        log = tmp_path / "dhcpd.out"
        seg.start(seg.client, [dhcpd, "-f", "-d", "-4", "-cf", str(config), "-lf", str(leases),
                               "-pf", str(tmp_path / "dhcpd.pid"), seg.client_if], log)
        wait_for(lambda: "Server starting service" in log.read_text(errors="replace"), 60, "dhcpd to start")
        message = refused_by_preflight(seg, tmp_path)
        assert f"server {RIVAL}" in message, message
    finally:
        seg.close()


def test_a_rival_heard_while_serving_is_an_event_and_stop_silences_labkit(tmp_path: Path) -> None:
    require_module("scapy")
    seg = new_segment(client_address=f"{RIVAL}/24")
    try:
        inventory = write_lab(tmp_path, seg)
        text = inventory.read_text()
        inventory.write_text(text.replace("  pool:", "  on_rival_dhcp: stop\n  pool:", 1))
        lab = start_lab(seg, inventory, tmp_path / "state")  # no rival yet: the preflight passes
        start_dnsmasq(seg, tmp_path, "--no-ping")
        # a client on the server's side of the wire: dnsmasq (client namespace) answers it, and its
        # OFFER crosses the segment to labkit's interface; labkit never hears this DISCOVER itself
        seg.server.call("dora", iface=seg.server_if, macs=["02:00:00:00:00:77"], broadcast=True, wait=10,
                        settle=0.5)
        rival = lab.wait_event(lambda e: e["result"] == "rival")
        assert rival["service"] == "dhcp" and rival["detail"]["server_id"] == RIVAL
        assert "stops answering" in rival["answer"] and rival["request"].startswith(("OFFER", "ACK"))
        # the inventory phone asks: labkit logs it, and does not answer
        answer = seg.client.call("dora", iface=seg.client_if, macs=[seg.client_mac], wait=3, settle=0.5)
        silenced = lab.wait_event(lambda e: e["result"] == "silenced")
        assert "not answered" in silenced["answer"] and RIVAL in silenced["answer"]
        assert not [r for r in answer["results"] if r.get("type") == "offer"], answer
        assert lab.stop() == 0, lab.text()
        assert "Traceback" not in lab.text()
    finally:
        seg.close()
