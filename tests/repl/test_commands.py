"""Slash commands and their completion (no generation: the tiny model is only loaded)."""

from __future__ import annotations

import re

from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.enums import EditingMode

from dgterm.repl import slash


def _complete(text):
    completer = slash.SlashCompleter()
    return [c.text for c in completer.get_completions(Document(text, len(text)), CompleteEvent(completion_requested=True))]


def test_completion_of_names_choices_and_paths(tmp_path, monkeypatch):
    assert _complete("/st") == ["steps", "stats"]
    assert _complete("/mode ") == ["chat", "plain"] and _complete("/mode p") == ["plain"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "trace-a.jsonl").write_text("")
    assert _complete("/trace tra") == ["ce-a.jsonl"]
    assert _complete("hello /st") == [] and _complete("/nosuch x") == []


def test_sampler_settings_keys_and_help(run_repl, tiny):
    r = run_repl(["/steps 3", "/entropy 0.2", "/temp 0.9 0.3", "/canvases 2", "/seed 7", "/settings", "/keys vi",
                  "/mode plain", "/help", "/thinking", "/exit", "never read"], lm=tiny)
    params = r.repl.params()
    assert (params.steps, params.entropy_bound, params.t_max, params.t_min, params.seed) == (3, 0.2, 0.9, 0.3, 7)
    assert params.canvases == 2 and params.max_new_tokens == 2 * tiny.canvas_length
    assert re.search(r"^steps +3 \(set here\)", r.out, re.M)
    assert r.repl.session.editing_mode == EditingMode.VI and r.repl.mode == "plain"
    assert all(cmd.usage in r.out for cmd in slash.COMMANDS.values())
    assert "Nothing has run yet; send a prompt first." in r.err
    assert r.repl.last is None  # /exit stopped before "never read"


def test_bad_temperatures_are_refused_and_nothing_changes(run_repl, tiny):
    r = run_repl(["/temp 0.2 0.5", "/entropy -1"], "--keys", "vi", lm=tiny)
    assert "Not changed: temperatures need 0 <= t_min < t_max." in r.err
    assert "Not changed: entropy bound must be greater than 0." in r.err
    assert r.repl.overrides == {} and r.repl.session.editing_mode == EditingMode.VI
