"""The command palette (ctrl+p): every editor action, searchable by name."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.markup import escape

from dgterm.tui.keymap import ACTIONS, shown_keys


class EditorCommands(Provider):
    def _entries(self):
        app = self.app
        keymap = getattr(app, "keymap_overrides", {})
        for a in ACTIONS:
            # escaped: "[f4]" is text here, not a markup tag (it vanished before)
            yield a, escape(f"{a.title}  [{shown_keys(a, keymap)}]"), partial(app.run_action, a.action)

    async def discover(self) -> Hits:
        for a, title, run in self._entries():
            yield DiscoveryHit(title, run, help=a.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for a, title, run in self._entries():
            score = max(matcher.match(title), matcher.match(a.help) * 0.5)
            if score > 0:
                yield Hit(score, matcher.highlight(title), run, help=a.help)
