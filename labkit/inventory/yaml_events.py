"""The rendered YAML read from libyaml's event stream straight into plain data and positions.

`yaml.compose` first builds a node tree of the whole document, each node with two Mark objects:
~1 kB a node, about half a gigabyte at 100,000 phones, all alive at once. Reading events instead
keeps one event at a time. This is the fast path for a clean document only: at the first thing
the node path reports or handles differently (an alias, a merge key, a key that is not a plain
value, a duplicate key, a value that cannot be constructed, more than one document) it gives up
with `Fallback`, and the caller reads the document the node way, which words the problems.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

from labkit.inventory.positions import Positions

Path_ = tuple[Any, ...]
STR = "tag:yaml.org,2002:str"
MERGE = "tag:yaml.org,2002:merge"


class Fallback(Exception):
    """The document needs the node path (which handles it or says what is wrong)."""


def available() -> bool:
    return getattr(yaml, "CSafeLoader", None) is not None


def read(text: str, positions: Positions, constructor: yaml.SafeLoader) -> tuple[bool, Any]:
    """(whether the stream had a document, its data); Fallback when the node path must do it.
    A syntax error is yaml.YAMLError, as from the node path."""
    events: Iterator[yaml.Event] = yaml.parse(text, Loader=yaml.CSafeLoader)
    next(events)  # stream start
    first = next(events)
    if isinstance(first, yaml.StreamEndEvent):
        return False, None
    data = _value(next(events), events, (), positions, constructor)
    next(events)  # document end
    if not isinstance(next(events), yaml.StreamEndEvent):
        raise Fallback("more than one document")
    return True, data


def _scalar(event: yaml.ScalarEvent, constructor: yaml.SafeLoader) -> tuple[str, Any]:
    tag = event.tag
    if tag is None or tag == "!":
        tag = constructor.resolve(yaml.ScalarNode, event.value, event.implicit)
    if tag == STR:
        return tag, event.value
    node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
    try:
        return tag, constructor.construct_object(node, deep=True)
    except Exception:  # whatever the node path then does with it, as before
        raise Fallback("a value that cannot be constructed") from None
    finally:
        constructor.constructed_objects.pop(node, None)  # the constructor would keep every node


def _value(event: yaml.Event, events: Iterator[yaml.Event], path: Path_, positions: Positions,
           constructor: yaml.SafeLoader) -> Any:
    if isinstance(event, yaml.ScalarEvent):
        return _scalar(event, constructor)[1]
    if isinstance(event, yaml.SequenceStartEvent):
        line = event.start_mark.line + 1
        positions.setdefault(path, (line, line))
        items: list[Any] = []
        while True:
            item = next(events)
            if isinstance(item, yaml.SequenceEndEvent):
                return items
            child = (*path, len(items))
            positions[child] = (item.start_mark.line + 1, item.start_mark.line + 1)
            items.append(_value(item, events, child, positions, constructor))
    if isinstance(event, yaml.MappingStartEvent):
        return _mapping(event, events, path, positions, constructor)
    raise Fallback(type(event).__name__)  # an alias


def _mapping(start: yaml.MappingStartEvent, events: Iterator[yaml.Event], path: Path_,
             positions: Positions, constructor: yaml.SafeLoader) -> dict[Any, Any]:
    result: dict[Any, Any] = {}
    while True:
        key_event = next(events)
        if isinstance(key_event, yaml.MappingEndEvent):
            line = start.start_mark.line + 1
            positions.setdefault(path, (line, line))
            return result
        if not isinstance(key_event, yaml.ScalarEvent):
            raise Fallback("a key that is not a plain value")
        tag, key = _scalar(key_event, constructor)
        if tag == MERGE or key in result:
            raise Fallback("a merge key or a duplicate key")
        value_event = next(events)
        child = (*path, key)
        positions[child] = (key_event.start_mark.line + 1, value_event.start_mark.line + 1)
        result[key] = _value(value_event, events, child, positions, constructor)
