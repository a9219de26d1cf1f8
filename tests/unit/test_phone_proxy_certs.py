"""proxy_for from the documented HTTP Proxy Settings; RFC 6125 name matching; the core's call site."""

from __future__ import annotations

import pytest

from labkit.phone.certs import address_problem, domain_problem, lookup_name, name_matches
from labkit.phone.effects import Fetch
from labkit.phone.proxy import ProxySettings, proxy_for, with_wire

MANUAL = {"Proxy_Mode": "Manual", "Proxy_Host": "proxy.lab.example"}


@pytest.mark.parametrize("params, url, expected", [
    ({}, "http://a/x", None),  # Proxy_Mode default Off
    ({"Proxy_Mode": "Off", "Proxy_Host": "p"}, "http://a/x", None),
    ({"Proxy_Mode": "Auto", "PAC_URL": "http://p/pac"}, "http://a/x", None),  # PAC not simulated
    (MANUAL, "http://a/x", ProxySettings("proxy.lab.example", 3128)),  # documented default port
    (MANUAL, "tftp://a/x", None),  # HTTP applications only
    ({**MANUAL, "Proxy_Port": "8080"}, "https://a/x", ProxySettings("proxy.lab.example", 8080)),
    ({"Proxy_Mode": "manual", "Proxy_Host": "http://10.0.0.9:8000/"}, "http://a",
     ProxySettings("10.0.0.9", 8000)),
    ({**MANUAL, "Proxy_Username": "u", "Proxy_Password": "p"}, "http://a",
     ProxySettings("proxy.lab.example")),  # credentials only when the proxy requires authentication
    ({**MANUAL, "Proxy_Server_Requires_Authentication": "Yes", "Proxy_Username": "u", "Proxy_Password": "p"},
     "http://a", ProxySettings("proxy.lab.example", 3128, "u", "p")),
    ({"Proxy_Mode": "Manual", "Proxy_Host": ""}, "http://a", None),
])
def test_proxy_for(params: dict[str, str], url: str, expected: ProxySettings | None) -> None:
    assert proxy_for(params, url) == expected


def test_with_wire_fills_the_fetch() -> None:
    params = {**MANUAL, "Proxy_Server_Requires_Authentication": "Yes", "Proxy_Username": "u",
              "Proxy_Password": "p"}
    fetch = with_wire(Fetch("https://prov/x"), params, cert_domain="lab.example")
    assert (fetch.proxy, fetch.proxy_uid, fetch.proxy_pwd) == ("http://proxy.lab.example:3128", "u", "p")
    assert fetch.cert_domain == "lab.example" and fetch.check_cert_address
    off = with_wire(Fetch("https://prov/x"), {}, cert_domain="lab.example", check_names=False)
    assert off.proxy is None and off.cert_domain is None and not off.check_cert_address


@pytest.mark.parametrize("presented, reference, ok", [
    ("lab.example", "lab.example", True),
    ("LAB.Example.", "lab.example", True),
    ("*.lab.example", "a.lab.example", True),
    ("*.lab.example", "lab.example", False),
    ("*.lab.example", "a.b.lab.example", False),
    ("*.example", "lab.example", False),
    ("w*.lab.example", "www.lab.example", False),
    ("a.*.example", "a.b.example", False),
    ("prov.lab.example", "lab.example", False),
])
def test_name_matches(presented: str, reference: str, ok: bool) -> None:
    assert name_matches(presented, reference) is ok


def test_problems_read_well() -> None:
    assert domain_problem(["lab.example"], "lab.example") is None
    assert domain_problem([], "lab.example") == ("TLS: certificate names no DNS name, not the DHCP domain "
                                                 "lab.example (SRV provisioning)")
    assert lookup_name(["*.lab.example", "prov.lab.example"]) == "prov.lab.example"
    assert address_problem("10.42.0.1", (), "10.42.0.1") is None
    assert address_problem("prov", (), "10.42.0.1", "NXDOMAIN") == ("TLS: certificate name prov resolves to "
                                                                    "NXDOMAIN, not 10.42.0.1")
