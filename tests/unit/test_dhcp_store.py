"""The DHCP lease store (SQLite, services layer): what the core binds survives a new store."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

from labkit.protocols.dhcp.leases import LeaseTable
from labkit.protocols.dhcp.message import REQUEST, build, request_message
from labkit.protocols.dhcp.options import encode_value
from labkit.protocols.dhcp.server import DhcpServerCore
from labkit.services.leases import LeaseStore
from tests.unit.dhcp_configs import PHONE, SERVER, default_lab

PHONE_MAC = bytes.fromhex("00562b00033c")
NOW = 1_800_000_000.0


def test_leases_survive_a_new_store_and_keep_one_address_per_mac(tmp_path: Path) -> None:
    store = LeaseStore(tmp_path / "leases.sqlite3")
    core = DhcpServerCore(default_lab(), LeaseTable.from_rows(store.load()))
    wanted = IPv4Address("10.42.0.60").packed
    request = request_message(REQUEST, PHONE_MAC, 7, {50: wanted, 54: SERVER.packed})
    assert core.handle(build(request), ("0.0.0.0", 68), NOW).facts[0].result == "ok"
    store.commit(core.table.take_pending())
    store.close()
    again = LeaseStore(tmp_path / "leases.sqlite3")
    table = LeaseTable.from_rows(again.load())
    assert table.by_mac[PHONE].ip == IPv4Address("10.42.0.60")
    assert encode_value(50, table.by_mac[PHONE].ip) == IPv4Address("10.42.0.60").packed
    again.close()
