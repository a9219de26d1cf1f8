"""The virtual phone's own CWMP driver (`labkit.phone.cwmp_driver.run_cwmp`: its DNS lookup of
the option 43 name, its Digest to the ACS, its Connection Request listener with Digest) against
the kit's ACS in a whole lab on loopback: BOOTSTRAP with the planned requests, then an operator's
request delivered after a Connection Request."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from labkit.events import Event
from labkit.inventory.load import load
from labkit.phone.clients import HttpClient
from labkit.phone.core import Outcome, PhoneConfig
from labkit.phone.cwmp import CwmpSettings
from labkit.phone.cwmp_driver import run_cwmp
from labkit.phone.driver import PhoneRun, VirtualClock, loopback_access
from labkit.phone.network import DhcpClient
from labkit.plan.build import build_plan
from labkit.protocols.cwmp import rpc
from labkit.services.acs import AcsServer
from labkit.services.running import run_lab
from labkit.services.supervisor import free_port_offset
from tests.acs_phone import tr069_lease
from tests.e2e.test_acs_phone import LAB, MAC, NAME, SET_AND_WATCH
from tests.helpers import write_lab


class Changes:
    """An event sink that wakes waiters: bounded waits on what the lab has seen (a guard, not a
    timing assertion)."""

    def __init__(self) -> None:
        self.changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.changed.set()

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(60):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


def test_the_phones_own_driver_against_the_kits_acs(tmp_path: Path) -> None:
    plan = build_plan(load(write_lab(tmp_path / "lab", LAB + SET_AND_WATCH)))
    offset = free_port_offset()
    changes = Changes()

    async def main() -> None:
        async with run_lab(plan, port_offset=offset, state_dir=tmp_path / "state", sinks=[changes]) as lab:
            acs = lab.services["acs"]
            assert isinstance(acs, AcsServer)
            access = loopback_access(plan.inventory, "127.0.0.1", offset, lab.ca_path)
            config = PhoneConfig(MAC, "CP-8851-3PCC", "FCH0001", seed=1)
            lease = tr069_lease(plan.inventory, MAC, "CP-8851-3PCC dslforum.org")
            outcome = Outcome(MAC, lease=lease, params={"Enable_TR-069": "Yes", "Display_Name_1_": "Bench"},
                              firmware=config.load)
            settings = CwmpSettings(cr_port=0, duration=1e7, periodic_interval=10**8, username="cpe",
                                    password="right")  # Connection Request: labkit/labkit, as the lab's
            async with HttpClient(access.network, access.ca_file) as http:
                run = PhoneRun(config, access, DhcpClient(access.dhcp), http, VirtualClock(scale=100))
                task: asyncio.Task[Any] = asyncio.create_task(run_cwmp(run, outcome, settings))
                try:
                    await changes.until(lambda: len(acs.sessions(MAC)["sessions"]) == 1)
                    first = acs.sessions(MAC)["sessions"][0]
                    assert first["events"] == ["0 BOOTSTRAP", "1 BOOT"] and first["outcome"] == "ok"
                    assert [x["action"] for x in first["exchanges"]] == [
                        "Inform", "SetParameterValues", "SetParameterAttributes", "cwmp"]
                    acs.queue(MAC, rpc.GetParameterValues((NAME,)))
                    knocked = await acs.connect(MAC)
                    assert knocked["ok"], knocked
                    await changes.until(lambda: len(acs.sessions(MAC)["sessions"]) == 2)
                finally:
                    task.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await task
            second = acs.sessions(MAC)["sessions"][1]
            assert second["events"] == ["6 CONNECTION REQUEST"]
            assert second["exchanges"][1]["answer"] == f"GetParameterValuesResponse {NAME}=set by the ACS"

    asyncio.run(main())
