"""The view: moving around, the canvas panel's width, wrapping, colour themes (applied
live when a theme file changes) and the help screen."""

from __future__ import annotations

from textual import events
from textual.theme import Theme

from dgterm.config import config_dir
from dgterm.tui import keymap, themes
from dgterm.tui.host import Host
from dgterm.tui.screens.help import HelpScreen
from dgterm.tui.screens.prompt import PromptScreen

EDITOR_MIN, PANEL_MIN, PANEL_MAX = 86, 30, 56  # columns: the editor keeps room for 80 columns of code


class ViewActions(Host):
    canvas_wanted: bool | None = None  # ctrl+b's choice; None: shown when the terminal is wide enough
    theme_stamp: tuple = ()  # of the theme files, see check_themes

    def action_document_start(self) -> None:
        self.editor.move_cursor((0, 0), center=True)

    def action_document_end(self) -> None:
        self.editor.move_cursor(self.editor.document.end, center=True)

    def action_goto_line(self) -> None:
        last = self.editor.document.line_count

        def go(answer: str | None) -> None:
            if answer is None or not answer.strip():
                return
            try:
                line = int(answer.strip())
            except ValueError:
                self.notify(f"'{answer.strip()}' is not a line number; give a whole number from 1 to {last}.",
                            severity="error")
                return
            line = min(max(line, 1), last)
            self.editor.move_cursor((line - 1, 0), center=True)

        row = self.editor.cursor_location[0] + 1
        self.push_screen(PromptScreen("Go to line", f"A line number from 1 to {last} (now {row}).",
                                      placeholder=str(row)), go)

    def on_resize(self, event: events.Resize) -> None:
        self.fit_canvas(event.size.width)

    def fit_canvas(self, width: int) -> None:
        """The canvas panel takes what the editor does not need, up to PANEL_MAX columns; below
        PANEL_MIN it is hidden (unless ctrl+b asked for it) and the status bar says so."""
        room = width - EDITOR_MIN
        canvas = self.canvas
        canvas.styles.width = max(PANEL_MIN, min(PANEL_MAX, room))
        canvas.set_class(self.canvas_wanted is None and room < PANEL_MIN, "-narrow")
        canvas.set_class(self.canvas_wanted is False, "-hidden")
        self.refresh_status()

    def action_toggle_canvas(self) -> None:
        canvas = self.canvas
        self.canvas_wanted = canvas.has_class("-narrow") or canvas.has_class("-hidden")  # shown now if it was not
        self.fit_canvas(self.size.width)

    def action_toggle_wrap(self) -> None:
        self.editor.soft_wrap = not self.editor.soft_wrap

    def action_next_theme(self) -> None:
        names = sorted(n for n in self.available_themes if n.startswith("dgterm")) or sorted(self.available_themes)
        self.theme = names[(names.index(self.theme) + 1) % len(names)] if self.theme in names else names[0]
        self.notify(f"Theme: {self.theme}", timeout=2)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.keymap_overrides))

    def set_theme_and_keys(self) -> list[str]:
        """At start: the configured theme and the user's keymap; the problems as sentences."""
        found, problems = self.install_themes()
        if self.settings.theme in self.available_themes:
            self.theme = self.settings.theme
        else:
            problems.append(f"Theme '{self.settings.theme}' was not found; using dgterm-dark. "
                            f"Available: {', '.join(sorted(found))}.")
            self.theme = "dgterm-dark" if "dgterm-dark" in found else "textual-dark"
        self.theme_changed_signal.subscribe(self, lambda _theme: self.repaint())
        known = {a.id for a in keymap.ACTIONS}
        unknown = sorted(set(self.keymap_overrides) - known)
        if unknown:
            problems.append(f"Unknown binding id(s) in [keymap]: {', '.join(unknown)}; see the help screen (F1).")
        self.set_keymap({k: v for k, v in self.keymap_overrides.items() if k in known})
        return problems

    def install_themes(self) -> tuple[dict[str, Theme], list[str]]:
        """Register every theme file (built in, then the user's); the problems as sentences."""
        folder = config_dir() / "themes"
        self.theme_stamp = themes.stamp(folder)
        found, problems = themes.load_themes(folder)
        for theme in found.values():
            self.register_theme(theme)
        return found, problems

    def check_themes(self) -> None:
        """Timer: a theme file was edited, added or removed; apply it live."""
        if themes.stamp(config_dir() / "themes") == self.theme_stamp:
            return
        found, problems = self.install_themes()
        for problem in problems:
            self.notify(problem, title="Theme", severity="warning", timeout=10)
        if self.theme in found:
            self.refresh_css(animate=False)
            self.repaint()
