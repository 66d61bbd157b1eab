"""The run lifecycle's key gating, read from the keymap: no app needed."""

from __future__ import annotations

from dgterm.tui.keymap import ACTIONS, Mode, enabled


def test_each_mode_enables_the_keys_its_actions_name():
    assert enabled("infill", Mode.EDIT) and not enabled("infill", Mode.RUNNING)
    assert enabled("accept", Mode.REVIEW) and not enabled("accept", Mode.REVIEW, modal=True)
    assert not enabled("accept", Mode.EDIT) and not enabled("save", Mode.REVIEW)
    assert all(enabled("cancel", m) for m in (Mode.RUNNING, Mode.REVIEW, Mode.LENS))
    assert not enabled("cancel", Mode.EDIT) and enabled("cancel", Mode.EDIT, lens_shown=True)
    assert not enabled("cancel", Mode.RUNNING, modal=True)
    assert all(enabled("quit", m) and enabled("help", m) for m in Mode)  # everywhere
    assert enabled("command_palette", Mode.RUNNING)  # Textual's own actions are not gated


def test_every_action_works_in_some_mode_and_modes_compare_as_text():
    assert all(a.modes for a in ACTIONS)
    assert Mode.REVIEW == "review" and f"{Mode.EDIT}" == "edit"
