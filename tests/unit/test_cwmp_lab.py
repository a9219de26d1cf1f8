"""The virtual phone's CWMP side against the real labkit DHCP and DNS (an in-process lab on
loopback): the dslforum.org vendor class gets the TR-069 class's options 43 and 125, the phone
finds its ACS there and informs it (a small test ACS, on a port of its own)."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

from aiohttp import web

from labkit.events import EventRecorder
from labkit.inventory.load import load
from labkit.phone.core import Outcome, PhoneConfig
from labkit.phone.cwmp import CwmpSettings
from labkit.phone.driver import loopback_access, run_swarm
from labkit.plan.build import build_plan
from labkit.protocols.cwmp import rpc
from labkit.protocols.cwmp.acs_session import AcsSession
from labkit.services.supervisor import free_port_offset, start_lab

MAC = "00:56:2b:00:00:01"
INVENTORY = """\
lab: {{domain: lab.example, address: 10.42.0.1/24}}
models:
  CP-8851-3PCC: {{firmware: sip88xx.12-0-1MPP-0001.loads}}
phones:
  - {{mac: "{mac}", model: CP-8851-3PCC, ip: 10.42.0.60}}
dns:
  records: {{acs: 10.42.0.1}}
dhcp:
  options: {{tftp_server_name: "10.42.0.1"}}
  classes:
    - match: "*dslforum.org*"
      options:
        vendor_specific:
          tr069: {{acs_url: "http://acs.lab.example:{acs_port}/cwmp", provisioning_code: bench}}
        vendor_identifying:
          - enterprise: 3561
            tr111: {{gateway_manufacturer_oui: "00562B", gateway_serial_number: LABKIT0001}}
      force: [125]
"""


async def _listen(runner: web.AppRunner, offset: int) -> int:
    """Listen at the lab's offset plus a port of the test's own (not 7547, the kit's ACS's):
    the phone adds the offset to the port of the URL option 43 gives it."""
    for port in range(7600, 7640):
        try:
            await web.TCPSite(runner, "127.0.0.1", port + offset).start()
        except OSError:
            continue
        return port
    raise AssertionError("no free port for the test ACS")


def test_acs_discovered_through_option_43_from_the_lab_dhcp(tmp_path: Path) -> None:
    informs: list[rpc.Inform] = []
    sessions: list[AcsSession] = []

    async def cwmp(request: web.Request) -> web.Response:
        if not sessions or sessions[-1].done:
            sessions.append(AcsSession(on_inform=lambda inform: informs.append(inform) or [
                rpc.GetParameterValues(("Device.DeviceInfo.GatewayInfo.SerialNumber",))]))
        reply = sessions[-1].receive(await request.read())
        return web.Response(status=reply.status, body=reply.body or None, headers=dict(reply.headers))

    async def main() -> Outcome:
        offset = free_port_offset()
        app = web.Application()
        app.router.add_post("/cwmp", cwmp)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        acs_port = await _listen(runner, offset)
        path = tmp_path / "lab.yaml"
        path.write_text(textwrap.dedent(INVENTORY.format(mac=MAC, acs_port=acs_port)))
        plan = build_plan(load(path))
        recorder = EventRecorder()
        lab = await start_lab(plan, port_offset=offset, state_dir=tmp_path / "state", sinks=[recorder])
        try:
            access = loopback_access(plan.inventory, "127.0.0.1", offset, lab.ca_path)
            config = PhoneConfig(MAC, "CP-8851-3PCC", "FCH0001", rounds=1, retry_delays=(1,))
            result = await run_swarm([config], access, time_scale=1000,
                                     cwmp=CwmpSettings(enabled=True, cr_port=0, duration=0))
            return result.outcomes[0]
        finally:
            await lab.close()
            await runner.cleanup()

    outcome = asyncio.run(main())
    assert informs, outcome
    first = informs[0]
    assert first.event_codes() == ("0 BOOTSTRAP", "1 BOOT")
    sent = {p.name: p.value.text() for p in first.parameters}
    assert sent["Device.DeviceInfo.ProvisioningCode"] == "bench"  # option 43 sub-option 2
    answer = sessions[0].log[1]
    assert answer.result == "ok" and "SerialNumber=LABKIT0001" in answer.answer  # option 125, TR-111
    # the lab gave option 43 only to the dslforum.org class: the phone's vendor class matched
    decision = next(s for s in outcome.timeline if s.kind == "cwmp")
    assert decision.ok and decision.detail.endswith("(from option 43)")
