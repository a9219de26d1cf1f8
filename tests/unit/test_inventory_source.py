"""The line markers that trace rendered YAML back to the template must never change the output."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.inventory.source import _mark_template, load_source, make_environment, render_template

# template fragments covering whitespace control, block capture, raw, macros and loops
FRAGMENTS = [
    "key: value\n",
    "  - item\n",
    "{%- set a = 3 %}\n",
    "{% set b = 'x' %}\n",
    "name: {{ 'v' ~ 1 }}\n",
    "{% for i in range(2) %}\n  - n{{ i }}\n{% endfor %}\n",
    "{%- for i in range(2) -%}\n  - m{{ i }}\n{%- endfor %}\n",
    "{% if true %}\nyes: 1\n{% else %}\nno: 1\n{% endif %}\n",
    "{% set captured %}\nline one\nline two\n{% endset %}len: {{ captured | length }}\n",
    "{% filter upper %}\nshout\n{% endfilter %}\n",
    "{% raw %}\n{{ not rendered }}\n{% endraw %}\n",
    "{% macro m(x) %}\nmac: {{ x }}\n{% endmacro %}{{ m(5) }}\n",
    "{# a comment\n spanning lines #}\n",
    "{{ 'multi\nline' }}\n",
    "text {{ 1 +\n 2 }} end\n",
    "   \n",
    "trail {%- if true %} x{% endif %}\n",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=8))
def test_markers_do_not_change_the_rendered_text(parts: list[str]) -> None:
    text = "".join(parts)
    env = make_environment(None)
    plain = env.from_string(text).render()
    traced = render_template(text, "t.yaml")
    assert traced.rendered == plain
    assert len(traced.line_map) == len(plain.split("\n"))


def test_lines_from_a_loop_map_to_the_loop_body() -> None:
    text = "items:\n{% for i in range(3) %}\n  - n: {{ i }}\n    k: v\n{% endfor %}\n"
    source = load_source(text, "t.yaml")
    assert source.data == {"items": [{"n": 0, "k": "v"}, {"n": 1, "k": "v"}, {"n": 2, "k": "v"}]}
    assert [source.locate(("items", i, "k")).line for i in range(3)] == [4, 4, 4]
    assert [source.locate(("items", i, "n")).line for i in range(3)] == [3, 3, 3]


def test_lines_inside_a_set_block_are_left_unmarked() -> None:
    text = "{% set x %}\nabc\n{% endset %}\nk: {{ x | length }}\n"
    marked = _mark_template(text)
    assert "\ue000" not in marked.split("\n")[1]
    assert render_template(text, "t.yaml").rendered == make_environment(None).from_string(text).render()
    assert "k: 5" in render_template(text, "t.yaml").rendered
