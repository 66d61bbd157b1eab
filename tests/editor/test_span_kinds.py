"""Validity by kind: a span that held an expression, an element or a value must hold one again,
not merely leave a document that parses; the reason says which span and what it held."""

from __future__ import annotations

import pytest

from dgterm.editor import structure
from dgterm.engine import tasks
from dgterm.engine.tasks import SpanRequest

SVG = '<svg xmlns="http://www.w3.org/2000/svg">\n  <path d="M0 0 L9 9"/>\n  <circle r="2"/>\n</svg>\n'
PATH = '<path d="M0 0 L9 9"/>'
PY = "def area(width, height):\n    return (width * height) + 1\n"
JSON = '{"name": "x", "size": 12}\n'
TOML = 'name = "x"\nsize = 12\n'
YAML = "name: x\nsize: 12\n"
HTML = "<ul>\n  <li><b>one</b></li>\n</ul>\n"


def verdict(kind, text, old, new):
    a = text.index(old)
    return structure.Checker(kind).around(text, [(a, a + len(old))])(text.replace(old, new, 1), [new])


@pytest.mark.parametrize("kind, text, old, good, bad", [
    ("xml", SVG, PATH, '<rect width="3" height="4"/>', "a path goes here"),
    ("python", PY, "width * height", "width + height", "width) * (height"),
    ("json", JSON, "12", "[1, 2]", '12, "extra": 3'),
    ("toml", TOML, "12", "[1, 2]", '12\nextra = 3'),
    ("yaml", YAML, "12", "[1, 2]", "12\nextra: 3"),
    ("html", HTML, "<b>one</b>", "<i>two</i>", "one"),
])
def test_a_span_holds_what_it_held(kind, text, old, good, bad):
    assert structure.check(kind, text.replace(old, bad, 1)).valid  # the document alone would pass
    assert verdict(kind, text, old, good).valid
    v = verdict(kind, text, old, bad)
    assert not v.valid and v.reason.startswith("the span held ") and "its new text is not" in v.reason


def test_a_span_of_no_particular_kind_asks_only_that_the_document_parses():
    assert verdict("python", PY, "area", "volume").valid  # part of a name: no node of its own
    assert verdict("json", JSON, "name", "title").valid  # inside a string
    assert not verdict("json", JSON, "name", 'ti"tle').reason.startswith("the span")  # the parser's reason


def test_two_spans_name_the_one_that_changed_kind():
    a, b = SVG.index(PATH), SVG.index('<circle r="2"/>')
    check = structure.Checker("xml").around(SVG, [(a, a + len(PATH)), (b, b + 15)])
    new = SVG.replace(PATH, "<g/>").replace('<circle r="2"/>', "text")
    assert check(new, ["<g/>", "text"]).reason.startswith("span 2 held one or more whole elements")


def test_an_svg_element_infilled_with_plain_text_is_not_valid(tiny):
    start = SVG.index(PATH)
    result = tasks.infill(tiny, SVG, [SpanRequest(start, start + len(PATH), 6)], tiny.defaults.replace(seed=2, steps=3),
                          candidates=3, check=structure.checker("drawing.svg")).collect()
    for cand in result.candidates:
        element = structure.holds("xml", "element", cand.spans[0])
        assert cand.valid == (element and structure.check("xml", cand.text).valid), cand.spans
        assert cand.valid or cand.reason
