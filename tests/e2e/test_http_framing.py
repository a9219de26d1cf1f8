"""The kit's framing faults against the virtual phone, over HTTP and HTTPS, for every framing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_phone_against_lab import HEAD, PHONES, run_lab


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("framing", ["{version: '1.0'}", "{version: '1.0', no_length: true}",
                                     "{chunked: true, chunk_size: 5, chunk_extension: x, trailers: {X-A: b}}",
                                     "{no_length: true}"])
def test_every_framing_provisions(tmp_path: Path, scheme: str, framing: str) -> None:
    outcome, fetches, recorder = run_lab(tmp_path, HEAD + PHONES + f"""\
dhcp: {{options: {{provisioning_url: "{scheme}://prov.lab.example"}}}}
profiles: {{scheme: {scheme}}}
faults:
  - {{name: framed, match: {{path: "/*"}}, http: {framing}}}
""")
    assert outcome.provisioned, outcome
    framed = [e for e in recorder.events if e.action == "fault" and e.detail.get("rule") == "framed"]
    assert len(framed) >= 3  # bootstrap profile, phone profile, firmware
    assert all(result.status == 200 for _, result in fetches)


def test_chunked_is_never_sent_in_http10(tmp_path: Path) -> None:
    outcome, _, _ = run_lab(tmp_path, HEAD + PHONES + """\
dhcp: {options: {provisioning_url: "http://prov.lab.example"}}
faults:
  - {match: {path: "/Cisco/*"}, http: {chunked: true, version: "1.0"}}
""", rounds=1)
    # a 1.0 answer is never chunked: the kit sends it by length, and the phone is provisioned
    assert outcome.provisioned, outcome


@pytest.mark.parametrize("framing, error", [
    ("{chunked: true, chunk_size: 10, truncate: 25}", "connection closed inside the chunked body"),
    ("{version: '1.0', truncate: 7}", "bytes short of the Content-Length"),
])
def test_framed_answer_cut_short_is_a_clear_failure(tmp_path: Path, framing: str, error: str) -> None:
    outcome, _, _ = run_lab(tmp_path, HEAD + PHONES + f"""\
dhcp: {{options: {{provisioning_url: "http://prov.lab.example"}}}}
faults:
  - {{match: {{path: "/Cisco/*"}}, http: {framing}}}
""", rounds=1)
    assert not outcome.provisioned
    assert outcome.last_error is not None and outcome.last_error.startswith("C: HTTP: malformed response: ")
    assert error in outcome.last_error
