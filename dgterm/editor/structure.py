"""Is a document still well formed, and does each rewritten span hold what it held? One
checker per known kind of file, from the standard library.

A model's candidate is checked *in its document*: the whole text with the candidate in
place is parsed, and the verdict says valid or not with the parser's own one-line
reason. Python uses ``compile`` (it also catches what ``ast`` lets through, like a
``return`` outside a function), JSON ``json``, TOML ``tomllib`` (Python 3.11+), XML and
SVG ``xml.etree``, HTML a tag-balance check over ``html.parser``, and YAML PyYAML when
it is installed. Files of any other kind get no verdict. Imports neither torch nor a UI.

A document that still parses is not enough: plain text in place of an SVG ``<path/>``
parses, and so does a Python expression span turned into ``1) + (2``. So each span is
classed by what it held in the original document (an ``expression``, an ``element``, a
``value``, or nothing in particular), and a candidate is valid only when each span's new
text is again one of those, parsed on its own (:class:`SpanCheck`).
"""

from __future__ import annotations

import ast
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


def checker(path) -> Checker | None:
    """``check`` bound to the kind of ``path``, or None when there is no checker for it."""
    kind = kind_of(path)
    return None if kind is None else Checker(kind)


@dataclass(frozen=True)
class Checker:
    """``check`` of one kind: called with a whole text; ``around`` a document's spans it also
    asks each span's new text to hold what the span held (:class:`SpanCheck`)."""

    kind: str

    def __call__(self, text: str) -> Verdict:
        return check(self.kind, text)

    def around(self, text: str, spans: list[tuple[int, int]]) -> SpanCheck:
        return SpanCheck(self.kind, text, spans)


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


# ------------------------------------------------------------------ what a span held
def char_offsets(text: str) -> Callable[[int, int], int]:
    """``ast``'s (line, UTF-8 byte column) of ``text`` -> its character offset."""
    starts, pos = [], 0
    lines = text.splitlines(keepends=True)
    for line in lines:
        starts.append(pos)
        pos += len(line)

    def char(line: int, col: int) -> int:
        return starts[line - 1] + len(lines[line - 1].encode("utf-8")[:col].decode("utf-8", "replace"))

    return char


def _python_expression(text: str, start: int, end: int) -> bool:
    """The span is exactly one expression node of the document (surrounding blanks aside)."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return False
    char = char_offsets(text)
    inner = text[start:end]
    a = start + len(inner) - len(inner.lstrip())
    b = end - len(inner) + len(inner.rstrip())
    for node in ast.walk(tree):
        if isinstance(node, ast.expr) and node.end_lineno is not None and node.end_col_offset is not None \
                and char(node.lineno, node.col_offset) == a and char(node.end_lineno, node.end_col_offset) == b:
            return True
    return False


def _is_python_expression(new: str) -> bool:
    """One expression alone; over several lines as inside brackets (two kinds of bracket, so
    that ``a) + (b`` does not pass for one)."""
    try:
        for wrapped in ([new.strip()] if "\n" not in new.strip() else [f"(\n{new}\n)", f"[\n{new}\n]"]):
            ast.parse(wrapped, mode="eval")
    except SyntaxError:
        return False
    return True


def _is_json_value(new: str) -> bool:
    try:
        json.loads(new)
    except ValueError:
        return False
    return True


def _is_toml_value(new: str) -> bool:
    import tomllib

    try:
        return list(tomllib.loads(f"v = {new.strip()}")) == ["v"]  # one value, no key after it
    except tomllib.TOMLDecodeError:
        return False


def _is_yaml_value(new: str) -> bool:
    import yaml

    try:
        loaded = yaml.safe_load(new)
    except yaml.YAMLError:
        return False
    return not isinstance(loaded, dict) or new.lstrip().startswith("{")  # a key: value line is not a value


def _is_xml_elements(new: str) -> bool:
    from xml.etree import ElementTree

    try:
        root = ElementTree.fromstring(f"<r>{new}</r>")
    except ElementTree.ParseError:
        return False
    return len(root) > 0 and not (root.text or "").strip() and not any((c.tail or "").strip() for c in root)


def _is_html_elements(new: str) -> bool:
    return new.strip().startswith("<") and new.strip().endswith(">") and check("html", new).valid


def _held_value(kind: str, text: str, start: int, end: int) -> bool:
    """The span holds a value there: it is one alone, and a plain value in its place still parses."""
    placeholder = {"json": "0", "toml": "0", "yaml": "0"}[kind]
    return VALUES[kind](text[start:end]) and check(kind, text[:start] + placeholder + text[end:]).valid


def _held_elements(kind: str, text: str, start: int, end: int) -> bool:
    return ELEMENTS[kind](text[start:end]) and check(kind, text[:start] + text[end:]).valid


VALUES: dict[str, Callable[[str], bool]] = {"json": _is_json_value, "toml": _is_toml_value, "yaml": _is_yaml_value}
ELEMENTS: dict[str, Callable[[str], bool]] = {"xml": _is_xml_elements, "html": _is_html_elements}
WHAT = {"expression": "an expression", "value": "a value", "element": "one or more whole elements"}


def held(kind: str, text: str, start: int, end: int) -> str | None:
    """What ``text[start:end]`` holds in a document of ``kind``: expression, value, element or None."""
    if start == end or not text[start:end].strip():
        return None
    if kind == "python":
        return "expression" if _python_expression(text, start, end) else None
    if kind in VALUES:
        return "value" if _held_value(kind, text, start, end) else None
    if kind in ELEMENTS:
        return "element" if _held_elements(kind, text, start, end) else None
    return None


def holds(kind: str, what: str, new: str) -> bool:
    """``new`` (a span's new text) is again ``what`` (expression, value, element)."""
    if what == "expression":
        return _is_python_expression(new)
    return (VALUES if what == "value" else ELEMENTS)[kind](new)


class SpanCheck:
    """A document of ``kind`` with spans: a candidate (its new text and the new text of each
    span) is valid when the document parses and each span holds what it held."""

    def __init__(self, kind: str, text: str, spans: list[tuple[int, int]]):
        self.kind = kind
        self.held = [held(kind, text, a, b) for a, b in sorted(spans)]

    def __call__(self, new_text: str, new_spans: list[str] | None = None) -> Verdict:
        verdict = check(self.kind, new_text)
        if not verdict.valid or new_spans is None:
            return verdict
        for i, (what, new) in enumerate(zip(self.held, new_spans)):
            if what is not None and not holds(self.kind, what, new):
                which = f"span {i + 1}" if len(self.held) > 1 else "the span"
                return Verdict(False, f"{which} held {WHAT[what]}, its new text is not {WHAT[what]}")
        return verdict
