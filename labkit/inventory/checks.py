"""Cross-checks across protocols: what pydantic cannot see field by field.

Errors stop the kit before anything starts; warnings are printed and the kit runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address
from typing import TYPE_CHECKING

from labkit.inventory import names
from labkit.inventory.acs import acs_problems
from labkit.inventory.folders import declared_folders, scan
from labkit.inventory.http_checks import http_problems
from labkit.inventory.model import Options
from labkit.inventory.runtime_checks import runtime_problems
from labkit.inventory.source import Path_, Problem

if TYPE_CHECKING:
    from labkit.inventory.load import LoadedInventory

MAX_LINKS_REPORTED = 10
PROVISIONING_CODES = {66: "tftp_server_name", 150: "tftp_servers", 159: "provisioning_server",
                      160: "provisioning_url"}


def cross_check(loaded: LoadedInventory) -> tuple[list[Problem], list[Problem]]:
    """Return (errors, warnings), each located at the field the user wrote."""
    checker = _Checker(loaded)
    checker.run()
    return checker.errors, checker.warnings


class _Checker:
    def __init__(self, loaded: LoadedInventory) -> None:
        self.loaded = loaded
        self.inv = loaded.inventory
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []

    def error(self, path: Path_, message: str, *, key: bool = False) -> None:
        self.errors.append(Problem(self.loaded.locate(path, key=key), _field(path), message))

    def warn(self, path: Path_, message: str, *, key: bool = False) -> None:
        self.warnings.append(
            Problem(self.loaded.locate(path, key=key), _field(path), message, severity="warning")
        )

    def run(self) -> None:
        self.check_network()
        self.check_phones()
        self.check_dns()
        self.check_tls()
        self.check_options()
        self.check_files()
        self.check_links()
        for path, message in runtime_problems(self.loaded):
            self.error(path, message)
        for path, message, severity in http_problems(self.loaded):
            (self.error if severity == "error" else self.warn)(path, message)
        for path, message, level in acs_problems(self.inv):
            (self.error if level == "error" else self.warn)(path, message)

    # -- addresses ---------------------------------------------------------------------------
    def check_network(self) -> None:
        lab = self.inv.lab
        net = lab.address.network
        if lab.address.ip in (net.network_address, net.broadcast_address) and net.prefixlen < 31:
            self.error(("lab", "address"), f"{lab.address.ip} is the network or broadcast address of {net}")
        pool = lab.pool
        if pool is not None:
            for end in ("start", "end"):
                if getattr(pool, end) not in net:
                    self.error(("lab", "pool", end), f"{getattr(pool, end)} is outside the lab subnet {net}")
            if lab.address.ip in pool:
                self.error(("lab", "pool"), f"the pool contains the kit's own address {lab.address.ip}")
        elif lab.answer == "any":
            self.error(("lab", "answer"), "`answer: any` needs a `pool` to hand addresses from")

    def check_phones(self) -> None:
        lab = self.inv.lab
        net = lab.address.network
        seen_mac: dict[str, int] = {}
        seen_ip: dict[IPv4Address, int] = {}
        for i, phone in enumerate(self.inv.phones):
            if phone.mac in seen_mac:
                self.error(("phones", i, "mac"), f"MAC {phone.mac} is also phones[{seen_mac[phone.mac]}]")
            else:
                seen_mac[phone.mac] = i
            if phone.model not in self.inv.models:
                known = ", ".join(self.inv.models) or "none defined"
                self.error(("phones", i, "model"), f"unknown model {phone.model!r}; models: {known}")
            if phone.ip is None:
                if lab.pool is None and lab.answer == "inventory" and self.inv.services.dhcp.enabled:
                    self.error(("phones", i), "the phone has no fixed `ip` and the lab has no `pool`")
                continue
            if phone.ip in seen_ip:
                self.error(("phones", i, "ip"), f"IP {phone.ip} is also phones[{seen_ip[phone.ip]}]")
            else:
                seen_ip[phone.ip] = i
            if phone.ip not in net:
                self.error(("phones", i, "ip"), f"fixed IP {phone.ip} is outside the lab subnet {net}")
            elif phone.ip in (net.network_address, net.broadcast_address) and net.prefixlen < 31:
                which = "network" if phone.ip == net.network_address else "broadcast"
                self.error(("phones", i, "ip"), f"fixed IP {phone.ip} is the {which} address of the "
                           f"lab subnet {net}; no host can use it")
            elif lab.pool is not None and phone.ip in lab.pool:
                self.error(("phones", i, "ip"),
                           f"fixed IP {phone.ip} is inside the dynamic pool "
                           f"{lab.pool.start}-{lab.pool.end}; it could be leased to another client")
            elif phone.ip in names.kit_addresses(self.inv):
                self.error(("phones", i, "ip"), f"fixed IP {phone.ip} is the kit's own address")

    # -- DNS ---------------------------------------------------------------------------------
    def check_dns(self) -> None:
        domain = self.inv.lab.domain
        for name in self.inv.dns.records:
            if not names.in_zone(names.fqdn(name, domain), domain):
                self.error(("dns", "records", name), f"{name} is outside the lab zone {domain}; "
                           "write it relative to the domain or inside it", key=True)
        records = names.address_records(self.inv)
        for i, srv in enumerate(self.inv.dns.srv):
            if srv.target not in records:
                where = "in the lab zone" if names.in_zone(srv.target, domain) else (
                    f"(it is outside the lab zone {domain}, which the kit cannot answer for)")
                self.error(("dns", "srv", i, "target"),
                           f"SRV target {srv.target} has no A record {where}; add it under dns.records")
        for i, name in enumerate(self.inv.dns.sinkhole.names):
            if names.in_zone(name, domain) or names.in_zone(domain, name):
                self.error(("dns", "sinkhole", "names", i),
                           f"sinkhole {name} overlaps the lab zone {domain}")

    def check_tls(self) -> None:
        required = [srv.target for srv in self.inv.dns.srv if "https" in srv.service]
        if any("https" in srv.service for srv in self.inv.dns.srv) and self.inv.tls.require_domain:
            # the phone validates SRV-found servers against the DHCP domain (reference §2)
            required.append(self.inv.lab.domain)
        if self.inv.tls.cert is not None:
            cert_names = self._certificate_names()
            if cert_names is None:
                return
            for name in dict.fromkeys(required):
                if not names.name_covered(name, cert_names):
                    self.error(("tls", "cert"), f"the certificate's names ({', '.join(cert_names)}) "
                               f"do not cover {name}, which phones will check")
        elif self.inv.tls.names is not None:
            for name in dict.fromkeys(required):
                if not names.name_covered(name, self.inv.tls.names):
                    self.error(("tls", "names"), f"{name} is missing: HTTPS phones reaching it "
                               "through SRV check the certificate for it")

    def _certificate_names(self) -> list[str] | None:
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        tls = self.inv.tls
        for what in ("cert", "key"):
            path = self.loaded.base_dir / getattr(tls, what)
            if not path.is_file():
                self.error(("tls", what), f"no such file: {path}")
                return None
        try:
            cert = x509.load_pem_x509_certificate((self.loaded.base_dir / str(tls.cert)).read_bytes())
        except ValueError as exc:
            self.error(("tls", "cert"), f"not a PEM certificate: {exc}")
            return None
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            return [str(n) for n in san.value.get_values_for_type(x509.DNSName)]
        except x509.ExtensionNotFound:
            return [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]

    # -- DHCP options ------------------------------------------------------------------------
    def _option_levels(self) -> Iterable[tuple[Path_, Options, list[int]]]:
        dhcp = self.inv.dhcp
        yield ("dhcp", "options"), dhcp.options, dhcp.force
        for i, cls in enumerate(dhcp.classes):
            yield ("dhcp", "classes", i, "options"), cls.options, cls.force
        for name, model in self.inv.models.items():
            yield ("models", name, "options"), model.options, model.force
        for i, phone in enumerate(self.inv.phones):
            yield ("phones", i, "options"), phone.options, phone.force

    def check_options(self) -> None:
        served_names = names.address_records(self.inv)
        kit = names.kit_addresses(self.inv)
        set_anywhere: set[int] = set()
        for path, options, _force in self._option_levels():
            typed = options.typed()
            set_anywhere.update(typed)
            for code, field_name in PROVISIONING_CODES.items():
                value = typed.get(code)
                if value is None or isinstance(value, bytes):
                    continue
                at = _option_path(self.loaded, path, code, field_name)
                if code == 150:
                    for address in value:
                        if address not in kit:
                            self.warn(at, f"option 150 names {address}, which is not an address of this kit")
                    continue
                for host in names.hosts_in_value(value):
                    self._check_host(at, code, host, served_names, kit)
        for path, _options, force in self._option_levels():
            for code in force:
                if code not in set_anywhere and code not in (1, 3, 6, 15, 51, 54, 58, 59):
                    self.warn((*path[:-1], "force"), f"option {code} is forced but set nowhere")

    def _check_host(self, at: Path_, code: int, host: str, served: dict[str, IPv4Address],
                    kit: set[IPv4Address]) -> None:
        if names.is_ip(host):
            if IPv4Address(host) not in kit:
                self.warn(at, f"option {code} points at {host}, which is not an address of this kit")
            return
        name = host.lower().rstrip(".")
        if name not in served:
            self.warn(at, f"option {code} points at {host}, which the lab's DNS does not resolve")
        elif served[name] not in kit:
            self.warn(at, f"option {code} points at {host} = {served[name]}, which is not this kit")

    # -- files -------------------------------------------------------------------------------
    def check_files(self) -> None:
        profiles = self.inv.profiles
        for what in ("template", "model_template"):
            name = getattr(profiles, what)
            if name is not None and not (self.loaded.templates_dir / name).is_file():
                self.error(("profiles", what),
                           f"template {name!r} not found in {self.loaded.templates_dir}")
        for name, model in self.inv.models.items():
            if model.firmware and not (self.loaded.firmware_dir / model.firmware).is_file():
                self.warn(("models", name, "firmware"),
                          f"firmware file {model.firmware} is not in {self.loaded.firmware_dir}/; "
                          "phones will fail their upgrade until it is")

    def check_links(self) -> None:
        """A link in a declared folder must not lead out of it (it would be served, unauthenticated)."""
        for path, written, folder in declared_folders(self.loaded):
            found = scan(folder)
            field = _field(path)
            for link in found.leaving[:MAX_LINKS_REPORTED]:
                self.error(path, f"{written}/{link.link.as_posix()} is a link to {link.target}, which is "
                           f"outside {written}/; labkit serves only files inside the folders the "
                           "inventory declares: copy the file in instead of linking it")
            if len(found.leaving) > MAX_LINKS_REPORTED:
                self.error(path, f"and {len(found.leaving) - MAX_LINKS_REPORTED} more links out of {field}")
            if found.truncated:
                self.warn(path, f"{folder} holds more entries than labkit checks for links; "
                          "only the first ones were checked")


def _option_path(loaded: LoadedInventory, path: Path_, code: int, field_name: str) -> Path_:
    for key in (field_name, code, str(code)):
        if (*path, key) in loaded.source.positions:
            return (*path, key)
    return path


def _field(path: Path_) -> str:
    from labkit.inventory.load import field_name

    return field_name(tuple(path))

