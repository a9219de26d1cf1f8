"""A capture of a lab on other ports dissects with the arguments labkit writes beside it, and an
HTTPS fetch decrypts with the keys `--tls-keylog` logged: tshark is the referee."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from tests.conftest import require_root, require_tool
from tests.interop.lab_process import LabProcess, start_lab_process

PHONE = "00:56:2b:00:03:3c"
PROFILE = "/Cisco/CP-8851-3PCC/00562b00033c.cfg"


def written_arguments(notes: Path) -> list[str]:
    """The arguments in a decode-as.txt, exactly as written (comments left out)."""
    lines = [line for line in notes.read_text().splitlines() if line and not line.startswith("#")]
    return [argument for line in lines for argument in shlex.split(line)]


def fields(tshark: str, pcap: Path, arguments: list[str], *names: str, where: str | None = None,
           env: dict[str, str] | None = None) -> list[list[str]]:
    """tshark's values of `names`, one row per packet that has any of them."""
    command = [tshark, "-r", str(pcap), *arguments, "-T", "fields", "-E", "occurrence=a",
               "-E", "aggregator=,"]
    command += [a for name in names for a in ("-e", name)]
    if where is not None:
        command += ["-Y", where]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    rows = [line.split("\t") for line in done.stdout.splitlines()]
    return [row for row in rows if any(row)]


def column(rows: list[list[str]], index: int) -> set[str]:
    return {value for row in rows for value in row[index].split(",") if value}


def boot_one_phone(lab: LabProcess) -> None:
    """One simulated phone: DHCP, syslog, DNS, TFTP and HTTP, a few dozen packets in all."""
    phone = subprocess.run([sys.executable, "-m", "labkit", "simulate", "--against", "127.0.0.1",
                            "--port-offset", str(lab.offset), "--state", str(lab.state), "--phone", PHONE,
                            "--json"],
                           capture_output=True, text=True, timeout=120)
    assert phone.returncode == 0, phone.stderr


def test_a_capture_on_other_ports_dissects_with_the_written_arguments(tmp_path: Path) -> None:
    tshark = require_tool("tshark")
    require_root("packet capture")
    pcap, per_phone = tmp_path / "lab.pcap", tmp_path / "phones"
    lab = start_lab_process(tmp_path, None, "--pcap", str(pcap), "--pcap-per-phone", str(per_phone))
    try:
        banner = "\n".join(lab.banner)
        boot_one_phone(lab)
    finally:
        code, output = lab.stop()
    assert code == 0, output
    notes = tmp_path / "lab.pcap.decode-as.txt"
    arguments = written_arguments(notes)
    assert f"udp.port=={lab.port('dns')},dns" in arguments
    assert f"tshark -r {pcap} {shlex.join(arguments)}" in banner  # the banner prints them too
    assert str(notes) in banner
    rows = fields(tshark, pcap, arguments, "dns.qry.name", "tftp.source_file", "tftp.opcode",
                  "dhcp.option.dhcp", "syslog.msg", "http.request.uri")
    assert "prov.lab.example" in column(rows, 0)
    assert "8851-3PCC.xml" in {name.lstrip("/") for name in column(rows, 1)}
    assert {"1", "3"} <= column(rows, 2)  # the read request, and the data the capture followed
    assert {"1", "2", "3", "5"} <= column(rows, 3)  # DISCOVER, OFFER, REQUEST, ACK
    assert any("Successful resync" in message for message in column(rows, 4))
    assert PROFILE in column(rows, 5)
    # without them DHCP is bare UDP (tshark guesses some TFTP and DNS by heuristics, never DHCP)
    assert fields(tshark, pcap, [], "dhcp.option.dhcp") == []

    # the phone's own capture, with the folder's notes
    phone_pcap = per_phone / "00562b00033c.pcap"
    rows = fields(tshark, phone_pcap, written_arguments(per_phone / "decode-as.txt"), "dhcp.option.dhcp")
    assert {"1", "2", "3", "5"} <= column(rows, 0)

    # Wireshark's form: the decode_as_entries file in a profile of a fresh configuration folder
    profile = tmp_path / "config" / "wireshark" / "profiles" / "labkit"
    profile.mkdir(parents=True)
    (profile / "decode_as_entries").write_text((tmp_path / "lab.pcap.decode_as_entries").read_text())
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    rows = fields(tshark, pcap, ["-C", "labkit"], "dns.qry.name", "tftp.source_file", "dhcp.option.dhcp",
                  env=env)
    assert "prov.lab.example" in column(rows, 0)
    assert "8851-3PCC.xml" in {name.lstrip("/") for name in column(rows, 1)}
    assert {"1", "2", "3", "5"} <= column(rows, 2)


def test_tls_keylog_lets_tshark_read_a_captured_https_fetch(tmp_path: Path) -> None:
    tshark, curl = require_tool("tshark"), require_tool("curl")
    require_root("packet capture")
    pcap, keylog = tmp_path / "lab.pcap", tmp_path / "tls-keys.log"
    lab = start_lab_process(tmp_path, None, "--pcap", str(pcap), "--tls-keylog", str(keylog))
    try:
        assert f"TLS session keys: {keylog}" in "\n".join(lab.banner)
        port = lab.port("https")
        fetched = subprocess.run([curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert",
                                  str(lab.state / "ca" / "ca.pem"), f"https://127.0.0.1:{port}{PROFILE}"],
                                 capture_output=True, text=True, timeout=60)
        assert fetched.stdout == "200", fetched.stderr
    finally:
        code, output = lab.stop()
    assert code == 0, output
    assert (keylog.stat().st_mode & 0o777) == 0o600
    command = [tshark, "-r", str(pcap), "-o", f"tls.keylog_file:{keylog}", "-d", f"tcp.port=={port},tls",
               "-Y", "http.request", "-T", "fields", "-e", "http.request.uri"]
    decrypted = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert decrypted.returncode == 0, decrypted.stderr
    assert PROFILE in decrypted.stdout.split()
    # the same with the arguments written beside the capture (they name the key log)
    arguments = written_arguments(tmp_path / "lab.pcap.decode-as.txt")
    assert f"tls.keylog_file:{keylog}" in arguments
    rows = fields(tshark, pcap, arguments, "http.request.uri", where="http.request")
    assert PROFILE in column(rows, 0)
    # and without the keys the request stays out of sight
    sealed = fields(tshark, pcap, ["-d", f"tcp.port=={port},tls"], "http.request.uri", where="http.request")
    assert sealed == []
