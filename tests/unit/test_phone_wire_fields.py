"""The core's Fetch fields: the certificate domain under SRV, the switch, and the profile's proxy."""

from __future__ import annotations

from typing import Any

from labkit.phone.core import Phone, PhoneConfig
from labkit.phone.discovery import SrvTarget
from labkit.phone.drive import run_sync
from labkit.phone.effects import DhcpOffer, DhcpTransmit, DnsAnswer, Fetch, FetchResult, Lease, LookupSrv

MAC = "00:56:2b:00:00:01"
PROFILE = b"""<flat-profile>
<Proxy_Mode>Manual</Proxy_Mode><Proxy_Host>proxy.lab.example</Proxy_Host><Proxy_Port>8080</Proxy_Port>
<Proxy_Server_Requires_Authentication>Yes</Proxy_Server_Requires_Authentication>
<Proxy_Username>pu</Proxy_Username><Proxy_Password>pp</Proxy_Password>
<Profile_Rule>http://prov.lab.example/second.xml</Profile_Rule>
</flat-profile>"""


def _world(options: dict[int, Any], fetches: list[Fetch]) -> Any:
    def handle(effect: Any) -> Any:
        if isinstance(effect, DhcpTransmit):
            if effect.kind == "DISCOVER":
                return DhcpOffer("10.42.0.60", "10.42.0.1")
            return Lease("10.42.0.60", "10.42.0.1", options, 3600)
        if isinstance(effect, LookupSrv):
            if effect.name.startswith("_ciscoprov-https"):
                return DnsAnswer("NOERROR", (SrvTarget(10, 10, 443, "prov.lab.example."),))
            return DnsAnswer("NXDOMAIN")
        if isinstance(effect, Fetch):
            fetches.append(effect)
            return FetchResult(200, PROFILE if not fetches[1:] else b"<flat-profile/>")
        return None
    return handle


def test_srv_https_fetch_carries_the_dhcp_domain_then_the_profile_proxy() -> None:
    fetches: list[Fetch] = []
    outcome = run_sync(Phone(PhoneConfig(MAC, "CP-8851-3PCC")).run(), _world({15: "lab.example"}, fetches))
    assert outcome.provisioned, outcome
    first, second = fetches[0], fetches[1]
    assert first.url == "https://prov.lab.example:443/8851-3PCC.xml"
    assert first.cert_domain == "lab.example" and first.check_cert_address and first.proxy is None
    assert second.url == "http://prov.lab.example/second.xml" and second.cert_domain is None
    assert (second.proxy, second.proxy_uid, second.proxy_pwd) == ("http://proxy.lab.example:8080", "pu", "pp")


def test_dhcp_source_has_no_cert_domain_and_the_switch_turns_checks_off() -> None:
    fetches: list[Fetch] = []
    options = {15: "lab.example", 160: "https://prov.lab.example/x.xml"}
    run_sync(Phone(PhoneConfig(MAC, "CP-8851-3PCC")).run(), _world(options, fetches))
    assert fetches[0].cert_domain is None and fetches[0].check_cert_address
    fetches.clear()
    unchecked = PhoneConfig(MAC, "CP-8851-3PCC", check_cert_names=False)
    run_sync(Phone(unchecked).run(), _world({15: "lab.example"}, fetches))
    assert fetches[0].cert_domain is None and not fetches[0].check_cert_address
