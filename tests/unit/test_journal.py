"""The event journal: size rotation with a cap, and malformed input rate-limited in the log but
counted exactly (pure: events in, files and counters out; event times drive the windows)."""

from __future__ import annotations

import json
from pathlib import Path

from labkit.events import EventRecorder, is_malformed
from labkit.services.journal import EventBus, JsonLinesLog, MalformedLimiter
from tests.helpers import event


def test_journal_rotates_by_size_and_never_passes_its_cap(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "events.jsonl"
    journal = JsonLinesLog(path, max_bytes=4096, backups=2)
    for i in range(2000):
        journal(event(float(i), "dns", request=f"A host{i}.t.example"))
    journal.close()
    files = sorted(tmp_path.joinpath("logs").iterdir())
    assert [f.name for f in files] == ["events.jsonl", "events.jsonl.1", "events.jsonl.2"]
    assert all(f.stat().st_size <= 4096 for f in files)
    assert sum(f.stat().st_size for f in files) <= 3 * 4096
    newest = [json.loads(line) for line in path.read_text().splitlines()]
    older = [json.loads(line) for line in (path.parent / "events.jsonl.1").read_text().splitlines()]
    assert newest[-1]["request"] == "A host1999.t.example"  # the newest events are kept
    assert older[-1]["time"] + 1 == newest[0]["time"]  # and .1 holds the ones just before
    assert journal.rotated() == [path.parent / "events.jsonl.2", path.parent / "events.jsonl.1"]


def test_journal_appends_to_an_existing_file_and_counts_its_size(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("x" * 4000 + "\n")
    journal = JsonLinesLog(path, max_bytes=4096, backups=0)
    journal(event(1.0, "dns", request="y" * 200))
    journal.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["request"] == "y" * 200  # rotated, none kept


def test_malformed_flood_is_limited_in_the_log_and_counted_exactly(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    journal = JsonLinesLog(path, max_bytes=64 * 1024, backups=1)
    bus = EventBus()
    limiter = MalformedLimiter(journal, per_second=5)
    bus.sinks.append(limiter)
    for i in range(100_000):  # 100,000 junk datagrams over 10 seconds of event time
        bus(event(1000.0 + i / 10_000, "dhcp", "malformed", action="malformed", answer="dropped"))
    bus(event(1010.5, "dhcp", action="discover", request="DISCOVER"))  # a real request still logged
    limiter.flush()
    journal.close()
    assert bus.count == 100_001 and bus.malformed == {"dhcp": 100_000}  # counted exactly
    logged = [json.loads(line) for f in (*journal.rotated(), path) for line in f.read_text().splitlines()]
    malformed = [e for e in logged if e["result"] == "malformed"]
    suppressed = [e for e in logged if e["action"] == "suppressed"]
    assert len(malformed) == 50  # 5 per second, 10 seconds
    assert len(suppressed) == 10 and suppressed[0]["answer"] == "suppressed 9995 malformed event(s)"
    assert len(malformed) + sum(e["detail"]["count"] for e in suppressed) == 100_000
    assert [e["action"] for e in logged[-2:]] == ["discover", "suppressed"]  # the last window, at flush
    assert path.stat().st_size < 64 * 1024


def test_limiter_is_per_service_and_passes_everything_else() -> None:
    recorder = EventRecorder()
    limiter = MalformedLimiter(recorder, per_second=2)
    for _ in range(10):
        limiter(event(5.0, "dns", "formerr"))
        limiter(event(5.0, "tftp", "malformed"))
        limiter(event(5.0, "http", "ok"))
    assert [e.service for e in recorder.events if is_malformed(e)] == ["dns", "tftp", "dns", "tftp"]
    assert sum(1 for e in recorder.events if e.result == "ok") == 10
    assert limiter.total_suppressed == 16
    limiter.flush()
    summaries = {e.service: e.detail["count"] for e in recorder.events if e.result == "suppressed"}
    assert summaries == {"dns": 8, "tftp": 8}
    limiter.flush()  # nothing pending: nothing more written
    assert sum(1 for e in recorder.events if e.result == "suppressed") == 2


def test_timeline_reads_the_rotated_logs_too(tmp_path: Path) -> None:
    from labkit.timeline import log_files, read_events

    path = tmp_path / "events.jsonl"
    journal = JsonLinesLog(path, max_bytes=2048, backups=5)
    for i in range(60):
        journal(event(float(i), "dhcp", phone="00:56:2b:00:00:01", request=f"REQUEST {i}"))
    journal.close()
    assert len(log_files(path)) > 2 and log_files(path)[-1] == path
    assert [e.time for e in read_events(path)] == [float(i) for i in range(60)]


def test_board_folds_progress_per_phone_and_counts_malformed_input() -> None:
    from labkit.board import BoardState
    from labkit.inventory.load import load
    from labkit.plan.build import build_plan

    board = BoardState.from_plan(build_plan(load(None)))
    mac = next(iter(board.rows))
    board(event(1.0, "dns", phone=mac, request="SRV _ciscoprov-https._tls.lab.example"))
    board(event(2.0, "http", phone=mac, action="get", request="/Cisco/x/y.cfg"))
    board(event(3.0, "tftp", "not-found", phone=mac, action="rrq", request="/sip.loads"))
    for t in range(5):
        board(event(4.0 + t, "dhcp", "malformed", client="10.0.0.9:68"))
    row = board.rows[mac]
    assert row.dns.startswith("SRV _ciscoprov") and row.profile == "http /Cisco/x/y.cfg"
    assert row.firmware == "" and row.errors == 1
    assert (board.total, board.unknown, board.malformed) == (8, 5, 5)
    assert board.table().title == "labkit: 8 events, 5 from unknown clients, 5 malformed"


def test_board_shows_kernel_drops_per_service() -> None:
    from labkit.board import BoardState
    from labkit.events import make_event

    board = BoardState()
    for total in (12, 40):  # the count is cumulative: the board shows the latest
        board(make_event("dns", None, None, "kernel-drops", "n datagrams", f"{total} in all", "overflow",
                         dropped=total, total=total))
    board(make_event("tftp", None, None, "kernel-drops", "3 datagrams", "3 in all", "overflow", total=3))
    assert str(board.table().title).endswith("kernel drops dns 40 tftp 3")
