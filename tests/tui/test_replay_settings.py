"""A trace whose sampler settings are not valid replays on the defaults and says why."""

from __future__ import annotations

import json

from dgterm.tui.app import make_app

from tests.helpers.tui import SIZE, TRACE, settle


async def test_bad_sampler_settings_in_a_trace_are_one_sentence_and_the_replay_goes_on(tmp_path):
    lines = TRACE.read_text().splitlines(keepends=True)
    header = json.loads(lines[0])
    header["params"]["steps"] = 0
    bad = tmp_path / "bad-settings.trace"
    bad.write_text(json.dumps(header) + "\n" + "".join(lines[1:]))
    app = make_app(None, load=False, replay=str(bad), replay_delay=0)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        notes = [n.message for n in app._notifications]
        assert "The trace's sampler settings are not valid (steps must be at least 1); replaying with the " \
               "defaults." in notes
        assert app.mode == "review" and app.review is not None and app.review.job.params.steps != 0
