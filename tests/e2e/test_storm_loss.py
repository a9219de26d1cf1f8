"""A small storm on a lossy network: 5% of packets lost in every direction, every phone provisions.

The kit loses packets through seeded fault rules (DHCP replies, DNS answers, TFTP blocks, HTTP
503s and late answers); the phones lose 5% of every datagram they send or receive (seeded per
phone). DHCP retransmits per RFC 2131, DNS and TFTP retry, failed fetches are retried after
Resync_Error_Retry_Delay, and the kit answers retransmissions without a second lease.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from labkit.events import EventRecorder
from labkit.inventory.load import load
from labkit.phone.driver import SwarmResult, loopback_access, run_swarm
from labkit.phone.swarm import inventory_configs
from labkit.plan.build import build_plan
from labkit.services.leases import read_leases
from labkit.services.supervisor import free_port_offset, start_lab

PHONES = 50
LOSS = 0.05
INVENTORY = """\
lab:
  domain: lab.example
  address: 10.42.0.1/16
  pool: {start: 10.42.1.1, end: 10.42.1.250}
dhcp:
  options: {tftp_server_name: "10.42.0.1"}
  classes:
    - match: "CP-*-3PCC"
      options: {provisioning_url: "http://prov.lab.example"}
models:
  CP-8851-3PCC: {firmware: sip88xx.12-0-1MPP-0001.loads}
faults:
  - {name: lost DHCP reply, dhcp: {drop: any}, when: {probability: P}}
  - {name: lost DNS answer, dns: {drop: true}, when: {probability: P}}
  - {name: lost TFTP block, tftp: {drop_block: 1}, when: {probability: P}}
  - {name: HTTP 503, http: {status: 503}, when: {probability: P}}
  - {name: HTTP late, http: {delay: 0.5}, when: {probability: P}}
phones:
{%- for n in range(PHONES) %}
  - {mac: "02:4c:4b:00:01:{{ '%02x' % n }}", model: CP-8851-3PCC}
{%- endfor %}
"""


def test_every_phone_provisions_with_five_percent_loss_both_ways(tmp_path: Path) -> None:
    (tmp_path / "firmware").mkdir()
    (tmp_path / "firmware" / "sip88xx.12-0-1MPP-0001.loads").write_bytes(b"load" * 5000)
    path = tmp_path / "lab.yaml"
    path.write_text(INVENTORY.replace("PHONES", str(PHONES)).replace("P}", f"{LOSS}}}"))
    plan = build_plan(load(path))
    recorder = EventRecorder()

    async def main() -> SwarmResult:
        offset = free_port_offset()
        lab = await start_lab(plan, port_offset=offset, state_dir=tmp_path / "state", sinks=[recorder],
                              fault_seed=5)
        try:
            access = loopback_access(plan.inventory, "127.0.0.1", offset, lab.ca_path)
            configs = inventory_configs(plan.inventory, rounds=6, retry_delays=(60,), seed=3)
            return await run_swarm(configs, access, concurrency=PHONES, time_scale=1000, loss=LOSS, seed=3)
        finally:
            await lab.close()

    result = asyncio.run(main())
    failed = {o.mac: f"{o.reason}: {o.last_error}" for o in result.outcomes if not o.provisioned}
    assert failed == {}
    assert result.dropped > 0  # the phones' side did lose packets
    fired = Counter(e.detail.get("rule") for e in recorder.events if e.action == "fault")
    assert fired["lost DHCP reply"] > 0 and fired["lost DNS answer"] > 0  # and so did the kit's
    # retransmitted DISCOVERs and REQUESTs got answers, never a second lease
    bound = [lease for lease in read_leases(tmp_path / "state") if lease.state == "bound"]
    assert len(bound) == PHONES == len({lease.ip for lease in bound}) == len({lease.mac for lease in bound})
    given = {o.mac: o.lease.ip for o in result.outcomes if o.lease is not None}
    assert given == {lease.mac: str(lease.ip) for lease in bound}
