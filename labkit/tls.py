"""The lab CA and the HTTPS server certificate, kept in the state folder.

The CA is made once and reused, so clients that trust it (`labkit ca`, `curl --cacert`) keep
trusting it across restarts. The server certificate is reissued whenever the names it must
carry change. RSA 2048 for both: the widest support among phone TLS stacks.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DIR = "ca"
CA_CERT = "ca.pem"
CA_KEY = "ca.key"
SERVER_CERT = "server.pem"
SERVER_KEY = "server.key"
SERVER_NAMES = "server.names.json"


@dataclass(frozen=True)
class ServerCredentials:
    cert_path: Path
    key_path: Path
    ca_path: Path | None  # None when the inventory brought its own certificate


def ca_path(state_dir: Path) -> Path:
    return state_dir / CA_DIR / CA_CERT


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write_private(path: Path, data: bytes) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(data)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def ensure_ca(state_dir: Path, lab_name: str) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """Load the lab CA from the state folder, creating it on first use."""
    folder = state_dir / CA_DIR
    cert_file, key_file = folder / CA_CERT, folder / CA_KEY
    if cert_file.is_file() and key_file.is_file():
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        if isinstance(key, rsa.RSAPrivateKey):
            return cert, key
    folder.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "labkit"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"labkit {lab_name} lab CA"),
    ])
    now = _now()
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(key_file, _key_pem(key))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def ensure_server_certificate(state_dir: Path, lab_name: str, names: Sequence[str],
                              addresses: Iterable[str]) -> ServerCredentials:
    """A server certificate from the lab CA for `names` and `addresses`, reissued on change."""
    return ensure_named_certificate(state_dir, lab_name, "server", names, addresses)


def ensure_cloud_certificate(state_dir: Path, lab_name: str, names: Sequence[str]) -> ServerCredentials:
    """A certificate from the lab CA for the emulated cloud's names (`cloud: {mode: emulate}`),
    presented when a client asks for one of them by SNI; kept beside the server's."""
    return ensure_named_certificate(state_dir, lab_name, "cloud", names, ())


def ensure_named_certificate(state_dir: Path, lab_name: str, stem: str, names: Sequence[str],
                             addresses: Iterable[str]) -> ServerCredentials:
    """A leaf certificate from the lab CA kept as `<stem>.pem`/`<stem>.key` in the CA folder,
    for `names` (the first is the CN) and `addresses`, reissued when they change."""
    folder = state_dir / CA_DIR
    ca_cert, ca_key = ensure_ca(state_dir, lab_name)
    # names keep their order: the first is the CN, the name phones look up (reference §5)
    wanted = {"names": list(dict.fromkeys(names)), "addresses": sorted(set(addresses)),
              "ca": ca_cert.fingerprint(hashes.SHA256()).hex()}
    names_file = folder / f"{stem}.names.json"
    cert_file, key_file = folder / f"{stem}.pem", folder / f"{stem}.key"
    if cert_file.is_file() and key_file.is_file() and names_file.is_file():
        try:
            if json.loads(names_file.read_text()) == wanted:
                return ServerCredentials(cert_file, key_file, folder / CA_CERT)
        except ValueError:
            pass  # an unreadable record: reissue
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in wanted["names"]]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in wanted["addresses"]]
    first = wanted["names"][0] if wanted["names"] else "labkit"
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, first)]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(key_file, _key_pem(key))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    names_file.write_text(json.dumps(wanted))
    return ServerCredentials(cert_file, key_file, folder / CA_CERT)


def server_ssl_context(credentials: ServerCredentials, *, keylog: Path | None = None) -> ssl.SSLContext:
    """The context every TLS server of the kit uses. `keylog`: append the session keys of every
    connection to this file in the NSS key log format (`labkit up --tls-keylog`), so Wireshark
    and tshark decrypt a capture (`-o tls.keylog_file:FILE`); the file is readable by its
    owner only, as the keys decrypt everything."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(credentials.cert_path), str(credentials.key_path))
    if keylog is not None:
        context.keylog_filename = str(prepare_keylog(keylog))
    return context


def prepare_keylog(path: Path) -> Path:
    """Create the key log file (and its folder) readable by its owner only; OSError if it cannot be."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)  # EISDIR on a folder
    try:
        os.fchmod(descriptor, 0o600)
    finally:
        os.close(descriptor)
    return path
