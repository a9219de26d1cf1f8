"""A bounded UDP flood on loopback between two ports of its own (a sink listens and drains, so no
ICMP comes back), for checking that the lab, its capture above all, keeps up under a foreign load
(bench/README.md, eighth round of issue 15).

    .venv/bin/python bench/loopback_flood.py SECONDS     # at most 50 million datagrams
"""

from __future__ import annotations

import contextlib
import socket
import sys
import time

LIMIT = 50_000_000  # datagrams, whatever SECONDS says
BURST = 1000  # datagrams sent between two drains of the sink


def flood(seconds: float) -> int:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
    sink.setblocking(False)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.connect(sink.getsockname())
    end, sent, payload = time.monotonic() + seconds, 0, b"q" * 60
    try:
        while time.monotonic() < end and sent < LIMIT:
            for _ in range(BURST):
                with contextlib.suppress(OSError):  # ECONNREFUSED never (the sink listens); ENOBUFS
                    sender.send(payload)
            sent += BURST
            with contextlib.suppress(BlockingIOError):
                while True:
                    sink.recv(2048)
    finally:
        sender.close()
        sink.close()
    return sent


if __name__ == "__main__":
    duration = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    count = flood(duration)
    print(f"flood: {count} datagrams in {duration:g} s, {count / duration:.0f}/s")
