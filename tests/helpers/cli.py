"""Run the CLI in this process and keep what it printed."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

from dgterm.cli import main


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str


def dgterm(*args):
    """Run the CLI in this process (fast: no interpreter start, no torch import per call)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse
            code = e.code
    return Outcome(code, out.getvalue(), err.getvalue())
