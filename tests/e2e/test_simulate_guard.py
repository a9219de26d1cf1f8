"""`labkit simulate` stays off networks nobody named: a lab that is not on loopback needs an
explicit segment (--interface IF or --join BRIDGE), never both, and --join is not for loopback.
Each refusal is one line on stderr and exit 1, before any socket, namespace or address exists."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from labkit.cli import app


@pytest.mark.parametrize(("args", "message"), [
    (["--against", "10.42.0.1"],
     "simulate: --against 10.42.0.1 is not on loopback: name the segment with --interface IF or --join "
     "BRIDGE (the phones never choose a network themselves)"),
    (["--against", "10.42.0.1", "--interface", "eth9", "--join", "br9"],
     "simulate: --interface or --join, not both"),
    (["--against", "127.0.0.1", "--join", "br9"],
     "simulate: --join is for a real segment, and --against names a lab on loopback"),
])
def test_refused_before_touching_any_network(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["simulate", *args])
    assert result.exit_code == 1, result.output
    assert message in " ".join(result.output.split())
