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


def test_a_binding_ends_its_address_quarantine_on_disk_in_this_store_and_the_next(tmp_path: Path) -> None:
    """The store deletes a quarantine row only for addresses it knows are quarantined (read at
    open, kept through its commits): a binding of a quarantined address still ends it on disk,
    whether the quarantine was written by this store or found by a new one; a failed commit
    leaves nothing behind and the store reads its quarantines again."""
    import sqlite3

    import pytest

    from labkit.protocols.dhcp.leases import Lease, LeaseChange

    path = tmp_path / "leases.sqlite3"
    first, second, third = (IPv4Address(f"10.42.0.{n}") for n in (101, 102, 103))
    store = LeaseStore(path)
    store.commit([LeaseChange(Lease(f"declined {ip}", ip, "declined", NOW + 600)) for ip in (first, second)])
    store.commit([LeaseChange(Lease("02:00:00:00:00:01", first, "bound", NOW + 3600))])
    assert {r.ip for r in store.load() if r.state == "declined"} == {second}
    store.close()
    again = LeaseStore(path)  # a new store finds the remaining quarantine on disk
    again.commit([LeaseChange(Lease("02:00:00:00:00:02", second, "bound", NOW + 3600)),
                  LeaseChange(Lease("02:00:00:00:00:03", third, "bound", NOW + 3600))])
    rows = again.load()
    assert not [r for r in rows if r.state == "declined"]
    assert {r.ip for r in rows if r.state == "bound"} == {first, second, third}
    again.commit([LeaseChange(Lease(f"declined {third}", third, "declined", NOW + 600))])
    with pytest.raises(sqlite3.IntegrityError):  # a state the schema refuses: the whole batch goes
        again.commit([LeaseChange(Lease(f"declined {first}", first, "declined", NOW + 600)),
                      LeaseChange(Lease("02:00:00:00:00:09", second, "bogus", NOW + 3600))])  # type: ignore[arg-type]
    assert {r.ip for r in again.load() if r.state == "declined"} == {third}
    again.commit([LeaseChange(Lease("02:00:00:00:00:03", third, "bound", NOW + 3600))])
    assert not [r for r in again.load() if r.state == "declined"]
    again.close()


def test_runs_without_the_optional_columns_write_the_same_rows(tmp_path: Path) -> None:
    """A binding whose hostname, vendor class or phone is None is written without those columns
    (LeaseStore._upsert): the table is the one a full INSERT OR REPLACE of every row gives, in order
    (the same MAC again, an address moving to another MAC, runs of each kind back to back)."""
    from labkit.protocols.dhcp.leases import Lease, LeaseChange

    def lease(mac: str, ip: str, hostname: str | None, vendor: str | None, phone: str | None) -> LeaseChange:
        return LeaseChange(Lease(mac, IPv4Address(ip), "bound", NOW + 60, hostname, vendor, phone))

    changes = [lease("02:00:00:00:00:01", "10.42.0.51", None, None, None),
               lease("02:00:00:00:00:02", "10.42.0.52", "host", "Cisco-CP-8851", "desk"),
               lease("02:00:00:00:00:01", "10.42.0.53", "h1", None, None),  # the same MAC, another run
               lease("02:00:00:00:00:03", "10.42.0.52", None, None, None),  # .52 moves to another MAC
               lease("02:00:00:00:00:04", "10.42.0.54", None, "vendor", None),
               lease("02:00:00:00:00:05", "10.42.0.55", None, None, "phone five"),
               lease("02:00:00:00:00:06", "10.42.0.56", None, None, None),
               lease("02:00:00:00:00:04", "10.42.0.57", None, None, None)]
    store = LeaseStore(tmp_path / "leases.sqlite3")
    store.commit(changes)
    reference = LeaseStore(tmp_path / "reference.sqlite3")
    reference.db.executemany(
        "INSERT OR REPLACE INTO leases (mac, ip, state, expires, hostname, vendor_class, phone, updated)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
        [(c.lease.mac, str(c.lease.ip), c.lease.state, c.lease.expires, c.lease.hostname,
          c.lease.vendor_class, c.lease.phone) for c in changes])
    query = "SELECT mac, ip, state, expires, hostname, vendor_class, phone FROM leases ORDER BY mac"
    written = store.db.execute(query).fetchall()
    assert written == reference.db.execute(query).fetchall()
    assert len(written) == 5  # .52 moved: 02's row is gone, as a REPLACE of the full row does
    assert ("02:00:00:00:00:01", "10.42.0.53", "bound", NOW + 60, "h1", None, None) in written
    store.close()
    reference.close()
