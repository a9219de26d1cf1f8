"""Decode-as notes for captures of a lab on other ports, and the TLS key log of the server context."""

from __future__ import annotations

import shlex
import ssl
import stat
from pathlib import Path

import pytest

from labkit.dissect import DecodeAs, Dissection, decode_as
from labkit.tls import ensure_server_certificate, prepare_keylog, server_ssl_context

STANDARD = {"syslog": 514, "dns": 53, "tftp": 69, "http": 80, "https": 443, "dhcp": 67}


def offset(ports: dict[str, int], by: int) -> dict[str, int]:
    return {name: port + by for name, port in ports.items()}


def test_standard_ports_need_no_rules_and_no_files(tmp_path: Path) -> None:
    dissection = Dissection.for_ports(STANDARD)
    assert dissection.rules == () and not dissection.needed
    assert dissection.write_beside(tmp_path / "lab.pcap", tmp_path / "phones") == []
    assert list(tmp_path.iterdir()) == []


def test_offset_ports_name_every_protocol_and_dhcp_s_client_port() -> None:
    arguments = [rule.argument for rule in decode_as(offset(STANDARD, 10000))]
    assert arguments == ["udp.port==10514,syslog", "udp.port==10053,dns", "tcp.port==10053,dns",
                         "udp.port==10069,tftp", "tcp.port==10080,http", "tcp.port==10443,tls",
                         "tls.port==10443,http", "udp.port==10067,dhcp", "udp.port==10068,dhcp"]


def test_only_the_moved_services_get_rules() -> None:
    rules = decode_as({**STANDARD, "tftp": 6969})
    assert [(r.table, r.port, r.dissector.tshark) for r in rules] == [("udp.port", 6969, "tftp")]


def test_wireshark_entries_use_wireshark_s_protocol_names() -> None:
    entries = [rule.entry for rule in decode_as(offset(STANDARD, 1))]
    assert "decode_as_entry: udp.port,68,(none),DHCP/BOOTP" in entries
    assert "decode_as_entry: udp.port,70,(none),TFTP" in entries
    assert "decode_as_entry: udp.port,515,(none),Syslog" in entries


def test_keylog_alone_is_worth_a_note_and_is_an_absolute_path(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    dissection = Dissection.for_ports(STANDARD, Path("keys.log"))
    assert dissection.needed
    assert dissection.arguments() == ["-o", f"tls.keylog_file:{tmp_path / 'keys.log'}"]
    [(capture, notes)] = dissection.write_beside(tmp_path / "lab.pcap", None)
    assert (capture, notes) == (tmp_path / "lab.pcap", tmp_path / "lab.pcap.decode-as.txt")
    assert not (tmp_path / "lab.pcap.decode_as_entries").exists()  # no decode-as rule to save


def test_files_beside_a_pcap_and_in_a_per_phone_folder(tmp_path: Path) -> None:
    dissection = Dissection.for_ports(offset(STANDARD, 20000))
    folder = tmp_path / "phones"
    folder.mkdir()
    written = dissection.write_beside(tmp_path / "lab.pcap", folder)
    assert written == [(tmp_path / "lab.pcap", tmp_path / "lab.pcap.decode-as.txt"),
                       (folder / "PHONE.pcap", folder / "decode-as.txt")]
    for _, notes in written:
        lines = [line for line in notes.read_text().splitlines() if not line.startswith("#")]
        assert [a for line in lines for a in shlex.split(line)] == dissection.arguments()
    entries = (folder / "decode_as_entries").read_text().splitlines()
    assert [e for e in entries if not e.startswith("#")] == [r.entry for r in dissection.rules]
    assert (tmp_path / "lab.pcap.decode_as_entries").read_text() == (folder / "decode_as_entries").read_text()


def test_command_quotes_what_the_shell_would_split(tmp_path: Path) -> None:
    dissection = Dissection((DecodeAs("udp.port", 10053, decode_as({"dns": 10053})[0].dissector),),
                            tmp_path / "my keys.log")
    command = dissection.command(tmp_path / "a lab.pcap")
    assert shlex.split(command) == ["tshark", "-r", str(tmp_path / "a lab.pcap"), "-d", "udp.port==10053,dns",
                                    "-o", f"tls.keylog_file:{tmp_path / 'my keys.log'}"]


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> None:
    """A TLS handshake and one request in memory (no socket), both sides pumped by hand."""
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    from_server, from_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    s = server.wrap_bio(to_server, from_server, server_side=True)
    c = client.wrap_bio(to_client, from_client, server_hostname="prov.lab.example")
    done = {"s": False, "c": False}
    for _ in range(10):  # a TLS 1.3 handshake takes two round trips
        for name, end in (("c", c), ("s", s)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        to_server.write(from_client.read())
        to_client.write(from_server.read())
        if all(done.values()):
            break
    assert all(done.values())
    c.write(b"GET / HTTP/1.1\r\n\r\n")
    to_server.write(from_client.read())
    assert s.read(100) == b"GET / HTTP/1.1\r\n\r\n"


def test_server_context_logs_session_keys_for_its_owner_only(tmp_path: Path) -> None:
    credentials = ensure_server_certificate(tmp_path / "state", "keys", ["prov.lab.example"], ["127.0.0.1"])
    keylog = tmp_path / "logs" / "tls-keys.log"
    server = server_ssl_context(credentials, keylog=keylog)
    client = ssl.create_default_context(cafile=str(credentials.ca_path))
    _handshake(server, client)
    _handshake(server, client)
    assert stat.S_IMODE(keylog.stat().st_mode) == 0o600
    labels = [line.split()[0] for line in keylog.read_text().splitlines() if not line.startswith("#")]
    # NSS key log format, TLS 1.3: five secrets per connection, each line LABEL CLIENT_RANDOM SECRET
    assert labels.count("CLIENT_TRAFFIC_SECRET_0") == 2 and labels.count("SERVER_TRAFFIC_SECRET_0") == 2
    assert all(len(line.split()) == 3 for line in keylog.read_text().splitlines() if not line.startswith("#"))


def test_server_context_logs_nothing_unless_asked(tmp_path: Path) -> None:
    credentials = ensure_server_certificate(tmp_path / "state", "keys", ["prov.lab.example"], ["127.0.0.1"])
    assert server_ssl_context(credentials).keylog_filename is None


def test_a_folder_is_no_key_log_and_keeps_its_mode(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o755)
    with pytest.raises(IsADirectoryError):
        prepare_keylog(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755


def test_an_existing_key_log_is_appended_to_and_made_private(tmp_path: Path) -> None:
    keylog = tmp_path / "keys.log"
    keylog.write_text("# earlier\n")
    keylog.chmod(0o644)
    prepare_keylog(keylog)
    assert keylog.read_text() == "# earlier\n" and stat.S_IMODE(keylog.stat().st_mode) == 0o600
