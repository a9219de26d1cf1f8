"""labkit/native/_tftp_pool.c: threads that run _tftp.serve's loop with no Python on their way."""

from typing import Any

def start(max_threads: int, prestart: int, /) -> Any:
    """A pool (a capsule): at most max_threads threads, prestart of them started now (returns once
    they run their loop, 2 s at most)."""

def submit(pool: Any, token: object, kwargs: dict[str, Any], /) -> None:
    """Run _tftp.serve(**kwargs) on a pool thread (arguments checked here: ValueError/TypeError)."""

def collect(pool: Any, /) -> list[tuple[object, Any]]:
    """(token, serve's result or the exception it raised) of the runs finished since last time."""

def fileno(pool: Any, /) -> int:
    """A descriptor readable when runs have finished (collect drains it)."""

def threads(pool: Any, /) -> int:
    """Threads started so far."""

def looping(pool: Any, /) -> int:
    """Threads that reached their loop (start returns once every prestarted one has)."""

def close(pool: Any, /) -> None:
    """Join the threads (every loop must have returned: the service's stop pipe does that)."""
