"""Structure checks: each known kind says valid, or not with the parser's one line."""

from __future__ import annotations

import pytest

from dgterm.editor import structure


@pytest.mark.parametrize("kind, good, bad, reason", [
    ("python", "def f(x):\n    return x\n", "def f(x:\n    return x\n", "line 1"),
    ("python", "x = 1\n", "return 1\n", "'return' outside function"),
    ("json", '{"a": [1, 2]}', '{"a": [1, 2,]}', "line 1 column"),
    ("toml", 'a = 1\n[b]\nc = "d"\n', "a = \n", "Invalid value"),
    ("xml", '<svg><path d="M0 0"/></svg>', '<svg><path d="M0 0"></svg>', "mismatched tag: line 1"),
    ("html", "<div><p>one<p>two</div><br>", "<div><span>x</div>", "<span> from line 1 is closed by </div>"),
    ("html", "<ul><li>a</ul>", "<main>\n<div>\n</main>", "<div> from line 2"),
    ("html", "<p>x</p>", "<section>open", "<section> from line 1 is never closed"),
])
def test_each_kind_says_valid_or_why_not(kind, good, bad, reason):
    assert structure.check(kind, good) == structure.Verdict(True)
    verdict = structure.check(kind, bad)
    assert not verdict.valid and reason in verdict.reason and "\n" not in verdict.reason


def test_yaml_when_pyyaml_is_installed():
    pytest.importorskip("yaml")
    assert structure.check("yaml", "a: [1, 2]\n").valid
    verdict = structure.check("yaml", "a: [1, 2\n")
    assert not verdict.valid and "\n" not in verdict.reason


def test_kind_by_file_name():
    assert structure.kind_of("a/b.PY") == "python"
    assert structure.kind_of("icon.svg") == "xml"
    assert structure.kind_of("page.htm") == "html"
    assert structure.kind_of("notes.md") is None and structure.kind_of(None) is None
    assert structure.checker("notes.txt") is None
    assert structure.checker("x.json")("[1]").valid
