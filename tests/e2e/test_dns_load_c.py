"""The DNS load generator in C (bench/dns_load.c) counts what it claims to count.

bench/dns_bench.py --load c drives every server with it and reports its rate and its checks: each
answer's ID must be an outstanding query's and the bytes after the ID that query's expected
answer. Here it runs bounded by a count against labkit's DNS on loopback (served as the bench
serves it, `dns_bench.py --serve labkit`), then with one expected answer made wrong, then against
a stand-in that answers with IDs nobody asked for. Needs gcc (skipped without it, failed under
LABKIT_REQUIRE_INTEROP=1).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_INTEROP

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

import dns_bench  # noqa: E402
from cbuild import build  # noqa: E402


@pytest.fixture(scope="module")
def generator() -> Path:
    if shutil.which("gcc") is None:
        message = "gcc is not installed (bench/dns_load.c is compiled on demand)"
        if REQUIRE_INTEROP:
            pytest.fail(message + "; LABKIT_REQUIRE_INTEROP=1 forbids skipping")
        pytest.skip(message)
    return build(dns_bench.LOAD_SOURCE)


@pytest.fixture(scope="module")
def labkit_port() -> Iterator[int]:
    server = subprocess.Popen([sys.executable, str(BENCH / "dns_bench.py"), "--serve", "labkit"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert server.stdout is not None
        line = server.stdout.readline().strip()
        assert line.startswith("READY "), line
        yield int(line.split()[1])
    finally:
        assert server.stdin is not None
        server.stdin.close()  # the server stops when its stdin closes
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def run(binary: Path, port: int, queries: Path, *options: str) -> dict[str, int | float]:
    command = [str(binary), "--port", str(port), "--queries", str(queries), "--duration", "60", *options]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    report: dict[str, int | float] = json.loads(done.stdout)
    return report


def test_every_query_answered_and_every_answer_as_expected(generator: Path, labkit_port: int,
                                                           tmp_path: Path) -> None:
    lines = dns_bench.query_lines()
    answers = dns_bench.expected_answers(labkit_port, lines)
    # the expected answers are labkit's real ones: NOERROR with records, NODATA, NXDOMAIN
    rcodes = {line: (answers[line][3] & 0x0F, int.from_bytes(answers[line][6:8], "big")) for line in answers}
    assert rcodes["_ciscoprov-https._tls.lab.example SRV"] == (0, 1)
    assert rcodes["prov.lab.example A"] == (0, 1)
    assert rcodes["prov.lab.example AAAA"] == (0, 0)
    assert rcodes["missing3.lab.example A"] == (3, 0)
    queries = tmp_path / "queries.wire"
    dns_bench.load_file(queries, lines, answers)
    report = run(generator, labkit_port, queries, "--count", "2000", "--sockets", "4", "--inflight", "40",
                 "--timeout", "20")
    assert report["sent"] == report["answered"] == 2000
    assert (report["lost"], report["mismatched"], report["unmatched"]) == (0, 0, 0)
    assert report["first_mismatch"] == -1
    assert report["receive_calls"] >= 1 and report["send_calls"] >= 1


def test_a_wrong_expected_answer_is_counted(generator: Path, labkit_port: int, tmp_path: Path) -> None:
    lines = dns_bench.query_lines()
    answers = dns_bench.expected_answers(labkit_port, lines)
    wrong = "prov.lab.example AAAA"  # 5 lines of every 100
    answers[wrong] = answers[wrong][:-1] + bytes([answers[wrong][-1] ^ 1])  # one bit of its SOA
    queries = tmp_path / "queries.wire"
    dns_bench.load_file(queries, lines, answers)
    report = run(generator, labkit_port, queries, "--count", "1000", "--sockets", "3", "--inflight", "30",
                 "--timeout", "20")
    assert report["answered"] == 1000 and report["lost"] == 0
    assert report["mismatched"] == 50  # 10 passes over the mix, 5 wrong each
    assert lines[int(report["first_mismatch"])] == wrong
    assert report["unmatched"] == 0


def test_answers_to_ids_not_asked_are_unmatched_and_the_queries_lost(generator: Path, tmp_path: Path) -> None:
    lines = dns_bench.query_lines()
    queries = tmp_path / "queries.wire"
    dns_bench.load_file(queries, lines, {line: dns_bench.wire_query(line) for line in lines})
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stand_in:
        stand_in.bind(("127.0.0.1", 0))
        stand_in.settimeout(30)

        def answer_with_other_ids() -> None:
            for _ in range(50):
                query, peer = stand_in.recvfrom(2048)
                stand_in.sendto(bytes([query[0] ^ 0xFF, query[1]]) + query[2:], peer)

        thread = threading.Thread(target=answer_with_other_ids)
        thread.start()
        try:
            report = run(generator, stand_in.getsockname()[1], queries, "--count", "50", "--inflight", "50",
                         "--timeout", "1")
        finally:
            thread.join(timeout=60)
    assert (report["sent"], report["answered"], report["lost"], report["unmatched"]) == (50, 0, 50, 50)
    assert report["mismatched"] == 0
