"""Where every value of a parsed inventory was written: data path -> (line of the key, line of
the value), both 1-based lines of the rendered YAML.

Kept for the whole run (warnings and `labkit explain` name file:line), so it is stored compactly:
a dict of tuple paths cost ~250 bytes an entry (the tuple, its ints, a tuple of two lines), 91 MiB
for 100,000 phones. Here a path is split into its shape (the path with each integer replaced by
a marker: ("phones", #, "mac")) and its integers (the list indices, or integer keys such as DHCP
option codes); a shape with one integer keeps its entries in an array of 8-byte words indexed by
that integer (lists are filled in order, so it stays dense), anything else in a small dict.
"""

from __future__ import annotations

from array import array
from typing import Any

Path_ = tuple[Any, ...]
_INDEX = ("#",)  # the marker for an integer in a shape: a tuple, so no key of the data can equal it
_LINE_BITS = 32


def _split(path: Path_) -> tuple[Path_, tuple[int, ...]]:
    if not any(type(part) is int for part in path):
        return path, ()
    shape = tuple(_INDEX if type(part) is int else part for part in path)
    return shape, tuple(part for part in path if type(part) is int)


class Positions:
    """A mapping of data paths to (key line, value line), with the few operations loading needs."""

    __slots__ = ("_count", "_dense", "_sparse")

    def __init__(self) -> None:
        self._dense: dict[Path_, array[int]] = {}  # shape with one integer -> word per index (0: none)
        self._sparse: dict[tuple[Path_, tuple[int, ...]], int] = {}  # everything else -> packed word
        self._count = 0

    def _word(self, path: Path_) -> int:
        shape, ints = _split(path)
        if len(ints) == 1:
            column = self._dense.get(shape)
            if column is not None and 0 <= ints[0] < len(column) and column[ints[0]]:
                return column[ints[0]]
        return self._sparse.get((shape, ints), 0)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, tuple) and self._word(path) != 0

    def __getitem__(self, path: Path_) -> tuple[int, int]:
        word = self._word(path)
        if not word:
            raise KeyError(path)
        return word >> _LINE_BITS, word & ((1 << _LINE_BITS) - 1)

    def __setitem__(self, path: Path_, lines: tuple[int, int]) -> None:
        key_line, value_line = lines
        word = (key_line << _LINE_BITS) | value_line  # both >= 1: a stored word is never 0
        if path not in self:
            self._count += 1
        shape, ints = _split(path)
        if len(ints) == 1 and ints[0] >= 0 and (shape, ints) not in self._sparse:
            column = self._dense.setdefault(shape, array("Q"))
            if ints[0] < len(column):
                column[ints[0]] = word
                return
            if ints[0] == len(column):  # the next list item: the column grows in order
                column.append(word)
                return
        self._sparse[(shape, ints)] = word

    def setdefault(self, path: Path_, lines: tuple[int, int]) -> tuple[int, int]:
        if path not in self:
            self[path] = lines
        return self[path]

    def __len__(self) -> int:
        return self._count
