"""Load an inventory file (or the embedded default) into a validated, cross-checked Inventory."""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from labkit.inventory.dhcp import Options
from labkit.inventory.model import OPTION_FIELDS, UNION_TAGS, Inventory
from labkit.inventory.source import (
    InventoryError,
    Location,
    Path_,
    Problem,
    Source,
    load_source,
)
from labkit.inventory.wording import did_you_mean, plain_message

DEFAULT_NAME = "lab.yaml"
_OPTION_IN_MESSAGE = re.compile(r"^option (\d+) ")


@dataclass
class LoadedInventory:
    """A valid inventory with where it came from (for paths, templates and later warnings)."""

    inventory: Inventory
    source: Source
    base_dir: Path  # folder the inventory's relative paths are read from
    embedded: bool = False
    warnings: list[Problem] = field(default_factory=list)

    def locate(self, path: Path_, *, key: bool = False) -> Location | None:
        return self.source.locate(path, key=key)

    @property
    def templates_dir(self) -> Path:
        return self.base_dir / self.inventory.lab.templates_dir

    @property
    def firmware_dir(self) -> Path:
        return self.base_dir / self.inventory.lab.firmware_dir


def default_lab_dir() -> Path:
    """Folder of the embedded default lab (lab.yaml, templates/, firmware/)."""
    return Path(str(resources.files("labkit") / "default_lab"))


def load(path: Path | None = None, variables: dict[str, Any] | None = None) -> LoadedInventory:
    """Load and validate `path` (None: the embedded default lab). Raises InventoryError."""
    from labkit.inventory.checks import cross_check  # checks need the model; keep import light

    embedded = path is None
    if path is None:
        path = default_lab_dir() / DEFAULT_NAME
    display = "<embedded default>/lab.yaml" if embedded else str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InventoryError([Problem(None, "", f"no inventory file at {path}")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError([Problem(None, "", f"cannot read {path}: {exc}")]) from None
    source = load_source(text, display, variables, search_path=path.parent)
    inventory = share_defaults(validate(source))
    loaded = LoadedInventory(inventory, source, path.parent, embedded=embedded)
    errors, warnings = cross_check(loaded)
    if errors:
        raise InventoryError(errors + warnings, source.template_lines)
    loaded.warnings = warnings
    source.data = None  # the parsed YAML, a second copy of the inventory: validated, no longer read
    return loaded


def validate(source: Source) -> Inventory:
    """Validate parsed data against the model; every error names its line and field."""
    if not isinstance(source.data, dict):
        loc = source.locate(())
        raise InventoryError(
            [Problem(loc, "", "expected a mapping with `lab:`, `phones:`, ... at the top level")],
            source.template_lines,
        )
    try:
        return Inventory.model_validate(source.data)
    except ValidationError as exc:
        problems = [_problem(source, error) for error in exc.errors()]
        raise InventoryError(_dedupe(problems), source.template_lines) from None


def share_defaults(inventory: Inventory) -> Inventory:
    """Phones held for the whole run share what is the same in all of them: the models are
    frozen, so one empty `Options`, one set of the fields given and one string per model name
    serve every phone that has them (~1.6 -> ~0.5 kB a phone: 11 MiB of 16 at 10,000 phones)."""
    empty = Options()
    field_sets: dict[frozenset[str], set[str]] = {}
    names: dict[str, str] = {}
    for phone in inventory.phones:
        if phone.options == empty:
            object.__setattr__(phone, "options", empty)
        object.__setattr__(phone, "model", names.setdefault(phone.model, phone.model))
        given = phone.__pydantic_fields_set__
        object.__setattr__(phone, "__pydantic_fields_set__", field_sets.setdefault(frozenset(given), given))
    return inventory


def _clean_loc(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """Drop pydantic's union and validator tags; keep the path as the user wrote it."""
    out: list[str | int] = []
    for part in loc:
        if isinstance(part, str) and (part in UNION_TAGS or "[" in part or part.startswith("function-")):
            continue
        out.append(part)
    return tuple(out)


def field_name(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        if isinstance(part, int) and not (text.endswith("options") or text.endswith("suboptions")):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _user_path(source: Source, path: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """Map a model path back to the keys the user wrote (option names may have been codes)."""
    out: list[str | int] = []
    for part in path:
        candidate = (*out, part)
        if candidate not in source.positions and isinstance(part, str) and part in OPTION_FIELDS:
            code = OPTION_FIELDS[part]
            for alt in (code, str(code)):
                if (*out, alt) in source.positions:
                    candidate = (*out, alt)
                    break
        if part == "other" and out and out[-1] == "options":
            continue  # unknown codes were moved under `other` by the model
        out = list(candidate)
    return tuple(out)


def _problem(source: Source, error: Any) -> Problem:
    path = _clean_loc(error["loc"])
    kind = error["type"]
    user_path = _user_path(source, path)
    message = plain_message(kind, error["msg"], error.get("ctx"))
    if kind == "extra_forbidden":
        allowed = allowed_keys(path[:-1])
        message = f"unknown key {path[-1]!r}" + did_you_mean(str(path[-1]), allowed)
        if allowed:
            message += " (expected one of: " + ", ".join(allowed) + ")"
        location = source.locate(user_path, key=True)
    elif kind == "missing":
        location = source.locate(user_path[:-1], key=True)
    else:
        value = error.get("input")
        # a whole mapping or list that is wrong as a whole: point at its key, not its first child
        location = source.locate(user_path, key=isinstance(value, (dict, list)))
        named = _OPTION_IN_MESSAGE.match(message)
        if named and path and path[-1] == "options":
            code = int(named.group(1))
            for key in (code, str(code)):
                if (*user_path, key) in source.positions:
                    location = source.locate((*user_path, key), key=True)
        if value is not None and not isinstance(value, (dict, list)) and kind != "value_error":
            message += f" (got {value!r})"
    return Problem(location, field_name(path), message)


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[str, str]] = set()
    out = []
    for p in problems:
        key = (str(p.location), p.field + p.message)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def allowed_keys(path: tuple[str | int, ...], root: type[BaseModel] = Inventory) -> list[str]:
    """Field names of the model found at `path` (from `root`), to suggest what the user meant."""
    model: Any = root
    for part in path:
        model = _descend(model, part)
        if model is None:
            return []
    model = _unwrap_model(model)
    if model is None:
        return []
    names = [n for n in model.model_fields if n != "other"]
    return names


def _unwrap_model(tp: Any) -> type[BaseModel] | None:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap_model(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            found = _unwrap_model(arg)
            if found is not None and found.__name__ != "Raw":
                return found
    return None


def _descend(tp: Any, part: str | int) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _descend(typing.get_args(tp)[0], part)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            found = _descend(arg, part)
            if found is not None:
                return found
        return None
    if origin in (list, tuple):
        return typing.get_args(tp)[0] if isinstance(part, int) else None
    if origin is dict:
        return typing.get_args(tp)[1]
    model = _unwrap_model(tp)
    if model is not None and isinstance(part, str) and part in model.model_fields:
        return model.model_fields[part].annotation
    return None
