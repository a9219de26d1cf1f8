"""The lab's forward proxy with the virtual phone: 407 answered, CONNECT for HTTPS, failures, bounds."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from labkit.events import EventRecorder
from labkit.inventory.load import load
from labkit.plan.build import build_plan
from labkit.services.supervisor import free_port_offset, start_lab
from tests.e2e.test_phone_against_lab import HEAD, PHONES, run_lab

PROXY_PARAMS = """\
profiles:
  params:
    Proxy_Mode: Manual
    Proxy_Host: prov.lab.example
    Proxy_Server_Requires_Authentication: "Yes"
    Proxy_Username: pu
    Proxy_Password: pp
"""


def _proxy_events(recorder: EventRecorder) -> list[tuple[str, str, str]]:
    return [(e.action, e.request, e.answer) for e in recorder.events if e.service == "proxy"]


@pytest.mark.parametrize("scheme", ["basic", "digest"])
def test_phone_answers_407_and_provisions_through_the_proxy(tmp_path: Path, scheme: str) -> None:
    outcome, fetches, recorder = run_lab(tmp_path, HEAD + PHONES + PROXY_PARAMS + f"""\
dhcp: {{options: {{provisioning_url: "http://prov.lab.example"}}}}
services: {{proxy: {{enabled: true, mode: auth, scheme: {scheme}, user: pu, password: pp}}}}
""")
    assert outcome.provisioned, outcome
    proxied = _proxy_events(recorder)
    profile = "http://prov.lab.example/Cisco/CP-8851-3PCC/00562b000001.cfg"
    assert proxied[0] == ("get", profile, "407 proxy credentials asked")
    assert proxied[1][:2] == ("get", profile) and proxied[1][2].startswith("HTTP/1.1 200 OK via 127.0.0.1:")
    assert any(".loads" in request and answer.startswith("HTTP/1.1 200") for _, request, answer in proxied)
    assert fetches[1][0].proxy == "http://prov.lab.example:3128" and fetches[1][0].proxy_uid == "pu"
    # the origin saw no proxy credentials, only the phone's own request
    http = [e for e in recorder.events if e.service == "http" and e.request == profile.split(".example")[1]]
    assert http and all(e.phone == "00:56:2b:00:00:01" for e in http)


def test_https_goes_through_connect(tmp_path: Path) -> None:
    outcome, _, recorder = run_lab(tmp_path, HEAD + PHONES + PROXY_PARAMS + """\
  scheme: https
dhcp: {options: {provisioning_url: "https://prov.lab.example"}}
services: {proxy: {enabled: true, mode: auth, user: pu, password: pp}}
""")
    assert outcome.provisioned, outcome
    proxied = _proxy_events(recorder)
    assert ("connect", "prov.lab.example:443", "407 proxy credentials asked") in proxied
    assert any(a == "connect" and answer.startswith("200 tunnel to 127.0.0.1:") for a, _, answer in proxied)


@pytest.mark.parametrize("failure, error", [("502", "C: HTTP 502"),
                                            ("close", "C: HTTP: malformed response: connection closed")])
def test_failing_proxy_is_category_c(tmp_path: Path, failure: str, error: str) -> None:
    outcome, _, recorder = run_lab(tmp_path, HEAD + PHONES + PROXY_PARAMS + f"""\
dhcp: {{options: {{provisioning_url: "http://prov.lab.example"}}}}
services: {{proxy: {{enabled: true, mode: fail, failure: "{failure}"}}}}
""", rounds=1)
    assert not outcome.provisioned
    assert outcome.last_error is not None and outcome.last_error.startswith(error)
    assert all(e.result == "fault" for e in recorder.events if e.service == "proxy")


def test_proxy_refuses_non_lab_hosts_and_bounds_connections(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text(HEAD + PHONES + "services: {proxy: {enabled: true, connections: 2}}\n")
    plan = build_plan(load(tmp_path / "lab.yaml"))
    recorder = EventRecorder()

    async def main() -> list[bytes]:
        offset = free_port_offset()
        lab = await start_lab(plan, port_offset=offset, state_dir=tmp_path / "state", sinks=[recorder])
        try:
            port = lab.endpoints["proxy"].port
            assert port == 3128 + offset  # the loopback port moves with the others
            answers = []
            for request in (b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
                            b"GET /origin-form HTTP/1.1\r\nHost: x\r\n\r\n", b"NOT HTTP\r\n\r\n"):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(request)
                answers.append(await asyncio.wait_for(reader.read(), 30))
                writer.close()
            held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
            await asyncio.sleep(0)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            answers.append(await asyncio.wait_for(reader.read(), 30))  # closed at once
            for _, w in [*held, (reader, writer)]:
                w.close()
            return answers
        finally:
            await lab.close()

    answers = asyncio.run(main())
    assert answers[0].startswith(b"HTTP/1.1 502 ") and b"not a lab name" in answers[0]
    assert answers[1].startswith(b"HTTP/1.1 400 ") and answers[2].startswith(b"HTTP/1.1 400 ")
    assert answers[3] == b""
    assert any(e.result == "refused" for e in recorder.events if e.service == "proxy")
