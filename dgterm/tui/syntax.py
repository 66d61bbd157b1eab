"""Syntax highlighting with Pygments (a dependency of rich, so always there).

Textual's own highlighting needs tree-sitter, an optional extra; Pygments covers code
and Markdown without it. :class:`Highlighter` lexes the whole text and keeps, per line,
(start column, end column, style name) triples that the editor view paints.
"""

from __future__ import annotations

from pygments.lexer import Lexer
from pygments.token import Comment, Generic, Keyword, Name, Number, Operator, String, Token

MAX_CHARS = 400_000  # larger texts are shown plain

# Most specific first: the first type a token is in wins.
STYLE_OF = (
    (Comment, "comment"), (String.Backtick, "code"), (String, "string"), (Number, "number"),
    (Keyword, "keyword"), (Name.Builtin, "builtin"), (Name.Function, "function"), (Name.Class, "class"),
    (Name.Decorator, "decorator"), (Operator.Word, "keyword"), (Operator, "operator"),
    (Generic.Heading, "heading"), (Generic.Subheading, "heading"), (Generic.Emph, "emphasis"),
    (Generic.Strong, "strong"), (Name.Tag, "link"), (Name.Attribute, "link"),
)


def lexer_for(path: str | None, text: str = "") -> Lexer | None:
    """A lexer for the file name (or None for plain text)."""
    from pygments.lexers import get_lexer_for_filename
    from pygments.util import ClassNotFound

    if not path:
        return None
    try:
        lexer = get_lexer_for_filename(path, text[:4096])
    except ClassNotFound:
        return None
    lexer.stripnl = lexer.stripall = False
    lexer.ensurenl = False
    return lexer


def _style_name(ttype) -> str | None:
    while ttype is not Token:
        for parent, name in STYLE_OF:
            if ttype is parent:
                return name
        ttype = ttype.parent
    return None


class Highlighter:
    def __init__(self, lexer: Lexer | None):
        self.lexer = lexer
        self.lines: dict[int, list[tuple[int, int, str]]] = {}

    @property
    def name(self) -> str:
        return self.lexer.name if self.lexer else "plain text"

    def update(self, text: str) -> None:
        self.lines = {}
        if self.lexer is None or len(text) > MAX_CHARS:
            return
        line, col = 0, 0
        names: dict = {}
        for ttype, value in self.lexer.get_tokens(text):
            name = names.get(ttype, 0)
            if name == 0:
                name = names[ttype] = _style_name(ttype)
            parts = value.split("\n")
            for i, part in enumerate(parts):
                if i:
                    line, col = line + 1, 0
                if name and part:
                    self.lines.setdefault(line, []).append((col, col + len(part), name))
                col += len(part)
