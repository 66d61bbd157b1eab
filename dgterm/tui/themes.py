"""Colour themes as data: TOML files turned into ``textual.theme.Theme`` objects.

Themes come from the ``themes/`` folder of the repository (``dgterm/themes`` inside a
wheel) and then from ``<config dir>/themes``, where a user's file of the same name
wins. The editor's own colours (token states, entropy, spans, lens) and the syntax
colours travel as theme variables (``dg-*``, ``dg-syntax-*``), so any Textual theme
works too: missing colours fall back to dgterm-dark's.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

from rich.style import Style
from textual.color import Color
from textual.theme import Theme

from dgterm.errors import InputError
from dgterm.resources import shipped

THEME_KEYS = {f.name for f in fields(Theme)} - {"name", "variables"}
DEFAULTS = {
    "noise": "#6c7086", "tentative": "#f9e2af", "accepted": "#a6e3a1", "pinned": "#7f849c",
    "entropy-low": "#1e3a2a", "entropy-high": "#5a1e2a", "span": "#2d3b5e", "span-edge": "#89b4fa",
    "lens-low": "#23262e", "lens-high": "#b8434f", "deleted": "#f38ba8", "inserted": "#a6e3a1",
    "doubted": "#fab387",
}
DIFF_STATES = ("kept", "deleted", "inserted", "deleted-here", "inserted-here")  # a candidate's hunks in review
ENTROPY_FULL = 3.0  # nats at which the entropy tint is strongest


def theme_dirs(user_dir: Path | None = None) -> list[Path]:
    """Where themes are looked for, lowest priority first."""
    dirs = [d for d in (shipped("themes"),) if d.is_dir()]
    if user_dir is not None:
        dirs.append(user_dir)
    return dirs


def load_theme(path: Path) -> Theme:
    """One theme file; an InputError with a one-sentence reason if it is not valid."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise InputError(f"Theme {path} cannot be read ({e}); fix or remove it.") from None
    own, syntax = data.pop("dgterm", {}), data.pop("syntax", {})
    name = data.pop("name", path.stem)
    unknown = sorted(set(data) - THEME_KEYS)
    if unknown:
        raise InputError(f"Theme {path} has unknown key(s) {', '.join(unknown)}; remove them.")
    if "primary" not in data:
        raise InputError(f"Theme {path} has no 'primary' colour; add one.")
    variables = {f"dg-{k}": str(v) for k, v in own.items()}
    variables |= {f"dg-syntax-{k}": str(v) for k, v in syntax.items()}
    try:
        for key in ("primary", "secondary", "accent", "foreground", "background", "surface", "panel"):
            if key in data:
                Color.parse(data[key])
        for value in own.values():
            Color.parse(value)
        for value in syntax.values():
            Style.parse(value)
        return Theme(name=name, variables=variables, **data)
    except Exception as e:  # noqa: BLE001 - colour parse errors come in several types
        raise InputError(f"Theme {path} has a bad colour ({e}); fix it.") from None


def stamp(user_dir: Path | None = None) -> tuple:
    """Changes when a theme file is added, removed or edited (for live reloading)."""
    out = []
    for folder in theme_dirs(user_dir):
        for path in sorted(folder.glob("*.toml")):
            try:
                st = path.stat()
            except OSError:
                continue
            out.append((str(path), st.st_mtime_ns, st.st_size))
    return tuple(out)


def load_themes(user_dir: Path | None = None) -> tuple[dict[str, Theme], list[str]]:
    """All themes by name, and a message for each file that could not be used."""
    themes, problems = {}, []
    for folder in theme_dirs(user_dir):
        for path in sorted(folder.glob("*.toml")):
            try:
                theme = load_theme(path)
            except InputError as e:
                problems.append(str(e))
                continue
            themes[theme.name] = theme
    return themes, problems


@dataclass(frozen=True)
class Palette:
    """Rich styles for the editor's overlays, from a theme's variables."""

    colors: tuple
    syntax: tuple

    def color(self, key: str) -> Color:
        return _parse(dict(self.colors).get(key) or DEFAULTS[key])

    @lru_cache(maxsize=4096)  # noqa: B019 - palettes are few and immutable
    def token(self, state: str, entropy: float) -> Style:
        if state in DIFF_STATES:
            return self.hunk(state)
        if state == "doubted":  # a draft under the lens (dgterm.tui.actions.draft_lens)
            return self.doubted()
        if state.startswith("lens"):
            return self.lens(int(state[4:]))
        t = min(1.0, max(0.0, entropy / ENTROPY_FULL))
        bg = self.color("entropy-low").blend(self.color("entropy-high"), t)
        fg = self.color(state if state in DEFAULTS else "accepted")
        return Style(color=fg.rich_color, bgcolor=bg.rich_color, dim=state == "noise", italic=state == "noise")

    @lru_cache(maxsize=16)  # noqa: B019
    def hunk(self, state: str) -> Style:
        """A hunk's old text struck out, its new text in colour; the current hunk reversed."""
        kind, _, here = state.partition("-")
        if kind == "kept":
            return Style(bgcolor=self.color("span").rich_color)
        return Style(color=self.color(kind).rich_color, strike=kind == "deleted", reverse=bool(here),
                     bold=bool(here))

    @lru_cache(maxsize=64)  # noqa: B019
    def span(self, insertion: bool = False) -> Style:
        edge = self.color("span-edge").rich_color
        if insertion:
            return Style(bgcolor=edge, color=self.color("span").rich_color)
        return Style(bgcolor=self.color("span").rich_color, underline=True)

    @lru_cache(maxsize=256)  # noqa: B019
    def lens(self, level: int) -> Style:
        """``level`` 0..10: how surprising the token is."""
        c = self.color("lens-low").blend(self.color("lens-high"), level / 10)
        return Style(bgcolor=c.rich_color)

    @lru_cache(maxsize=4)  # noqa: B019
    def doubted(self) -> Style:
        """A token the lens gives less than the doubt threshold: what a refine draws again."""
        return Style(bgcolor=self.color("doubted").rich_color, color=self.color("span").rich_color, bold=True)

    @lru_cache(maxsize=64)  # noqa: B019
    def syntax_style(self, name: str) -> Style | None:
        value = dict(self.syntax).get(name)
        return Style.parse(value) if value else None


def lens_level(prob: float, top_prob: float = 1.0) -> int:
    """0 (the token is the model's own pick) .. 10 (the model prefers another token
    ~10,000 times more): how much the model would change it, relative to its best guess."""
    ratio = max(top_prob, prob) / max(prob, 1e-12)
    return max(0, min(10, round(math.log10(ratio) * 2.5)))


def palette_of(theme: Theme) -> Palette:
    v = theme.variables
    colors = tuple(sorted((k[3:], val) for k, val in v.items()
                          if k.startswith("dg-") and not k.startswith("dg-syntax-")))
    syntax = tuple(sorted((k[10:], val) for k, val in v.items() if k.startswith("dg-syntax-")))
    if not syntax:
        syntax = _fallback_syntax()
    return Palette(colors, syntax)


@lru_cache(maxsize=1)
def _fallback_syntax() -> tuple:
    for folder in theme_dirs():
        path = folder / "dgterm-dark.toml"
        if path.exists():
            return tuple(sorted(tomllib.loads(path.read_text(encoding="utf-8")).get("syntax", {}).items()))
    return ()


@lru_cache(maxsize=256)
def _parse(value: str) -> Color:
    return Color.parse(value)
