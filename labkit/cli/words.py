"""Help that reads as words: `--loopback` (a flag shows no type), `--port-offset N`,
`--state DIR`, `[INVENTORY]`, instead of typer's `<bool>`, `<int>`, `<path>`.

Every labkit command is built with `WordsCommand` (and the top level with `WordsGroup`): it
gives each option without its own metavar a word for its type, flags none, and arguments
their upper-case name only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args, get_origin

from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

TYPE_WORDS: dict[type, str] = {int: "N", float: "NUMBER", Path: "PATH", str: "TEXT"}


def type_word(annotation: Any) -> str:
    """A word for an option's type: N, NUMBER, PATH, TEXT (a list: its element's word)."""
    if get_origin(annotation) is list:
        return type_word(get_args(annotation)[0])
    for arg in (annotation, *get_args(annotation)):
        if isinstance(arg, type) and arg in TYPE_WORDS:
            return TYPE_WORDS[arg]
    return "VALUE"


class WordsOption(TyperOption):
    def display_type_rich(self, ctx: Any) -> str | None:
        if self.metavar is not None:
            return self.metavar
        if self.is_flag:
            return None
        return type_word(self.type_descriptor.annotation)


class WordsArgument(TyperArgument):
    def display_type_rich(self, ctx: Any) -> str | None:
        return None  # the argument's name (INVENTORY, MAC, ...) says it

    @property
    def display_name_raw(self) -> str:
        return self.metavar if self.metavar is not None else (self.name or "").upper()


def _reword(params: list[Any]) -> None:
    for param in params:
        if type(param) is TyperOption:
            param.__class__ = WordsOption
        elif type(param) is TyperArgument:
            param.__class__ = WordsArgument


class WordsCommand(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)  # the help option and typer's own come in here too
        _reword(params)
        return params


class WordsGroup(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        _reword(params)
        return params
