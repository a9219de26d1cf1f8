"""Compiled fast paths (labkit/native/_*.c). Each is optional: where no C compiler or Python
headers exist the build says so and goes on, and labkit runs the pure-Python path it falls back
to (also what LABKIT_NATIVE=0 selects; the tests run both)."""

from pathlib import Path

from setuptools import Extension, setup

NATIVE = sorted(Path("labkit/native").glob("_*.c"))

setup(ext_modules=[
    Extension(f"labkit.native.{source.stem}", [source.as_posix()], optional=True,
              depends=[header.as_posix() for header in sorted(Path("labkit/native").glob("*.h"))],
              extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra",
                                  "-Werror=implicit-function-declaration"])
    for source in NATIVE
])
