"""The ACS's bounds and edges over real HTTP: open sessions at their bound (503), an envelope over
its size (413), other methods (405), a body that is not CWMP (400, the session over), an idle
session dropped after the session timeout (a test clock), and a reload taking new actions."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import aiohttp

from labkit.events import EventRecorder
from labkit.plan.build import Plan
from labkit.protocols.cwmp import rpc
from labkit.protocols.cwmp.values import Value
from labkit.services.acs import AcsServer, start_acs
from labkit.services.context import Endpoint
from tests.acs_cpe import LabCpe
from tests.e2e.test_acs_service import LAB, MAC, SERIAL, context, plan_of

LIMITED = LAB.replace("acs:\n", "acs:\n  limits: {sessions: 1, body_bytes: 2048, session_timeout: 5}\n", 1)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _start(tmp_path: Path, plan: Plan, bus: EventRecorder, clock: Clock) -> AcsServer:
    return await start_acs(plan.acs, Endpoint("acs", "127.0.0.1", 0, "tcp"), context(tmp_path, plan, bus),
                           clock=clock)


def test_bounds_and_edges(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, LIMITED.replace("  auth: {user: cpe, password: right, scheme: digest}\n", ""))
    bus = EventRecorder()
    clock = Clock()

    async def main() -> None:
        server = await _start(tmp_path, plan, bus, clock)
        url = f"http://127.0.0.1:{server.port}/"
        try:
            async with aiohttp.ClientSession() as first, aiohttp.ClientSession() as second:
                cpe = LabCpe(url, SERIAL)
                opened = await first.post(url, data=cpe.start_body("0 BOOTSTRAP"))
                assert opened.status == 200 and len(server.handler.live) == 1
                busy = await second.post(url, data=LabCpe(url, "OTHER").start_body("0 BOOTSTRAP"))
                assert busy.status == 503
                big = await second.post(url, data=b"x" * 4096)
                assert big.status == 413
                got = await second.get(url)
                assert got.status == 405
                clock.now += 6  # the first session has been idle longer than its timeout
                junk = await second.post(url, data=b"<not-soap/>")
                assert junk.status == 400  # a new session (the old one swept), which ends at once
            records = server.sessions()["sessions"]
            assert [r["outcome"] for r in records] == ["timeout", "malformed"]
            assert records[0]["mac"] == MAC and server.handler.live == {}
        finally:
            await server.close()
        results = [e.result for e in bus.events]
        assert {"busy", "too-large", "method-not-allowed", "malformed"} <= set(results)

    asyncio.run(main())


def test_a_reload_gives_the_next_sessions_the_new_actions(tmp_path: Path) -> None:
    plan = plan_of(tmp_path / "a")
    bus = EventRecorder()

    async def main() -> None:
        server = await _start(tmp_path, plan, bus, Clock())
        try:
            cpe = LabCpe(f"http://127.0.0.1:{server.port}/", SERIAL, user="cpe", password="right")
            first = await cpe.session("0 BOOTSTRAP")
            assert len(first.received) == 3
            new = plan_of(tmp_path / "b", LAB.replace("reboot: true", "reboot: false").replace(
                "password: right", "password: new"))
            server.reload(new.acs, context(tmp_path, new, bus))
            refused = await cpe.session("1 BOOT")
            assert refused.statuses == [401]  # the new credentials
            cpe.password = "new"
            again = await cpe.session("1 BOOT")
            # the phone's actions changed: it gets them again (without the reboot now)
            assert [type(r).__name__ for r in again.received] == ["SetParameterValues", "AddObject"]
        finally:
            await server.close()

    asyncio.run(main())


def test_a_large_answer_is_read_whole(tmp_path: Path) -> None:
    """A GetParameterValuesResponse of a few hundred KiB arrives in many TCP segments."""
    plan = plan_of(tmp_path, LAB.replace("  auth: {user: cpe, password: right, scheme: digest}\n", ""))
    bus = EventRecorder()

    async def main() -> None:
        server = await _start(tmp_path, plan, bus, Clock())
        try:
            cpe = LabCpe(f"http://127.0.0.1:{server.port}/", SERIAL)
            names = tuple(f"Device.X_CISCO_COM_Parameter_{n:05d}" for n in range(3000))
            cpe.params.update({name: Value.string("v" * 64) for name in names})
            await cpe.session("0 BOOTSTRAP")
            server.queue(MAC, rpc.GetParameterValues(names))
            asked = await cpe.session("6 CONNECTION REQUEST")
            assert [type(r).__name__ for r in asked.received] == ["GetParameterValues"]
            exchange = server.sessions(MAC)["sessions"][-1]["exchanges"][1]
            assert exchange["result"] == "ok" and exchange["action"] == "GetParameterValues"
        finally:
            await server.close()

    asyncio.run(main())


def test_junk_bodies_end_their_sessions_and_the_acs_carries_on(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, LAB.replace("  auth: {user: cpe, password: right, scheme: digest}\n", ""))
    bus = EventRecorder()
    rng = random.Random(7)
    valid = LabCpe("http://x/", SERIAL).start_body("0 BOOTSTRAP")
    bodies = [rng.randbytes(rng.randrange(1, 400)) for _ in range(30)]
    bodies += [valid[: rng.randrange(1, len(valid))] for _ in range(20)]  # cut short
    bodies += [valid.replace(b"Inform", b"Infarm", 1),
               b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><x/>"]

    async def main() -> None:
        server = await _start(tmp_path, plan, bus, Clock())
        url = f"http://127.0.0.1:{server.port}/"
        try:
            async with aiohttp.ClientSession() as client:
                for body in bodies:
                    async with client.post(url, data=body) as answer:
                        assert answer.status == 400, body[:60]
            assert server.handler.live == {}
            done = await LabCpe(url, SERIAL).session("0 BOOTSTRAP")
            assert done.statuses[-1] == 204
        finally:
            await server.close()
        assert sum(1 for e in bus.events if e.result == "malformed") == len(bodies)

    asyncio.run(main())
