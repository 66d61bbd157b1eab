"""Edit a file in the terminal editor; masked spans denoise live, in place.

Also: ``dgterm FILE``. The model loads in the background; editing works at once.
"""

from __future__ import annotations

import sys

from dgterm.cli import add_model_args, add_sampler_args


def add_arguments(p):
    p.add_argument("file", nargs="?", help="the file to edit (created on first save if it does not exist)")
    add_model_args(p)
    add_sampler_args(p)
    p.add_argument("--trace", metavar="FILE", help="record every run's steps to FILE (replay with --replay)")
    p.add_argument("--replay", metavar="TRACE", help="replay a run recorded with --trace (no model needed)")
    p.add_argument("--replay-delay", type=float, default=0.08, metavar="S", help="seconds between replayed steps")
    p.add_argument("--theme", help="colour theme (dgterm-dark, dgterm-light, dgterm-contrast, or your own)")


def run(args) -> int:
    from dgterm.cli import sampler_params, settings_from
    from dgterm.errors import InputError
    from dgterm.tui.app import make_app

    sampler_params(args)  # a bad flag is one line now, not a message at the first run
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise InputError("dgterm open needs a terminal; in scripts use dgterm infill or dgterm generate.")
    settings = settings_from(args).override(theme=args.theme)
    sampler = dict(steps=args.steps, entropy_bound=args.entropy_bound, t_max=args.t_max, t_min=args.t_min,
                   stability=args.stability, confidence=args.confidence, seed=args.seed,
                   max_new_tokens=args.max_new_tokens, canvases=args.canvases)
    app = make_app(args.file, settings=settings, sampler=sampler, candidates=args.candidates, trace=args.trace,
                   replay=args.replay, replay_delay=args.replay_delay, download=args.download)
    app.run()
    return app.return_code or 0
