"""The kit's own error types: everything we raise on bad input derives from LabkitError."""

from __future__ import annotations


class LabkitError(Exception):
    """Base of every error labkit raises on purpose."""


class CodecError(LabkitError, ValueError):
    """Bytes that do not decode, or a value that cannot be encoded, in a pure protocol core."""
