"""Is a document still well formed? One checker per known kind of file, from the standard library.

A model's candidate is checked *in its document*: the whole text with the candidate in
place is parsed, and the verdict says valid or not with the parser's own one-line
reason. Python uses ``compile`` (it also catches what ``ast`` lets through, like a
``return`` outside a function), JSON ``json``, TOML ``tomllib`` (Python 3.11+), XML and
SVG ``xml.etree``, HTML a tag-balance check over ``html.parser``, and YAML PyYAML when
it is installed. Files of any other kind get no verdict. Imports neither torch nor a UI.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePath

SUFFIXES = {
    ".py": "python", ".pyi": "python", ".pyw": "python",
    ".json": "json", ".geojson": "json", ".ipynb": "json",
    ".toml": "toml",
    ".xml": "xml", ".svg": "xml", ".xsd": "xml", ".xsl": "xml", ".plist": "xml", ".xhtml": "xml",
    ".html": "html", ".htm": "html",
    ".yaml": "yaml", ".yml": "yaml",
}


NAMES = ("Python", "JSON", "TOML", "XML/SVG", "HTML", "YAML with PyYAML")  # what the checkers cover, for messages


@dataclass(frozen=True)
class Verdict:
    valid: bool
    reason: str = ""  # the parser's one line when not valid


def kind_of(path: str | PurePath | None) -> str | None:
    """The kind of a file by its name, if a checker for it is available here."""
    if path is None:
        return None
    kind = SUFFIXES.get(PurePath(path).suffix.lower())
    return kind if kind in available() else None


def available() -> set[str]:
    kinds = {"python", "json", "xml", "html"}
    try:
        import tomllib  # noqa: F401  (3.11+)
        kinds.add("toml")
    except ImportError:
        pass
    try:
        import yaml  # noqa: F401
        kinds.add("yaml")
    except ImportError:
        pass
    return kinds


def check(kind: str, text: str) -> Verdict:
    """Parse ``text`` as ``kind``; invalid comes with one line saying where and why."""
    try:
        CHECKERS[kind](text)
    except Exception as e:  # each parser has its own error type; all of them mean "not valid"
        return Verdict(False, _one_line(kind, e))
    return Verdict(True)


def checker(path) -> Callable[[str], Verdict] | None:
    """``check`` bound to the kind of ``path``, or None when there is no checker for it."""
    kind = kind_of(path)
    return None if kind is None else (lambda text: check(kind, text))


def _python(text: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escapes and the like are warnings, not errors
        compile(text, "<document>", "exec", dont_inherit=True)


def _toml(text: str) -> None:
    import tomllib

    tomllib.loads(text)


def _xml(text: str) -> None:
    from xml.etree import ElementTree

    ElementTree.fromstring(text.lstrip("\ufeff"))


def _yaml(text: str) -> None:
    import yaml

    for _ in yaml.safe_load_all(text):
        pass


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track",
        "wbr", "!doctype"}
OPTIONAL_END = {"p", "li", "dt", "dd", "tr", "td", "th", "thead", "tbody", "tfoot", "option", "colgroup",
                "rt", "rp", "optgroup", "html", "head", "body"}


class _TagBalance(HTMLParser):
    """HTML is forgiving by design; this catches what a person would call broken: a closing
    tag with no opening one, or elements left open at the end (void elements and those whose
    end tag is optional excepted)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[tuple[str, int]] = []

    def handle_starttag(self, tag, attrs):
        if tag not in VOID:
            self.open.append((tag, self.getpos()[0]))

    def handle_startendtag(self, tag, attrs):
        pass

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        names = [t for t, _ in self.open]
        if tag not in names:
            raise ValueError(f"closing tag </{tag}> with no <{tag}> open: line {self.getpos()[0]}")
        while self.open:
            name, line = self.open.pop()
            if name == tag:
                return
            if name not in OPTIONAL_END:
                raise ValueError(f"<{name}> from line {line} is closed by </{tag}>: line {self.getpos()[0]}")


def _html(text: str) -> None:
    parser = _TagBalance()
    parser.feed(text)
    parser.close()
    left = [(t, line) for t, line in parser.open if t not in OPTIONAL_END]
    if left:
        tag, line = left[-1]
        raise ValueError(f"<{tag}> from line {line} is never closed")


CHECKERS: dict[str, Callable[[str], object]] = {
    "python": _python, "json": json.loads, "toml": _toml, "xml": _xml, "html": _html, "yaml": _yaml}


def _one_line(kind: str, e: Exception) -> str:
    if isinstance(e, SyntaxError) and kind == "python":
        where = f"line {e.lineno}" + (f", column {e.offset}" if e.offset else "")
        return f"{e.msg} ({where})"
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
