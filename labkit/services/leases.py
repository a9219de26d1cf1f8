"""Leases on disk: SQLite in the state folder, committed (fsync) before any ACK that depends on them."""

from __future__ import annotations

import sqlite3
import time
from ipaddress import IPv4Address
from pathlib import Path

from labkit.protocols.dhcp.leases import Lease, LeaseChange
from labkit.protocols.dhcp.message import dotted

LEASES_FILE = "leases.sqlite3"
SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
    mac TEXT PRIMARY KEY,
    ip TEXT NOT NULL UNIQUE,          -- one address, one MAC: enforced by the database too
    state TEXT NOT NULL CHECK (state IN ('bound', 'released')),
    expires REAL NOT NULL,
    hostname TEXT,
    vendor_class TEXT,
    phone TEXT,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS declined (
    ip TEXT PRIMARY KEY,
    until REAL NOT NULL
);
"""
FULL_UPSERT = ("INSERT OR REPLACE INTO leases (mac, ip, state, expires, hostname, vendor_class, phone,"
               " updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
SHORT_UPSERT = "INSERT OR REPLACE INTO leases (mac, ip, state, expires, updated) VALUES (?, ?, ?, ?, ?)"


class LeaseStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        # WAL + synchronous=FULL: a commit is on disk when it returns, and cheap enough to batch
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        # the addresses in `declined`, so that a binding deletes its address's quarantine row only
        # when there is one (almost never: that DELETE was a third of the SQLite work per lease)
        self.declined: set[str] | None = self._declined()  # None: unknown, delete for every binding

    def _declined(self) -> set[str] | None:
        try:
            return {ip for (ip,) in self.db.execute("SELECT ip FROM declined")}
        except sqlite3.Error:
            return None

    def load(self) -> list[Lease]:
        rows = [Lease(mac, IPv4Address(ip), state, expires, hostname, vendor, phone)
                for mac, ip, state, expires, hostname, vendor, phone in self.db.execute(
                    "SELECT mac, ip, state, expires, hostname, vendor_class, phone FROM leases")]
        rows += [Lease(f"declined {ip}", IPv4Address(ip), "declined", until)
                 for ip, until in self.db.execute("SELECT ip, until FROM declined")]
        return rows

    def commit(self, changes: list[LeaseChange]) -> None:
        """Write a batch in one transaction; raises sqlite3.Error (and writes nothing) on failure."""
        if not changes:
            return
        now = time.time()
        cursor = self.db.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            bound: list[tuple[object, ...]] = []  # a run of plain upserts, written with executemany
            for change in changes:
                lease = change.lease
                ip = dotted(lease.ip._ip)  # type: ignore[attr-defined]  # str(ip): _text, without its call
                if lease.state != "declined" and not change.delete:
                    hostname, vendor, phone = lease.hostname, lease.vendor_class, lease.phone
                    bound.append((lease.mac, ip, lease.state, lease.expires, now)
                                 if hostname is None and vendor is None and phone is None else
                                 (lease.mac, ip, lease.state, lease.expires, hostname, vendor, phone, now))
                    continue
                self._upsert(cursor, bound)
                if lease.state == "declined" and change.delete:
                    cursor.execute("DELETE FROM declined WHERE ip = ?", (ip,))
                    if self.declined is not None:
                        self.declined.discard(ip)
                elif lease.state == "declined":
                    cursor.execute("INSERT OR REPLACE INTO declined (ip, until) VALUES (?, ?)",
                                   (ip, lease.expires))
                    if self.declined is not None:
                        self.declined.add(ip)
                else:
                    cursor.execute("DELETE FROM leases WHERE mac = ?", (lease.mac,))
            self._upsert(cursor, bound)
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            self.declined = self._declined()
            raise

    def _upsert(self, cursor: sqlite3.Cursor, rows: list[tuple[object, ...]]) -> None:
        """Write a run of leases in order (and end any quarantine of their addresses: the declined
        table and the leases table are independent, so its deletions may go first); empties `rows`."""
        if not rows:
            return
        declined = self.declined
        if declined is None or declined:
            ended = [(row[1],) for row in rows if declined is None or row[1] in declined]
            if ended:
                cursor.executemany("DELETE FROM declined WHERE ip = ?", ended)
            if declined is not None:
                declined.difference_update(ip for (ip,) in ended)
        # a row without hostname, vendor class and phone (5 values) is written without those columns
        # (a REPLACE leaves them NULL: the same row), because sqlite3 binds a None through its adapter
        # look-up, which cost more than the rest of the row; runs of each kind keep their order
        start = 0
        for end in range(1, len(rows) + 1):
            if end == len(rows) or len(rows[end]) != len(rows[start]):
                cursor.executemany(SHORT_UPSERT if len(rows[start]) == 5 else FULL_UPSERT, rows[start:end])
                start = end
        rows.clear()

    def close(self) -> None:
        self.db.close()


def _text(ip: IPv4Address) -> str:
    return dotted(ip._ip)  # type: ignore[attr-defined]  # str(ip), without its Python calls


def read_leases(state_dir: Path) -> list[Lease]:
    """Leases as stored, for `labkit leases` (no server needed)."""
    path = state_dir / LEASES_FILE
    if not path.exists():
        return []
    store = LeaseStore(path)
    try:
        return store.load()
    finally:
        store.close()
