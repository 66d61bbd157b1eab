"""Drive the real REPL through prompt-toolkit's pipe input; capture what rich prints."""

from __future__ import annotations

from io import StringIO
from types import SimpleNamespace

import pytest

ENTER, ALT_ENTER, CTRL_D = "\r", "\x1b\r", "\x04"


@pytest.fixture
def run_repl():
    """run_repl(lines, *argv, lm=..., terminal=False): type each line + Enter, then Ctrl-D."""
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput
    from rich.console import Console

    from dgterm.cli import build_parser
    from dgterm.engine.args import EngineArgs
    from dgterm.repl.loop import Repl

    def run(lines, *argv, lm=None, terminal=False, width=80, height=24, setup=None):
        args = build_parser().parse_args(["repl", *argv])
        out, err = StringIO(), StringIO()
        console = Console(file=out, width=width, height=height, force_terminal=terminal,
                          color_system="truecolor" if terminal else None)
        notes = Console(file=err, width=400)
        with create_pipe_input() as keys:
            keys.send_text("".join(line + ENTER for line in lines) + CTRL_D)
            repl = Repl(EngineArgs.from_cli_args(args), mode=args.mode, keys=args.keys, lm=lm, console=console,
                        notes=notes, input=keys, output=DummyOutput())
            if setup:
                setup(repl)
            rc = repl.run()
        return SimpleNamespace(repl=repl, rc=rc, out=out.getvalue(), err=err.getvalue())

    return run
