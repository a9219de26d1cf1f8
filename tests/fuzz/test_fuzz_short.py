"""The short, deterministic fuzz campaign (issue 10): a few thousand seeded inputs per protocol
against a real `labkit up` on loopback; any crash, hang, wrong answer or traceback fails.
The long campaign is `bench/fuzz.py --count N` (figures in bench/README.md)."""

from __future__ import annotations

from pathlib import Path

from bench.fuzz import PROTOCOLS, run_campaign

SEED = 20261130


def test_short_fuzz_campaign_finds_no_crash_hang_or_traceback(tmp_path: Path) -> None:
    report = run_campaign(tmp_path, count=3000, tcp_count=1500, seed=SEED, batch=1000, time_limit=600)
    summary = report.summary()
    assert [p.protocol for p in report.protocols] == list(PROTOCOLS), summary
    assert all(p.sent > 0 and p.checks_ok == p.batches for p in report.protocols), summary
    assert not any(p.stopped_by_time for p in report.protocols), summary
    assert report.crashed is None, summary
    assert report.tracebacks == [], summary + "\n" + (tmp_path / "stderr.txt").read_text()
    assert report.ok, summary
