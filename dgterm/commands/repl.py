"""Chat with a model (or continue raw text) and watch each answer denoise live.

Type /help inside for the slash commands and keys.
"""

from __future__ import annotations

from dgterm.engine.args import EngineArgs


def add_arguments(p):
    p.add_argument("--mode", choices=("chat", "plain"),
                   help="chat (the model's chat template, a running conversation) or plain (continue raw text); "
                        "default: chat when the model has a chat template")
    p.add_argument("--keys", choices=("emacs", "vi"), default="emacs", help="editing keys of the prompt")
    EngineArgs.add_cli_args(p)


def run(args) -> int:
    import sys

    from dgterm.errors import InputError
    from dgterm.repl.loop import Repl

    if sys.stdin is None:
        raise InputError("Standard input is closed, and the REPL reads from it; give it a terminal or a file.")
    engine_args = EngineArgs.from_cli_args(args)
    engine_args.check()  # a bad flag is one line now, not a refusal at every prompt
    return Repl(engine_args, mode=args.mode, keys=args.keys).run()
