"""Continue a prompt (or answer it, with --chat) and print the text."""

from __future__ import annotations

from dgterm.commands.arguments import add_output_args
from dgterm.engine.args import EngineArgs


def add_arguments(p):
    p.add_argument("prompt", help="the text to continue ('-' reads standard input)")
    p.add_argument("--chat", action="store_true", help="send the prompt as a user turn (chat checkpoints)")
    EngineArgs.add_cli_args(p)
    add_output_args(p)


def run(args) -> int:
    import sys

    from dgterm.commands.arguments import stdin_text, text_argument
    from dgterm.commands.output import check_trace_path, drive, emit, note_what_it_lacks
    from dgterm.engine import tasks
    from dgterm.engine.tasks.template import thinking_of
    from dgterm.errors import InputError

    prompt = text_argument(stdin_text("prompt") if args.prompt == "-" else args.prompt, "prompt")
    if not prompt.strip():
        raise InputError("The prompt is empty; give some text to continue.")
    engine_args = EngineArgs.from_cli_args(args)
    engine_args.check()  # a bad flag is one line before the model loads, not after
    check_trace_path(args.trace, [0] if args.prompt == "-" else [], engine_args)
    lm = engine_args.load()
    note_what_it_lacks(lm)
    if args.chat and not lm.has_chat_template:
        raise InputError(f"{lm.name} has no chat template; drop --chat.")
    task = tasks.continue_text(lm, prompt, engine_args.sampler_params(lm), candidates=engine_args.candidates,
                               chat=args.chat, thinking=thinking_of(engine_args.settings.thinking, None))
    result = drive(task, args.trace, {"kind": "continue", "text": prompt, "task": "generate", "chat": args.chat})
    if result.best.thinking and not args.json:  # the answer alone on stdout, the thought apart
        print(f"dgterm: thinking: {result.best.thinking}", file=sys.stderr)
    emit(result, args, result.best.text)
    return 0
