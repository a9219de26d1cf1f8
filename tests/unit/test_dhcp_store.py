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


def test_quarantines_stay_bounded_and_managed_over_restarts(tmp_path: Path) -> None:
    """A store written by an older kit holds quarantines of the server's own address, of 8.8.8.8,
    expired ones and more than the bound: after a start, memory and disk hold the same, valid set."""
    from labkit.protocols.dhcp.leases import MAX_QUARANTINE, Lease, LeaseChange

    path = tmp_path / "leases.sqlite3"
    store = LeaseStore(path)
    config = default_lab()
    pool = [IPv4Address(int(IPv4Address("10.42.0.100")) + n) for n in range(100)]
    rows = [Lease(f"declined {ip}", ip, "declined", NOW + 100 + n) for n, ip in enumerate(pool)]
    rows += [Lease("declined x", IPv4Address(a), "declined", NOW + 999) for a in ("10.42.0.1", "8.8.8.8")]
    rows.append(Lease("declined y", IPv4Address("10.42.0.150"), "declined", NOW - 1))  # over already
    store.commit([LeaseChange(r) for r in rows])
    store.close()

    def start(max_declined: int) -> tuple[DhcpServerCore, LeaseStore]:
        store = LeaseStore(path)
        core = DhcpServerCore(config, LeaseTable.from_rows(store.load(), max_declined=max_declined))
        core.tidy(NOW)
        store.commit(core.table.take_pending())
        return core, store

    core, store = start(40)
    on_disk = {r.ip: r.expires for r in store.load() if r.state == "declined"}
    store.close()
    assert on_disk == core.table.declined
    # the 40 newest rows were kept (the bound), then the server's own address and 8.8.8.8 ended
    assert set(on_disk) == set(pool[62:])
    assert IPv4Address("10.42.0.1") not in on_disk and IPv4Address("8.8.8.8") not in on_disk
    core, store = start(MAX_QUARANTINE)  # a second start changes nothing
    assert {r.ip for r in store.load() if r.state == "declined"} == set(on_disk) == set(core.table.declined)
    store.close()
