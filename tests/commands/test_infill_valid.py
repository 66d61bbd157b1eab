"""`dgterm infill --require-valid` says how much it drew when a candidate is valid."""

from __future__ import annotations

import re

from tests.helpers.cli import dgterm


def test_require_valid_says_how_many_rounds_it_drew(tiny_dir, tmp_path):
    path = tmp_path / "a.py"
    path.write_text("# a note here\nx = 1\n")
    out = dgterm("infill", path, "--span", "4:8:2", "--model", tiny_dir, "--seed", "3", "--candidates", "2",
                 "--steps", "2", "--require-valid", "16", "--json")
    assert out.returncode == 0, out.stderr
    said = re.fullmatch(r"dgterm: a valid candidate after (\d+) rounds? \((\d+) candidates drawn\)\.\n", out.stderr)
    assert said and int(said[2]) == 2 * int(said[1]), out.stderr
    assert '"score_se"' in out.stdout  # the score's spread comes with it
