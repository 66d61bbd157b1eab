"""Edit a file in the terminal editor; masked spans denoise live, in place.

Also: ``dgterm FILE``. The model loads in the background; editing works at once.
"""

from __future__ import annotations

import os
import sys
import threading

from dgterm.engine.args import EngineArgs


def add_arguments(p):
    p.add_argument("file", nargs="?", help="the file to edit (created on first save if it does not exist)")
    EngineArgs.add_cli_args(p)
    p.add_argument("--trace", metavar="FILE", help="record every run's steps to FILE (replay with --replay)")
    p.add_argument("--replay", metavar="TRACE", help="replay a run recorded with --trace (no model needed)")
    p.add_argument("--replay-delay", type=float, default=0.08, metavar="S", help="seconds between replayed steps")
    p.add_argument("--theme", help="colour theme (dgterm-dark, dgterm-light, dgterm-contrast, or your own)")


def run(args) -> int:
    from dgterm.errors import InputError
    from dgterm.tui.app import make_app

    engine_args = EngineArgs.from_cli_args(args)
    engine_args.check()  # a bad flag is one line now, not a message at the first run
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise InputError("dgterm open needs a terminal; in scripts use dgterm infill or dgterm generate.")
    app = make_app(args.file, engine_args=engine_args, trace=args.trace, replay=args.replay,
                   replay_delay=args.replay_delay)
    app.run()
    if any(t.name == "dgterm-load" for t in threading.enumerate()):
        # quit while the model loads: the document is closed; do not wait for torch to
        # finish, nor let interpreter shutdown tear down a thread busy in C code
        sys.stdout.flush()
        os._exit(app.return_code or 0)
    return app.return_code or 0
