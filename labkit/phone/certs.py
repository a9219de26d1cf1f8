"""The virtual phone's checks of a server certificate's names (pure).

Two documented checks, each switched by a `Fetch` field:
- SRV provisioning: "all SRV records use a valid certificate containing the DHCP provided domain
  name" (reference §2): the certificate must name the DHCP-supplied domain (`Fetch.cert_domain`),
  matched as RFC 6125 §6.4 matches a reference identifier (exact, case-insensitive; a wildcard
  only as the whole left-most label, standing for exactly one label). This replaces the usual
  check against the URL's host, which for SRV is the target's name, not the domain [I].
- "the phone tests the server IP address against a DNS lookup of the server name in the
  certificate" (reference §5): `Fetch.check_cert_address`; the name looked up is the CN (the
  first name `certificate_names` gives), else the first DNS name without a wildcard [I].
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from ipaddress import ip_address
from typing import Any


def certificate_names(cert: Mapping[str, Any]) -> tuple[str, ...]:
    """CN first, then the DNS subjectAltNames, from `SSLSocket.getpeercert()`'s dictionary."""
    common = [value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"]
    dns = [value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"]
    return tuple(dict.fromkeys([*common, *dns]))


def certificate_addresses(cert: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(value for kind, value in cert.get("subjectAltName", ()) if kind == "IP Address")


def _labels(name: str) -> list[str]:
    return name.rstrip(".").lower().split(".")


def name_matches(presented: str, reference: str) -> bool:
    """RFC 6125 §6.4.3: does the certificate's DNS-ID `presented` match `reference`?"""
    got, want = _labels(presented), _labels(reference)
    if len(got) != len(want) or not all(got):
        return False
    if got[0] == "*":
        # a wildcard needs at least two labels after it (no `*.com`), and matches one label
        return len(got) >= 3 and got[1:] == want[1:] and bool(want[0])
    if "*" in presented:
        return False  # partial-label wildcards (`w*.example`) are not accepted here [I]
    return got == want


def domain_problem(names: Iterable[str], domain: str) -> str | None:
    """None when a name matches the DHCP domain, else the error the phone reports."""
    listed = tuple(names)
    if any(name_matches(name, domain) for name in listed):
        return None
    shown = ", ".join(listed) or "no DNS name"
    return f"TLS: certificate names {shown}, not the DHCP domain {domain} (SRV provisioning)"


def lookup_name(names: Iterable[str]) -> str | None:
    """The certificate name the phone looks up: the CN, else the first name without a wildcard."""
    for name in names:
        if "*" not in name:
            return name
    return None


def is_address(text: str) -> bool:
    try:
        ip_address(text)
    except ValueError:
        return False
    return True


def address_problem(name: str | None, resolved: Iterable[str], server: str, rcode: str = "") -> str | None:
    """None when a lookup of the certificate's `name` gave the `server` address, else the error."""
    if name is None:
        return "TLS: the certificate has no name to look up"
    if is_address(name):
        return None if name == server else f"TLS: certificate name {name} is not the server {server}"
    found = tuple(resolved)
    if server in found:
        return None
    return f"TLS: certificate name {name} resolves to {', '.join(found) or rcode or 'nothing'}, not {server}"
