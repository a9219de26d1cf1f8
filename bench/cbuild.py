"""Compile a bench's C program on demand (gcc -O2), cached by the source's hash.

Used by bench/storm_c.py (storm_phones.c) and bench/dns_bench.py (dns_load.c): the binary sits in
$XDG_CACHE_HOME/labkit-bench (or the temp dir), one per source text, so an edit rebuilds it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path


def build(source: Path) -> Path:
    """The compiled `source` (a single-file C program), named after its stem and hash."""
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = Path(base) / "labkit-bench"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        folder = Path(tempfile.gettempdir())
    binary = folder / f"{source.stem}-{digest}"
    if not binary.exists():
        partial = binary.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run(["gcc", "-O2", "-std=gnu11", "-Wall", "-Wextra", "-o", str(partial), str(source)],
                       check=True)
        partial.replace(binary)  # atomic: a concurrent build never runs a half-written binary
    return binary
