"""Compare a DHCP reply, option by option and byte for byte, with what the plan gives a phone."""

from __future__ import annotations

from labkit.plan.dhcp import OptionSet

MESSAGE_TYPE = 53


def expected_options(options: OptionSet, prl: list[int]) -> dict[int, bytes]:
    """What labkit puts in an ACK for a client asking `prl`: asked-for options, then forced ones."""
    return {p.code: p.payload for p in options.for_request(prl)}


def option_diff(expected: dict[int, bytes], got: dict[str, str], *, echoes: frozenset[int] = frozenset()
                ) -> list[str]:
    """One line per option that differs (missing, other bytes, or sent but not planned).

    `echoes` are codes the engine sends back from the client's own request (not a plan option)."""
    received = {int(code): bytes.fromhex(value) for code, value in got.items()}
    lines = []
    for code, payload in sorted(expected.items()):
        if code not in received:
            lines.append(f"option {code}: planned {payload.hex()} but not sent")
        elif received[code] != payload:
            lines.append(f"option {code}: planned {payload.hex()}\n{'':>12}sent    {received[code].hex()}")
    for code in sorted(set(received) - set(expected) - {MESSAGE_TYPE} - echoes):
        lines.append(f"option {code}: sent {received[code].hex()} but not planned")
    return lines
