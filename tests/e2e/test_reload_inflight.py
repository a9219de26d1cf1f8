"""A reload swaps the plan between two datagrams without dropping sockets: a TFTP transfer under
way finishes on the file it opened (even one the new plan no longer serves), a DNS TCP connection
opened before the reload answers from the new zones on the same connection."""

from __future__ import annotations

import asyncio
import socket
import struct
from pathlib import Path

from dnslib import DNSRecord

from labkit.inventory.load import load
from labkit.plan.build import build_plan
from labkit.services.reload import apply_plan
from labkit.services.running import run_lab
from labkit.services.supervisor import STANDARD_PORTS, free_port_offset
from tests.helpers import FIRMWARE, write_lab

MAC = "00:56:2b:00:00:01"
LAB = f"""\
lab: {{domain: t.example, address: 192.0.2.1/24}}
models: {{CP-8851-3PCC: {{firmware: {FIRMWARE}}}}}
dns: {{records: {{pbx: 192.0.2.5}}}}
phones: [{{mac: "{MAC}", model: CP-8851-3PCC, ip: 192.0.2.9}}]
"""
NO_PHONES = LAB.replace("192.0.2.5", "192.0.2.6").replace(
    f'{{mac: "{MAC}", model: CP-8851-3PCC, ip: 192.0.2.9}}', "")
PROFILE = "Cisco/CP-8851-3PCC/00562b000001.cfg"


async def _packet(sock: socket.socket) -> tuple[bytes, tuple[str, int]]:
    return await asyncio.wait_for(asyncio.get_running_loop().sock_recvfrom(sock, 2048), 30)


async def _dns_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str) -> str:
    query = DNSRecord.question(name).pack()
    writer.write(struct.pack("!H", len(query)) + query)
    await writer.drain()
    size = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), 30))[0]
    return str(DNSRecord.parse(await reader.readexactly(size)).rr[0].rdata)


def test_transfers_and_connections_under_way_carry_on(tmp_path: Path) -> None:
    inventory = write_lab(tmp_path / "lab", LAB)
    before = build_plan(load(inventory))
    inventory.write_text(NO_PHONES)
    after = build_plan(load(inventory))
    assert PROFILE in before.files and PROFILE not in after.files
    offset = free_port_offset()
    tftp, dns = STANDARD_PORTS["tftp"] + offset, STANDARD_PORTS["dns"] + offset

    async def main() -> bytes:
        async with run_lab(before, port_offset=offset, state_dir=tmp_path / "state") as lab:
            reader, writer = await asyncio.open_connection("127.0.0.1", dns)
            assert await _dns_tcp(reader, writer, "pbx.t.example") == "192.0.2.5"
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
            rrq = b"\x00\x01" + PROFILE.encode() + b"\x00octet\x00"
            sock.sendto(rrq + b"blksize\x008\x00", ("127.0.0.1", tftp))
            oack, peer = await _packet(sock)
            assert oack[:2] == b"\x00\x06"
            sock.sendto(b"\x00\x04\x00\x00", peer)
            first, _ = await _packet(sock)
            assert first[:4] == b"\x00\x03\x00\x01"
            outcome = apply_plan(lab, after)  # in the middle of the transfer
            assert outcome.ok and outcome.diff is not None and outcome.diff.phones.removed == (MAC,)
            assert await _dns_tcp(reader, writer, "pbx.t.example") == "192.0.2.6"  # same connection
            writer.close()
            packet, data = first, b""
            for _ in range(10000):  # a few hundred 8-byte blocks
                data += packet[4:]
                sock.sendto(b"\x00\x04" + packet[2:4], peer)
                if len(packet) < 4 + 8:  # a short block ends the transfer
                    break
                packet, _ = await _packet(sock)
                assert packet[:2] == b"\x00\x03", packet
            sock.sendto(rrq, ("127.0.0.1", tftp))
            refused, _ = await _packet(sock)
            assert refused[:4] == b"\x00\x05\x00\x01"  # the new plan has no such file
            sock.close()
            return data

    assert asyncio.run(main()) == before.files[PROFILE].data
