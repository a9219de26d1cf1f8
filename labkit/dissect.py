"""How Wireshark and tshark dissect a capture of a lab that runs on non-standard ports.

Wireshark picks a dissector by port: DNS on 53, TFTP on 69, DHCP on 67/68 and so on. A lab on
`--loopback` (ports + 10000) or `--port-offset` shows up as bare UDP and TCP. `Dissection` says
which ports carry what, in the two forms the tools read:

- tshark's (and Wireshark's) command-line arguments `-d udp.port==10053,dns ...`, plus
  `-o tls.keylog_file:FILE` when `labkit up --tls-keylog FILE` logs the TLS session keys;
- a Wireshark profile's `decode_as_entries` file (Analyze > Decode As..., saved).

Both are written next to the capture (`FILE.decode-as.txt`, `FILE.decode_as_entries`, or
`decode-as.txt` / `decode_as_entries` in a `--pcap-per-phone` folder) and printed in the banner.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Dissector:
    """One service as Wireshark knows it: transports, standard port, tshark's name for the
    dissector (`-d`) and Wireshark's (a `decode_as_entries` line)."""

    transports: tuple[str, ...]
    port: int
    tshark: str
    wireshark: str


DISSECTORS: dict[str, Dissector] = {
    "dhcp": Dissector(("udp",), 67, "dhcp", "DHCP/BOOTP"),  # Wireshark's short names
    "dns": Dissector(("udp", "tcp"), 53, "dns", "DNS"),
    "tftp": Dissector(("udp",), 69, "tftp", "TFTP"),
    "http": Dissector(("tcp",), 80, "http", "HTTP"),
    "https": Dissector(("tcp",), 443, "tls", "TLS"),
    "syslog": Dissector(("udp",), 514, "syslog", "Syslog"),
    "proxy": Dissector(("tcp",), 3128, "http", "HTTP"),
    # the TR-069 ACS: 7547 is no dissector's default port in Wireshark (port 0: always a rule);
    # CWMP is HTTP carrying SOAP, which Wireshark's HTTP dissector hands to its CWMP one
    "acs": Dissector(("tcp",), 0, "http", "HTTP"),
    "acs_https": Dissector(("tcp",), 0, "tls", "TLS"),  # `acs.https: true`
}
HTTP_IN_TLS = Dissector(("tls",), 443, "http", "HTTP")  # what TLS carries, by the server's port
DHCP_CLIENT_PORT = 68


@dataclass(frozen=True)
class DecodeAs:
    """One "decode as" rule: packets whose `table` field (e.g. `udp.port`) is `port` are
    `dissector.tshark`."""

    table: str
    port: int
    dissector: Dissector

    @property
    def argument(self) -> str:
        """tshark's `-d` argument."""
        return f"{self.table}=={self.port},{self.dissector.tshark}"

    @property
    def entry(self) -> str:
        """The line Wireshark saves in a profile's `decode_as_entries`."""
        return f"decode_as_entry: {self.table},{self.port},(none),{self.dissector.wireshark}"


def decode_as(ports: Mapping[str, int]) -> tuple[DecodeAs, ...]:
    """The rules a capture of services at `ports` (service -> port) needs: none for a service
    on its standard port. DHCP also needs its client port (the server's + 1), HTTPS also the
    HTTP it carries."""
    rules: list[DecodeAs] = []
    for service, port in ports.items():
        dissector = DISSECTORS.get(service)
        if dissector is None or port == dissector.port:
            continue
        rules += [DecodeAs(f"{transport}.port", port, dissector) for transport in dissector.transports]
        if service == "dhcp":
            rules.append(DecodeAs("udp.port", port + 1, dissector))
        if service in ("https", "acs_https"):
            rules.append(DecodeAs("tls.port", port, HTTP_IN_TLS))
    return tuple(rules)


@dataclass(frozen=True)
class Dissection:
    """What a capture's reader needs: the decode-as rules and where the TLS keys are logged."""

    rules: tuple[DecodeAs, ...] = ()
    keylog: Path | None = None

    @classmethod
    def for_ports(cls, ports: Mapping[str, int], keylog: Path | None = None) -> Dissection:
        return cls(decode_as(ports), keylog.resolve() if keylog is not None else None)

    @property
    def needed(self) -> bool:
        return bool(self.rules) or self.keylog is not None

    def arguments(self) -> list[str]:
        """tshark's (and Wireshark's) command-line arguments."""
        out = [a for rule in self.rules for a in ("-d", rule.argument)]
        if self.keylog is not None:
            out += ["-o", f"tls.keylog_file:{self.keylog}"]
        return out

    def command(self, pcap: Path | str) -> str:
        """A tshark command line that reads `pcap` dissected."""
        return shlex.join(["tshark", "-r", str(pcap), *self.arguments()])

    def arguments_text(self, pcap: str) -> str:
        """The `decode-as.txt` file: comments, then one argument pair a line."""
        args = self.arguments()
        pairs = [shlex.join(args[i:i + 2]) for i in range(0, len(args), 2)]
        return "\n".join([
            "# labkit: how tshark and Wireshark dissect this capture (the lab ran on non-standard",
            "# ports). Every line below that is not a comment is a pair of command-line arguments:",
            f"#   tshark -r {pcap} $(grep -v '^#' THIS_FILE)",
            f"#   wireshark -r {pcap} $(grep -v '^#' THIS_FILE)",
            *pairs, ""])

    def entries_text(self) -> str:
        """A Wireshark profile's `decode_as_entries` file (copy it into the profile's folder)."""
        return "\n".join([
            "# \"Decode As\" entries written by labkit; copy into a Wireshark profile folder,",
            "# e.g. ~/.config/wireshark/profiles/labkit/decode_as_entries, and open with -C labkit",
            *(rule.entry for rule in self.rules), ""])

    def write_beside(self, pcap: Path | None, folder: Path | None) -> list[tuple[Path, Path]]:
        """Write the files next to `pcap` (FILE.decode-as.txt, FILE.decode_as_entries) and in
        `folder` (decode-as.txt, decode_as_entries); return (capture, arguments file) pairs,
        the capture of a folder shown as FOLDER/PHONE.pcap."""
        if not self.needed:
            return []
        places = [(pcap, pcap.name + ".")] if pcap is not None else []
        if folder is not None:
            places.append((folder / "PHONE.pcap", ""))
        written: list[tuple[Path, Path]] = []
        for capture, prefix in places:
            arguments = capture.with_name(f"{prefix}decode-as.txt")
            arguments.write_text(self.arguments_text(capture.name))
            written.append((capture, arguments))
            if self.rules:
                capture.with_name(f"{prefix}decode_as_entries").write_text(self.entries_text())
        return written
