"""The control API of a running lab: the Unix socket in the state folder, the admin HTTP port (its
token), the live event stream, /metrics, and `labkit status` against them."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from labkit.inventory.load import load
from labkit.plan.build import build_plan
from labkit.services.admin import AdminSettings, NoLab, ask, control_socket
from labkit.services.running import run_lab
from labkit.services.supervisor import STANDARD_PORTS, RunningLab, StartError, free_port_offset
from tests.helpers import assert_one_line_error, event, labkit

PLAN = build_plan(load(None))
MAC = next(iter(PLAN.phones))


def run(tmp_path: Path, check: Callable[[RunningLab, str], Awaitable[None]],
        admin: AdminSettings | None = None) -> None:
    """Start the default lab with the admin port on a free offset, run `check(lab, base_url)`."""

    async def main() -> None:
        async with run_lab(PLAN, port_offset=free_port_offset(), state_dir=tmp_path / "state",
                           admin=admin or AdminSettings()) as lab:
            assert lab.admin is not None
            await check(lab, f"http://{lab.admin.host}:{lab.admin.port}")

    asyncio.run(main())


async def _get(url: str, **kwargs: Any) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url, **kwargs) as response:
        return response.status, await response.text()


def test_the_control_socket_answers_labkit_status_and_goes_away_with_the_lab(tmp_path: Path) -> None:
    state = tmp_path / "state"

    async def check(lab: RunningLab, base: str) -> None:
        assert lab.control_socket == control_socket(state)
        assert control_socket(state).stat().st_mode & 0o077 == 0  # this user's only
        http = f"http://127.0.0.1:{lab.endpoints['http'].port}"
        assert (await _get(http + "/no-such-file.xml"))[0] == 404
        snapshot = await asyncio.to_thread(ask, state)
        assert snapshot["lab"]["name"] == PLAN.inventory.lab.name
        assert len(snapshot["phones"]) == snapshot["stages"]["waiting"] == len(PLAN.phones)
        assert snapshot["services"]["http"]["errors_by_reason"] == {"not-found": 1}
        assert snapshot["admin"] == base + "/"
        printed = await asyncio.to_thread(labkit, "status", "--state", str(state), "--json")
        assert printed.returncode == 0, printed.stderr
        assert json.loads(printed.stdout)["services"]["http"]["errors"] == 1
        human = await asyncio.to_thread(labkit, "status", "--state", str(state))
        assert "waiting" in human.stdout and "http" in human.stdout, human.stdout

    run(tmp_path, check)
    assert not control_socket(state).exists()
    with pytest.raises(NoLab, match="no lab runs with state folder"):
        ask(state)


def test_labkit_status_without_a_lab_is_one_clear_line(tmp_path: Path) -> None:
    assert_one_line_error(labkit("status", "--state", str(tmp_path)), says="no lab runs with state folder")
    # a socket left by a lab that was killed: still no lab, said so
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(control_socket(tmp_path)))
    assert_one_line_error(labkit("status", "--state", str(tmp_path)), says="left from a lab that stopped")


def test_a_stale_socket_is_reclaimed_but_a_running_lab_is_not_shared(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(control_socket(state)))

    async def check(lab: RunningLab, base: str) -> None:
        assert (await asyncio.to_thread(ask, state))["events"] >= 0
        with pytest.raises(StartError, match="another lab already runs with this state folder"):
            async with run_lab(PLAN, port_offset=free_port_offset(), state_dir=state, admin=AdminSettings()):
                raise AssertionError("a second lab must not take the first one's state folder")
        assert (await asyncio.to_thread(ask, state))["events"] >= 0  # the first lab still answers

    run(tmp_path, check)


def test_metrics_and_the_phone_timeline_on_the_admin_port(tmp_path: Path) -> None:
    async def check(lab: RunningLab, base: str) -> None:
        lab.bus(event(1.0, "dhcp", action="discover", request="DISCOVER", answer="OFFER", phone=MAC))
        lab.bus(event(1.5, "http", "fault", action="fault", request="/x", answer="status=503", phone=MAC,
                      rule="flaky"))
        status, text = await _get(base + "/metrics")
        assert status == 200
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for family in text_string_to_metric_families(text) for s in family.samples}
        assert samples[("labkit_requests_total", (("service", "dhcp"), ("type", "discover")))] == 1
        assert samples[("labkit_faults_fired_total", (("rule", "flaky"),))] == 1
        assert samples[("labkit_phones", (("stage", "dhcp"),))] == 1
        status, body = await _get(f"{base}/api/phones/{MAC.upper()}")
        assert status == 200
        timeline = json.loads(body)
        assert timeline["phone"]["state"] == "dhcp" and timeline["phone"]["faults"] == {"flaky": 1}
        assert [e["action"] for e in timeline["events"]] == ["discover", "fault"]
        assert timeline["events"][1]["rule"] == "flaky"
        assert (await _get(f"{base}/api/phones/not-a-mac"))[0] == 400
        assert (await _get(f"{base}/api/phones/00:11:22:33:44:55"))[0] == 404
        status, page = await _get(base + "/")
        assert status == 200 and "/dashboard.js" in page and "<table id=\"phones\">" in page

    run(tmp_path, check)


async def _stream(url: str) -> AsyncIterator[tuple[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        kind = ""
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                yield kind, json.loads(line[6:])


def test_the_event_stream_sends_a_snapshot_then_each_change(tmp_path: Path) -> None:
    async def check(lab: RunningLab, base: str) -> None:
        messages = _stream(base + "/api/events")
        kind, first = await asyncio.wait_for(anext(messages), 30)
        assert kind == "snapshot" and first["stages"]["waiting"] == len(PLAN.phones)
        lab.bus(event(2.0, "dhcp", action="request", request="REQUEST", answer="ACK 10.42.0.99", phone=MAC,
                      ip="10.42.0.99"))
        for _ in range(10):  # a "counters" message may come first
            kind, data = await asyncio.wait_for(anext(messages), 30)
            if kind == "phone":
                break
        assert kind == "phone" and data["mac"] == MAC and data["state"] == "profile"
        assert data["address"] == "10.42.0.99"
        await messages.aclose()

    run(tmp_path, check)


def test_a_token_guards_the_admin_port_but_not_the_control_socket(tmp_path: Path) -> None:
    state = tmp_path / "state"

    async def check(lab: RunningLab, base: str) -> None:
        assert (await _get(base + "/api/status"))[0] == 401
        assert (await _get(base + "/metrics", headers={"Authorization": "Bearer wrong"}))[0] == 401
        assert (await _get(base + "/metrics", headers={"Authorization": "Bearer s3cret"}))[0] == 200
        basic = base64.b64encode(b"anyone:s3cret").decode()
        assert (await _get(base + "/api/status", headers={"Authorization": f"Basic {basic}"}))[0] == 200
        assert (await _get(base + "/?token=s3cret"))[0] == 200
        assert (await asyncio.to_thread(ask, state))["phones"]

    run(tmp_path, check, AdminSettings(token="s3cret"))


def test_the_admin_port_off_loopback_needs_a_token(tmp_path: Path) -> None:
    async def main() -> None:
        async with run_lab(PLAN, port_offset=free_port_offset(), state_dir=tmp_path / "state",
                           admin=AdminSettings(host="192.0.2.1")):
            raise AssertionError("must not start")

    with pytest.raises(StartError, match="off loopback: it needs a token"):
        asyncio.run(main())
    assert not control_socket(tmp_path / "state").exists()


def test_the_admin_option_reads_host_port_off_and_makes_a_token_off_loopback() -> None:
    from labkit.cli.serve import admin_option

    assert admin_option("127.0.0.1", None) == AdminSettings(True, "127.0.0.1", None, None)
    assert admin_option(":9000", None).port == 9000
    assert admin_option("off", None).enabled is False
    away = admin_option("0.0.0.0:9000", None)
    assert away.host == "0.0.0.0" and away.port == 9000 and away.token and len(away.token) >= 20
    assert admin_option("0.0.0.0", "mine").token == "mine"


def test_a_busy_admin_port_stops_the_start_and_says_how_to_move_it(tmp_path: Path) -> None:
    offset = free_port_offset()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", STANDARD_PORTS["admin"] + offset))
        blocker.listen()

        async def main() -> None:
            async with run_lab(PLAN, port_offset=offset, state_dir=tmp_path / "state", admin=AdminSettings()):
                raise AssertionError("must not start")

        with pytest.raises(StartError, match=r"admin cannot listen on 127\.0\.0\.1:.*--admin :PORT"):
            asyncio.run(main())
    assert not control_socket(tmp_path / "state").exists()
