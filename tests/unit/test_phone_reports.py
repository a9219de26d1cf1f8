"""Report_Rule: the phone's uploads, parsed from its profile and sent to a small aiohttp server."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from aiohttp import web

from labkit.formats import aes128gcm, flat_profile, openssl_enc
from labkit.phone.effects import Fetch, FetchResult
from labkit.phone.http_client import HttpClient
from labkit.phone.network import NetworkMap
from labkit.phone.reports import Upload, parse_report_rule, report_flow, report_method

IDENTITY = {"MA": "00562b000001", "PN": "CP-8851-3PCC", "SN": "FCH0001", "SWVER": "sip88xx.12-0-1MPP-0001",
            "IP": "10.42.0.60"}
UA = "Cisco-CP-8851-3PCC/12.0.1 (00562b000001)"


def test_parse_rules() -> None:
    rules = parse_report_rule("[--delta]http://s/$MA-delta.xml [--status --key k]/status.xml "
                              "http://s/third.xml", IDENTITY, "prov.lab.example")
    assert [(r.url, r.kind, r.key) for r in rules] == [
        ("http://s/00562b000001-delta.xml", "delta", None),
        ("tftp://prov.lab.example/status.xml", "status", "k")]  # at most two; no scheme means TFTP
    assert parse_report_rule("[--uid u --pwd p]https://s/c.xml", IDENTITY)[0].uid == "u"
    assert report_method({}) == "POST" and report_method({"HTTP_Report_Method": "put"}) == "PUT"


class Store:
    """The upload side: what came, with which method and headers; 401 first when `auth` is set."""

    def __init__(self, auth: bool = False) -> None:
        self.auth = auth
        self.got: list[tuple[str, str, bytes, dict[str, str]]] = []

    async def handle(self, request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(b"u:p").decode()
        if self.auth and request.headers.get("Authorization") != expected:
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="reports"'})
        self.got.append((request.method, request.path, await request.read(), dict(request.headers)))
        return web.Response(status=201 if request.method == "PUT" else 200)


Sent = tuple[list[Upload], list[Fetch]]


def _upload(params: dict[str, str], store: Store, ikm: bytes | None = None) -> Sent:
    async def go() -> tuple[list[Upload], list[Fetch]]:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", store.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        client = HttpClient(NetworkMap(frozenset({"10.42.0.1"}), "127.0.0.1", port - 80), None)
        fetches: list[Fetch] = []
        flow = report_flow(params, IDENTITY, server="10.42.0.1", user_agent=UA, ikm=ikm)
        reply: Any = None
        try:
            while True:
                fetch = flow.send(reply)
                fetches.append(fetch)
                reply = await client.fetch(fetch, "10.42.0.1")
        except StopIteration as stop:
            return stop.value, fetches
        finally:
            await runner.cleanup()

    return asyncio.run(go())


def test_full_configuration_posted_by_default() -> None:
    store = Store()
    params = {"Report_Rule": "http://10.42.0.1/reports/$MA.xml", "Display_Name_1_": "Lab"}
    uploads, _ = _upload(params, store)
    assert [u.ok for u in uploads] == [True]
    method, path, body, headers = store.got[0]
    assert (method, path) == ("POST", "/reports/00562b000001.xml")
    assert flat_profile.parse(body)["Display_Name_1_"].value == "Lab"
    assert headers["User-Agent"] == UA and headers["Content-Type"] == "application/xml"
    assert uploads[0].detail == (f"POST config report ({len(body)} bytes, plain) to "
                                 "http://10.42.0.1/reports/00562b000001.xml: HTTP 200")


def test_put_status_and_delta_two_rules() -> None:
    store = Store()
    params = {"Report_Rule": "[--status]http://10.42.0.1/s.xml [--delta]http://10.42.0.1/d.xml",
              "HTTP_Report_Method": "PUT", "A": "1"}
    uploads, _ = _upload(params, store)
    assert [(u.status, u.rule.kind) for u in uploads] == [(201, "status"), (201, "delta")]
    status = flat_profile.parse(store.got[0][2])
    assert status["MAC_Address"].value == "00562b000001" and status["Current_IP"].value == "10.42.0.60"
    assert set(flat_profile.parse(store.got[1][2])) == {"A", "HTTP_Report_Method", "Report_Rule"}


def test_key_encrypts_aes_cbc_and_ikm_gives_aes128gcm() -> None:
    store = Store()
    keyed = {"Report_Rule": "[--key s3cret]http://10.42.0.1/c.enc", "X": "y"}
    uploads, _ = _upload(keyed, store, ikm=b"k" * 16)
    assert uploads[0].encoding == "aes-256-cbc"  # --key wins over the IKM
    assert flat_profile.parse(openssl_enc.decrypt(store.got[0][2], "s3cret"))["X"].value == "y"
    uploads, _ = _upload({"Report_Rule": "http://10.42.0.1/c.xml", "X": "y"}, store, ikm=b"k" * 16)
    _, _, body, headers = store.got[1]
    assert uploads[0].encoding == "aes128gcm" and headers["Content-Encoding"] == "aes128gcm"
    assert flat_profile.parse(aes128gcm.decrypt(body, b"k" * 16))["X"].value == "y"


@pytest.mark.parametrize("rule, statuses", [("[--uid u --pwd p]http://10.42.0.1/c.xml", [200]),
                                            ("http://10.42.0.1/c.xml", [401])])
def test_401_answered_with_the_rule_credentials(rule: str, statuses: list[int]) -> None:
    store = Store(auth=True)
    uploads, fetches = _upload({"Report_Rule": rule}, store)
    assert [u.status for u in uploads] == statuses
    assert (fetches[0].uid, len(fetches)) == ((None, 2) if statuses == [200] else (None, 1))


def test_tftp_rule_is_skipped_with_a_reason_and_proxy_applies() -> None:
    flow = report_flow({"Report_Rule": "tftp://10.42.0.1/r.xml [--status]http://10.42.0.1/s.xml",
                        "Proxy_Mode": "Manual", "Proxy_Host": "proxy.lab.example"}, IDENTITY)
    fetch = next(flow)
    assert fetch.url == "http://10.42.0.1/s.xml" and fetch.proxy == "http://proxy.lab.example:3128"
    with pytest.raises(StopIteration) as stop:
        flow.send(FetchResult(None, error="HTTP: proxy proxy.lab.example:3128: connection refused"))
    uploads = stop.value.value
    assert uploads[0].error == "TFTP reports are not simulated" and not uploads[1].ok
    assert uploads[1].detail.endswith("s.xml: HTTP: proxy proxy.lab.example:3128: connection refused")
