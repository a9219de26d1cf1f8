"""Read an inventory: render the Jinja template, parse the YAML, remember where every value came from.

An error in the inventory must name the line the user wrote. The YAML parser only knows
lines of the *rendered* text, so while rendering we tag each template line with an
invisible marker (`\\ue000<n>\\ue001` at its end), then strip the markers and keep a map
from rendered line to template line. A line that came out of a `{% for %}` loop maps to
the line of the loop body the user wrote. Lines that cannot be traced (generated entirely
by expressions) keep the rendered line and the error shows rendered context instead.
"""

from __future__ import annotations

import functools
import re
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import yaml
from jinja2.sandbox import SandboxedEnvironment

from labkit.errors import LabkitError
from labkit.inventory import yaml_events
from labkit.inventory.positions import Positions

MARK_OPEN = "\ue000"
MARK_CLOSE = "\ue001"
_MARK_RE = re.compile(f"{MARK_OPEN}(\\d+){MARK_CLOSE}")

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Location:
    """Where something is: in the template the user wrote, or only in the rendered YAML."""

    file: str
    line: int  # 1-based; in the template when `traced`, else in the rendered YAML
    traced: bool
    context: tuple[str, ...] = ()  # rendered YAML lines around an untraced line

    def __str__(self) -> str:
        if self.traced:
            return f"{self.file}:{self.line}"
        return f"{self.file} (rendered YAML line {self.line})"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an inventory, located and explained."""

    location: Location | None
    field: str  # dotted field path, e.g. "phones[3].mac"
    message: str  # what was wrong and what was expected
    severity: str = "error"  # "error" or "warning"

    def render(self, source_lines: tuple[str, ...] = ()) -> str:
        where = str(self.location) if self.location else "inventory"
        head = f"{where}: {self.severity}: {self.field}: {self.message}" if self.field else (
            f"{where}: {self.severity}: {self.message}"
        )
        lines = [head]
        loc = self.location
        if loc is not None:
            if loc.traced and source_lines and 1 <= loc.line <= len(source_lines):
                lines.append(_excerpt(source_lines, loc.line))
            elif loc.context:
                lines.append("  rendered YAML around it:")
                lines.extend(f"    {c}" for c in loc.context)
        return "\n".join(lines)


def _excerpt(source_lines: tuple[str, ...], line: int, around: int = 1) -> str:
    first, last = max(1, line - around), min(len(source_lines), line + around)
    out = []
    for n in range(first, last + 1):
        pointer = ">" if n == line else " "
        out.append(f"  {pointer}{n:5d} | {source_lines[n - 1]}")
    return "\n".join(out)


class InventoryError(LabkitError):
    """The inventory cannot be used; carries every problem found, each located."""

    def __init__(self, problems: list[Problem], source_lines: tuple[str, ...] = ()) -> None:
        self.problems = problems
        self.source_lines = source_lines
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(p.render(self.source_lines) for p in self.problems)


# ---------------------------------------------------------------------------------------------
# Template rendering with line markers


def _mark_template(source: str) -> str:
    """Append a line marker to every template line where one cannot change the output.

    Safe spots: after the last visible character of a line that is not inside a
    multi-line `{% %}`/`{{ }}`/`{# #}`, does not end with a block or comment tag
    (`-%}` acts on the newline there), and is not inside `{% raw %}`,
    `{% set %}...{% endset %}` or `{% filter %}` (whose text becomes a value that filters
    could measure or transform). Blank lines carry no YAML and stay unmarked.
    """
    out: list[str] = []
    depth_tag: str | None = None  # the closing delimiter we are waiting for, if inside a tag
    capture_depth = 0  # inside set-block / filter / raw
    block_re = re.compile(r"\{%-?\s*(\w+)")
    for number, line in enumerate(source.split("\n"), start=1):
        i = 0
        while i < len(line):
            if depth_tag is None:
                j = line.find("{", i)
                if j < 0 or j + 1 >= len(line):
                    break
                nxt = line[j + 1]
                if nxt in "%{#":
                    depth_tag = {"%": "%}", "{": "}}", "#": "#}"}[nxt]
                    if nxt == "%":
                        m = block_re.match(line, j)
                        if m:
                            word = m.group(1)
                            tag_end = line.find("%}", j)
                            body = line[j:tag_end] if tag_end >= 0 else line[j:]
                            # `{% set x = 1 %}` is inline; `{% set x %}` opens a capture block
                            if (word == "set" and "=" not in body) or word in ("filter", "raw"):
                                capture_depth += 1
                            elif word in ("endset", "endfilter", "endraw"):
                                capture_depth = max(0, capture_depth - 1)
                    i = j + 2
                else:
                    i = j + 1
            else:
                k = line.find(depth_tag, i)
                if k < 0:
                    break
                depth_tag = None
                i = k + 2
        stripped = line.rstrip()
        ends_in_tag = stripped.endswith("%}") or stripped.endswith("#}")
        if depth_tag is None and capture_depth == 0 and stripped and not ends_in_tag:
            # right after the last visible character: a `{%-` on a later line strips the
            # whitespace after it exactly as it would without the marker
            out.append(f"{stripped}{MARK_OPEN}{number}{MARK_CLOSE}{line[len(stripped):]}")
        else:
            out.append(line)
    return "\n".join(out)


def _split_markers(rendered: str) -> tuple[str, array[int]]:
    """Strip markers; return the clean text and, per rendered line, the template line (or 0)."""
    clean_lines: list[str] = []
    line_map = array("I")
    for raw in rendered.split("\n"):
        marks = _MARK_RE.findall(raw)
        clean_lines.append(_MARK_RE.sub("", raw))
        # the last marker on a rendered line is the template line whose newline ended it
        line_map.append(int(marks[-1]) if marks else 0)
    return "\n".join(clean_lines), line_map


def make_environment(search_path: Path | None) -> SandboxedEnvironment:
    """The sandboxed, strict environment used for the inventory and for profile templates."""
    loader = jinja2.FileSystemLoader(str(search_path)) if search_path else None
    env = SandboxedEnvironment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    return env


@dataclass
class Source:
    """A rendered inventory with its map back to the template."""

    file: str
    template: str  # the text the user wrote (its lines: `template_lines`, split when an error needs them)
    rendered: str
    line_map: array[int]  # per rendered line, its template line (0: not traced)
    data: Any = None
    # path -> (line of the key, line of the value) in rendered YAML, 1-based
    positions: Positions = field(default_factory=Positions)

    @functools.cached_property
    def template_lines(self) -> tuple[str, ...]:
        return tuple(self.template.split("\n"))

    @property
    def rendered_lines(self) -> tuple[str, ...]:
        return tuple(self.rendered.split("\n"))

    def locate_rendered(self, rendered_line: int) -> Location:
        """Location of a 1-based rendered line: traced to the template when possible."""
        idx = rendered_line - 1
        if 0 <= idx < len(self.line_map) and self.line_map[idx]:
            return Location(self.file, self.line_map[idx], traced=True)
        lines = self.rendered_lines
        first, last = max(0, idx - 2), min(len(lines), idx + 3)
        context = tuple(
            f"{'>' if n == idx else ' '}{n + 1:5d} | {lines[n]}" for n in range(first, last)
        )
        return Location(self.file, rendered_line, traced=False, context=context)

    def locate(self, path: Path_, *, key: bool = False) -> Location | None:
        """Location of the value (or the key) at a data path; falls back to the nearest parent."""
        probe = tuple(path)
        while True:
            if probe in self.positions:
                key_line, value_line = self.positions[probe]
                return self.locate_rendered(key_line if key else value_line)
            if not probe:
                return None
            probe = probe[:-1]


def render_template(text: str, file: str, variables: Mapping[str, Any] | None = None,
                    search_path: Path | None = None) -> Source:
    """Render the inventory template; Jinja errors become located InventoryErrors."""
    template_lines = tuple(text.split("\n"))
    env = make_environment(search_path)
    try:
        template = env.from_string(_mark_template(text))
        rendered = template.render(**dict(variables or {}))
    except jinja2.TemplateSyntaxError as exc:
        at = Location(file, exc.lineno or 1, traced=True)
        problem = Problem(at, "", f"template syntax error: {exc.message}")
        raise InventoryError([problem], template_lines) from None
    except jinja2.UndefinedError as exc:
        line = _template_line_from_traceback(exc)
        where = Location(file, line, traced=True) if line else None
        raise InventoryError(
            [Problem(where, "", f"template uses an undefined name: {exc.message}")], template_lines
        ) from None
    except jinja2.TemplateError as exc:
        line = _template_line_from_traceback(exc)
        where = Location(file, line, traced=True) if line else None
        raise InventoryError([Problem(where, "", f"template error: {exc}")], template_lines) from None
    clean, line_map = _split_markers(rendered)
    return Source(file=file, template=text, rendered=clean, line_map=line_map)


def _template_line_from_traceback(exc: BaseException) -> int | None:
    """Jinja rewrites tracebacks so that template frames carry the template line number."""
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


# ---------------------------------------------------------------------------------------------
# YAML with line marks


def parse_yaml(source: Source) -> Source:
    """Parse the rendered YAML into plain data, recording the line of every key and value."""
    constructor = yaml.SafeLoader("")  # only used to construct scalars with YAML 1.1 typing
    if yaml_events.available():
        try:
            found, data = yaml_events.read(source.rendered, source.positions, constructor)
            source.data = data if found else {}
            return source
        except (yaml_events.Fallback, yaml.YAMLError):
            source.positions = Positions()  # the node path below says what is wrong, or reads it
    try:
        node = _compose(source.rendered)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        what = exc.problem or "invalid YAML"
        if exc.context:
            what = f"{exc.context}: {what}"
        if "'\\t'" in what:
            what += " (a tab: YAML indents with spaces only; replace the tabs with spaces)"
        raise InventoryError(
            [Problem(source.locate_rendered(line), "", f"YAML syntax error: {what}")],
            source.template_lines,
        ) from None
    problems: list[Problem] = []
    if node is None:
        source.data = {}
        return source
    source.data = _build(node, (), source, constructor, problems)
    if problems:
        raise InventoryError(problems, source.template_lines)
    return source


def _compose(text: str) -> yaml.Node | None:
    """The node tree, by libyaml when PyYAML has it (~20x faster: 100,000 phones take minutes in
    pure Python); a document libyaml rejects is parsed again in pure Python, whose error
    messages (and tab hint) are the ones users see and the tests know."""
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            return yaml.compose(text, Loader=fast)
        except yaml.YAMLError:
            pass  # the pure parser below words the error (see the docstring)
    return yaml.compose(text, Loader=yaml.SafeLoader)


def _field_name(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _build(node: yaml.Node, path: Path_, source: Source, constructor: yaml.SafeLoader,
           problems: list[Problem]) -> Any:
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                problems.append(Problem(source.locate_rendered(key_node.start_mark.line + 1),
                                        _field_name(path), "YAML merge keys (<<) are not supported; "
                                        "use Jinja variables or macros instead"))
                continue
            key = _build(key_node, path, source, constructor, problems)
            if isinstance(key, (dict, list)):
                problems.append(Problem(source.locate_rendered(key_node.start_mark.line + 1),
                                        _field_name(path), "a mapping key must be a plain value"))
                continue
            child: Path_ = (*path, key)
            if key in result:
                problems.append(Problem(source.locate_rendered(key_node.start_mark.line + 1),
                                        _field_name(child),
                                        "duplicate key (the earlier value would be lost silently)"))
                continue
            source.positions[child] = (key_node.start_mark.line + 1, value_node.start_mark.line + 1)
            result[key] = _build(value_node, child, source, constructor, problems)
        source.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.line + 1))
        return result
    if isinstance(node, yaml.SequenceNode):
        source.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.line + 1))
        items = []
        for index, item in enumerate(node.value):
            child = (*path, index)
            source.positions[child] = (item.start_mark.line + 1, item.start_mark.line + 1)
            items.append(_build(item, child, source, constructor, problems))
        return items
    try:
        return constructor.construct_object(node, deep=True)
    except (yaml.constructor.ConstructorError, ValueError) as exc:  # `!!int nope`: a ValueError
        why = exc.problem if isinstance(exc, yaml.constructor.ConstructorError) else str(exc)
        problems.append(Problem(source.locate_rendered(node.start_mark.line + 1),
                                _field_name(path), f"cannot read value: {why}"))
        return None


def load_source(text: str, file: str, variables: Mapping[str, Any] | None = None,
                search_path: Path | None = None) -> Source:
    """Render and parse an inventory text."""
    return parse_yaml(render_template(text, file, variables, search_path))
