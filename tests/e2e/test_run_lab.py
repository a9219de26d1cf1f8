"""`run_lab` owns what `labkit up` opens (journal, flush task, services, views) and releases it all,
in reverse order, whether the lab stops normally, fails in the middle or never starts."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest

from labkit.inventory.load import load
from labkit.plan.build import build_plan
from labkit.services.running import LogSettings, run_lab
from labkit.services.supervisor import STANDARD_PORTS, RunningLab, StartError, free_port_offset

PLAN = build_plan(load(None))


class View:
    """A stand-in for the live board: a context manager that is also a sink."""

    def __init__(self) -> None:
        self.entered = self.left = False
        self.events = 0

    def __enter__(self) -> View:
        self.entered = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.left = True

    def __call__(self, event: object) -> None:
        self.events += 1


def test_everything_is_released_when_the_block_fails(tmp_path: Path) -> None:
    view = View()
    seen = {}

    async def main() -> None:
        async with run_lab(PLAN, log=LogSettings(tmp_path / "events.jsonl"), port_offset=free_port_offset(),
                           state_dir=tmp_path / "state") as lab:
            lab.watch(view)
            seen["lab"] = lab
            assert lab.journal is not None and not lab.journal.file.closed
            assert set(lab.services) == {"syslog", "dns", "tftp", "http", "https", "acs", "dhcp"}
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(main())
    lab = seen["lab"]
    assert lab.services == {} and lab.journal.file.closed
    assert view.entered and view.left and view not in lab.bus.sinks
    assert (tmp_path / "events.jsonl").exists()


def test_a_start_failure_closes_the_journal_and_what_started(tmp_path: Path) -> None:
    offset = free_port_offset()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", STANDARD_PORTS["http"] + offset))
        blocker.listen()

        async def main() -> None:
            async with run_lab(PLAN, log=LogSettings(tmp_path / "events.jsonl"), port_offset=offset,
                               state_dir=tmp_path / "state"):
                raise AssertionError("the lab must not start")

        with pytest.raises(StartError, match=r"http cannot listen on 127\.0\.0\.1"):
            asyncio.run(main())
    # every port the lab took before failing is free again
    for service in ("syslog", "dns", "tftp"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", STANDARD_PORTS[service] + offset))


def test_a_flood_of_junk_stays_under_the_log_cap_and_is_counted_exactly(tmp_path: Path) -> None:
    log = LogSettings(tmp_path / "events.jsonl", max_bytes=16 * 1024, backups=1, malformed_per_second=5)
    offset = free_port_offset()

    async def main() -> RunningLab:
        async with run_lab(PLAN, log=log, port_offset=offset, state_dir=tmp_path / "state") as lab:
            dhcp = ("127.0.0.1", STANDARD_PORTS["dhcp"] + offset)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as junk:
                for batch in range(20):
                    for i in range(250):
                        junk.sendto(bytes([batch, i % 256]) * 3, dhcp)
                    await asyncio.sleep(0.01)
            seen = -1
            for _ in range(100):  # until the service has read every datagram it got (bounded)
                await asyncio.sleep(0.05)
                if lab.bus.malformed["dhcp"] == seen:
                    break
                seen = lab.bus.malformed["dhcp"]
        return lab

    malformed = asyncio.run(main()).bus.malformed["dhcp"]  # read once the lab has stopped
    assert malformed > 100  # most of the 5,000 junk datagrams arrived, each one counted
    # unlimited, ~250 bytes per junk datagram would have rotated the 16 KiB log many times over
    assert not (tmp_path / "events.jsonl.1").exists()
    path = tmp_path / "events.jsonl"
    assert path.stat().st_size <= 16 * 1024
    logged = [json.loads(line) for line in path.read_text().splitlines()]
    written = sum(1 for e in logged if e["service"] == "dhcp" and e["result"] == "malformed")
    summarised = sum(e["detail"]["count"] for e in logged if e["action"] == "suppressed")
    assert written + summarised == malformed and summarised > 0  # the log adds up exactly
