"""The TR-069 scenarios are there and read; their session expectations say what differs."""

from __future__ import annotations

from labkit.scenarios import load_scenario, names
from labkit.scenarios.tr069 import check_sessions

TR069 = {"tr069-option43-value-change", "tr069-firmware-download", "tr069-connection-request",
         "tr069-wrong-acs-password", "tr069-retry-8005"}


def test_the_issue_s_tr069_scenarios_are_all_there_and_read() -> None:
    assert set(names()) >= TR069
    for name in TR069:
        data = load_scenario(name)
        assert "tr069" in data and data["expect"].get("sessions") is not None, name


def _session(events: list[str], outcome: str, *actions: str) -> dict[str, object]:
    exchanges = [{"action": a} for a in ("Inform", *actions, "cwmp")]
    return {"events": events, "outcome": outcome, "exchanges": exchanges}


def test_session_expectations() -> None:
    got = [_session(["1 BOOT", "0 BOOTSTRAP"], "ok", "SetParameterValues", "Download"),
           _session(["7 TRANSFER COMPLETE", "M Download"], "ok", "TransferComplete")]
    wanted = [{"events": ["0 BOOTSTRAP", "1 BOOT"], "requests": ["SetParameterValues", "Download"]},
              {"requests": [], "outcome": "ok"}]
    assert check_sessions(wanted, got) == []
    assert check_sessions([], got) == ["the ACS recorded 2 sessions, expected none"]
    assert check_sessions([{}, {}, {}], got) == ["the ACS recorded 2 sessions, expected at least 3"]
    assert check_sessions([{"outcome": "fault-8005", "evnts": []}], got) == [
        "session 1: unknown keys ['evnts']", "session 1: outcome ok, expected fault-8005"]
    assert check_sessions([{"requests": ["Download"]}], got) == [
        "session 1: requests ['SetParameterValues', 'Download'], expected ['Download']"]
