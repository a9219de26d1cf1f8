"""Validation errors in labkit's own words: what was expected, never the validation library's
phrasing ("Input should be ...", "Extra inputs are not permitted"). Used for the inventory
and for `--fault` rules alike."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`; did you mean 'model'?` when `word` is close to one of `choices`, else ""."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _limit(ctx: Mapping[str, Any], key: str) -> Any:
    return ctx.get(key, "?")


_PLAIN = {
    "missing": "this field is required but missing",
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number, not a fraction",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected text",
    "dict_type": "expected a mapping (key: value lines)",
    "model_type": "expected a mapping (key: value lines)",
    "model_attributes_type": "expected a mapping (key: value lines)",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "ip_v4_address": "expected an IPv4 address such as 10.42.0.1",
    "ip_v4_interface": "expected an IPv4 address with its prefix, such as 10.42.0.1/24",
    "ip_v4_network": "expected an IPv4 network such as 10.42.0.0/24",
    "none_required": "expected nothing here",
    "finite_number": "expected a finite number",
    "union_tag_invalid": "not one of the forms this field takes",
}


# validation errors whose message names a limit from their context: (our words, context key)
_WITH_LIMIT: dict[str, tuple[str, str]] = {
    "greater_than_equal": ("must be {} or more", "ge"),
    "greater_than": ("must be more than {}", "gt"),
    "less_than_equal": ("must be {} or less", "le"),
    "less_than": ("must be less than {}", "lt"),
    "literal_error": ("expected one of: {}", "expected"),
    "enum": ("expected one of: {}", "expected"),
    "string_pattern_mismatch": ("does not have the expected form (pattern {})", "pattern"),
    "string_too_short": ("too short: at least {} expected", "min_length"),
    "too_short": ("too short: at least {} expected", "min_length"),
    "string_too_long": ("too long: at most {} allowed", "max_length"),
    "too_long": ("too long: at most {} allowed", "max_length"),
}


def plain_message(kind: str, message: str, ctx: Mapping[str, Any] | None) -> str:
    """One validation error (its type, the library's message, its context) in labkit's words."""
    ctx = ctx or {}
    if kind in _PLAIN:
        return _PLAIN[kind]
    if kind in _WITH_LIMIT:
        template, key = _WITH_LIMIT[kind]
        return template.format(_limit(ctx, key))
    if kind == "extra_forbidden":
        return "unknown key"
    # our own validators' messages are already in our words
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
