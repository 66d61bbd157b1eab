"""Continue a prompt (or answer it, with --chat) and print the text."""

from __future__ import annotations

from dgterm.cli import add_model_args, add_output_args, add_sampler_args


def add_arguments(p):
    p.add_argument("prompt", help="the text to continue ('-' reads standard input)")
    p.add_argument("--chat", action="store_true", help="send the prompt as a user turn (chat checkpoints)")
    add_model_args(p)
    add_sampler_args(p)
    add_output_args(p)


def run(args) -> int:
    import sys

    from dgterm.cli import load_model, sampler_params
    from dgterm.commands.common import check_trace_path, drive, emit, text_argument
    from dgterm.engine import tasks
    from dgterm.errors import InputError

    prompt = text_argument(sys.stdin.read() if args.prompt == "-" else args.prompt, "prompt")
    if not prompt.strip():
        raise InputError("The prompt is empty; give some text to continue.")
    check_trace_path(args, [0] if args.prompt == "-" else [])
    sampler_params(args)  # a bad flag is one line before the model loads, not after
    lm = load_model(args)
    if args.chat and not lm.has_chat_template:
        raise InputError(f"{lm.name} has no chat template; drop --chat.")
    task = tasks.continue_text(lm, prompt, sampler_params(args, lm), candidates=args.candidates, chat=args.chat)
    result = drive(task, lm, args, {"task": "generate", "prompt": prompt, "chat": args.chat})
    if result.best.thinking and not args.json:  # the answer alone on stdout, the thought apart
        print(f"dgterm: thinking: {result.best.thinking}", file=sys.stderr)
    emit(result, args, result.best.text)
    return 0
