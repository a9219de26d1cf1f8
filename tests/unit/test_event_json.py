"""The journal's line for an event (`Event.to_json`) is exactly `json.dumps` of the event as a
plain dict, whichever path made it: the quick one for str fields and a float time, the general
one for anything else (labkit/events.py)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labkit.events import Event, _general_json


def reference(event: Event) -> str:
    return json.dumps({"time": event.time, "service": event.service, "client": event.client,
                       "phone": event.phone, "action": event.action, "request": event.request,
                       "answer": event.answer, "result": event.result, "detail": event.detail},
                      separators=(",", ":"), default=str)


CASES: list[Event] = [
    Event(1764524000.123456, "dhcp", "198.18.0.2:67", "00:0c:00:00:00:01", "discover",
          "DISCOVER 00:0c:00:00:00:01 via relay 198.18.0.2", "OFFER 198.18.1.0 to 198.18.0.2:67", "ok",
          {"ip": "198.18.1.0", "options": [53, 54, 1, 3, 15, 6, 51, 58, 59]}),
    Event(1.5, "dns", None, None, "query", 'quote " backslash \\ newline \n tab \t', "é ü \u2028 \x00", "ok",
          {}),
    Event(0, "kit", None, None, "start", "int time", "", "ok"),  # an int time: the general path
    Event(True, "kit", None, None, "start", "bool time", "", "ok"),  # type: ignore[arg-type]
    Event(math.nan, "kit", None, None, "x", "nan", "", "ok"),
    Event(math.inf, "kit", None, None, "x", "inf", "", "ok"),
    Event(-0.0, "kit", None, None, "x", "negative zero", "", "ok"),
    Event(2.5, "dns", 5, None, "x", "a client that is not a str", "", "ok"),  # type: ignore[arg-type]
    Event(2.5, "tftp", "127.0.0.1:9", None, "rrq", "/f", "1 byte", "ok",
          {"object": object(), "tuple": (1, 2), "nested": {"a": [None, True, 1e300]}, "é": "\ud800"}),
    Event(3.25, "http", None, None, "get", "/", "200", "ok", None),  # type: ignore[arg-type]
]


@pytest.mark.parametrize("event", CASES, ids=range(len(CASES)))
def test_the_line_is_json_dumps_of_the_plain_dict(event: Event) -> None:
    line = event.to_json()
    if "object" not in (event.detail or {}):  # an object's str carries its address: same either way
        assert line == reference(event) == _general_json(event)
    else:
        assert json.loads(line)["detail"]["tuple"] == [1, 2]
    assert "\n" not in line


def test_consecutive_events_of_one_time_and_then_another() -> None:
    events = [Event(t, "dhcp", None, None, "a", "r", "x", "ok") for t in (5.5, 5.5, 7.25, 5.5)]
    assert [e.to_json() for e in events] == [reference(e) for e in events]


texts = st.text(max_size=40)
details = st.dictionaries(st.text(max_size=8), st.one_of(st.none(), st.booleans(), st.integers(),
                                                          st.floats(allow_nan=False), texts,
                                                          st.lists(st.integers(), max_size=4)), max_size=4)


@given(st.floats(allow_nan=False, allow_infinity=False), texts, st.one_of(st.none(), texts),
       st.one_of(st.none(), texts), texts, texts, details)
def test_any_str_fields_give_the_json_dumps_text(when: float, service: str, client: str | None,
                                                 phone: str | None, request: str, answer: str,
                                                 detail: dict[str, Any]) -> None:
    event = Event(when, service, client, phone, "act", request, answer, "ok", detail)
    assert event.to_json() == reference(event)
