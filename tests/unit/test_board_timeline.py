"""The live board at any width, its error count and unknown clients; the timeline per boot."""

from __future__ import annotations

import datetime
import io

from rich.console import Console

from labkit.board import NOT_ERRORS, BoardState, fit_columns
from labkit.events import Event
from labkit.timeline import boots, parse_since, story
from tests.helpers import default_inventory, event

MAC = "00:56:2b:00:00:01"


def board() -> BoardState:
    from labkit.plan.build import build_plan

    return BoardState.from_plan(build_plan(default_inventory()))


def rendered(state: BoardState, width: int) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None, legacy_windows=False)
    console.print(state.table(width))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(text, str)
    return text


def test_board_at_80_columns_drops_columns_by_priority_instead_of_squeezing_them() -> None:
    state = board()
    mac = next(iter(state.rows))
    state(event(1.0, "http", phone=mac, action="get", request="/Cisco/CP-8851-3PCC/long-profile-name.cfg"))
    narrow, wide = rendered(state, 80), rendered(state, 200)
    assert all(len(line) <= 80 for line in narrow.splitlines())
    header = next(line for line in narrow.splitlines() if "phone" in line)
    for kept in ("phone", "ip", "profile", "firmware"):
        assert kept in header, header  # whole words, not "p…" collapsed to nothing
    assert "hidden" in narrow and "dns" in narrow.split("hidden")[0].rsplit("(", 1)[-1]
    wide_header = next(line for line in wide.splitlines() if "phone" in line)
    for column in ("model", "dns", "logs", "errors", "last"):
        assert column in wide_header
    assert "hidden" not in wide
    assert state.rows[mac].name in narrow


def test_fit_columns_keeps_the_phone_even_when_nothing_else_fits() -> None:
    assert [c.name for c in fit_columns(10)] == ["phone"]
    assert [c.name for c in fit_columns(300)][:3] == ["phone", "model", "ip"]


def test_non_error_results_are_not_counted_as_errors() -> None:
    state = board()
    mac = next(iter(state.rows))
    assert {"ok", "accepted", "nodata", "redirect", "ignored"} <= NOT_ERRORS
    state(event(1.0, "tftp", "accepted", phone=mac, action="rrq", request="/a.cfg"))
    state(event(1.1, "tftp", "ok", phone=mac, action="rrq", request="/a.cfg"))
    state(event(1.2, "dns", "nodata", phone=mac, request="AAAA lab.example"))
    state(event(1.3, "http", "redirect", phone=mac, action="get", request="/b"))
    state(event(1.4, "dhcp", "ignored", phone=mac, action="request", request="REQUEST"))
    assert state.rows[mac].errors == 0
    state(event(2.0, "tftp", "not-found", phone=mac, action="rrq", request="/c.cfg"))
    assert state.rows[mac].errors == 1


def test_board_names_the_last_unknown_clients_and_what_they_asked() -> None:
    state = board()
    for n in range(5):
        state(event(float(n), "dhcp", phone=f"00:11:22:33:44:{n:02x}", action="discover", request="DISCOVER"))
    state(event(9.0, "dns", client="198.51.100.7:5353", request="A www.example.com"))
    line = state.unknown_line()
    assert state.unknown == 6
    assert line.startswith("unknown clients, latest first: 198.51.100.7 (dns query A www.example.com)")
    assert "00:11:22:33:44:04 (dhcp discover DISCOVER)" in line and "00:11:22:33:44:00" not in line
    assert "198.51.100.7" in rendered(state, 200)


def test_kernel_drops_are_not_unknown_clients() -> None:
    state = BoardState()
    state(event(1.0, "dns", "overflow", action="kernel-drops", client=None, total=4))
    assert state.unknown == 0 and state.drops == {"dns": 4}


def phone_events(start: float) -> list[Event]:
    e = []
    e.append(event(start, "dhcp", action="discover", phone=MAC, request="DISCOVER"))
    e.append(event(start + 0.1, "dhcp", action="request", phone=MAC, request="REQUEST",
                   answer="ACK 192.0.2.9"))
    e.append(event(start + 1, "http", "fault", action="fault", phone=MAC, request="/Cisco/x.cfg",
                   answer="status 404", rule="own 404"))
    e.append(event(start + 1, "http", "fault", action="get", phone=MAC, request="/Cisco/x.cfg",
                   answer="404 (fault)"))
    return e


def test_timeline_has_human_times_a_section_per_boot_and_counts_a_fault_once() -> None:
    t0 = datetime.datetime(2026, 11, 30, 14, 0, 0).timestamp()
    events = phone_events(t0) + phone_events(t0 + 5)  # a DISCOVER after a lease: a new boot
    lines = story(events, MAC).lines()
    text = "\n".join(lines)
    assert len(boots(story(events, MAC).events)) == 2
    assert "--- boot 1 at 2026-11-30 14:00:00" in text and "--- boot 2 at 2026-11-30 14:00:05" in text
    assert "+  1.000s 14:00:01.000 http" in text
    assert str(int(t0)) not in text  # no epoch seconds
    assert "None" not in text
    assert "'own 404'" in text
    assert lines[-1].endswith("2 fault(s) hit it")  # one per firing, not two


def test_timeline_last_boot_and_since() -> None:
    t0 = datetime.datetime(2026, 11, 30, 14, 0, 0).timestamp()
    events = phone_events(t0) + phone_events(t0 + 600)  # ten minutes of silence: a new boot
    last = "\n".join(story(events, MAC).lines(last_boot=True))
    assert "boot 2" in last and "boot 1 " not in last and "10m 00s after the first" in last
    since = "\n".join(story(events, MAC).lines(since=t0 + 300))
    assert "boot 2" in since and "boot 1 " not in since
    none = story(events, MAC).lines(since=t0 + 3600)
    assert len(none) == 1 and "none since" in none[0]


def test_parse_since_reads_durations_and_times() -> None:
    now = datetime.datetime(2026, 11, 30, 15, 0, 0).timestamp()
    assert parse_since("10m", now) == now - 600
    assert parse_since("1h30m", now) == now - 5400
    assert parse_since("14:05", now) == datetime.datetime(2026, 11, 30, 14, 5).timestamp()
    assert parse_since("2026-11-29 08:00", now) == datetime.datetime(2026, 11, 29, 8, 0).timestamp()
    try:
        parse_since("yesterday-ish", now)
    except ValueError as exc:
        assert "neither a duration" in str(exc)
    else:
        raise AssertionError("a bad --since must be refused")
