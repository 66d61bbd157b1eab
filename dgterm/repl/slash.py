"""Slash commands, their completion, and the REPL's key bindings."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from prompt_toolkit.completion import Completer, Completion, PathCompleter
from prompt_toolkit.document import Document
from prompt_toolkit.key_binding import KeyBindings
from rich.table import Table
from rich.text import Text

from dgterm.engine.params import DEFAULT_REFINE_BELOW
from dgterm.errors import InputError


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    help: str
    run: Callable
    choices: tuple[str, ...] = ()  # completions of the argument
    path: bool = False  # the argument is a file or directory


COMMANDS: dict[str, Command] = {}
ALIASES = {"quit": "exit", "q": "exit", "?": "help"}
KEYS = [
    ("Enter", "send the prompt"),
    ("Alt-Enter / Esc Enter", "new line inside the prompt"),
    ("Ctrl-C", "cancel a running generation (at the prompt: drop the line)"),
    ("Ctrl-D", "exit (on an empty line)"),
    ("Up / Down, Ctrl-R", "history, reverse search (kept across sessions)"),
    ("Tab, →", "complete a slash command; accept the greyed history suggestion"),
    ("Ctrl-L", "clear the screen"),
]


def command(usage: str, help: str, choices: tuple[str, ...] = (), path: bool = False):
    def register(fn):
        name = usage.split()[0].removeprefix("/")
        COMMANDS[name] = Command(name, usage, help, fn, choices, path)
        return fn

    return register


def dispatch(repl, line: str) -> None:
    name, _, arg = line.removeprefix("/").partition(" ")
    name = ALIASES.get(name.lower(), name.lower())
    cmd = COMMANDS.get(name)
    if cmd is None:
        raise InputError(f"Unknown command /{name}; /help lists the commands.")
    cmd.run(repl, arg.strip())


def _number(arg: str, kind, usage: str):
    if not arg:
        raise InputError(f"Give a number: {usage}.")
    try:
        return kind(arg)
    except ValueError:
        raise InputError(f"'{arg}' is not a number; use {usage}.") from None


# ------------------------------------------------------------------ sampler settings


@command("/steps N", "denoising steps per canvas")
def _steps(repl, arg):
    repl.set_params(steps=_number(arg, int, "/steps N"))
    repl.note(f"steps = {repl.overrides['steps']}")


@command("/entropy BOUND", "entropy bound: how much uncertainty one step may accept")
def _entropy(repl, arg):
    repl.set_params(entropy_bound=_number(arg, float, "/entropy BOUND"))
    repl.note(f"entropy bound = {repl.overrides['entropy_bound']}")


@command("/temp T_MAX [T_MIN]", "temperature schedule, from T_MAX at the first step to T_MIN at the last")
def _temp(repl, arg):
    parts = arg.split()
    if len(parts) not in (1, 2):
        raise InputError("Give one or two temperatures: /temp T_MAX [T_MIN].")
    values = [_number(p, float, "/temp T_MAX [T_MIN]") for p in parts]
    repl.set_params(t_max=values[0], t_min=values[1] if len(values) == 2 else None)
    t_min = values[1] if len(values) == 2 else repl.params().t_min if repl.lm is not None else "the model's"
    repl.note(f"temperature {values[0]} at the first step → {t_min} at the last")


@command("/canvases N", "up to N canvases per answer (N × the model's canvas length in tokens)")
def _canvases(repl, arg):
    n = _number(arg, int, "/canvases N")
    repl.set_params(canvases=n)
    repl.note(f"up to {n} canvas{'es' if n > 1 else ''} per answer")


@command("/seed N|random", "fix the seed (same prompt, same answer) or go back to random seeds", ("random",))
def _seed(repl, arg):
    if arg in ("random", "off", "none"):
        repl.overrides.pop("seed", None)
        repl.note("seed = random")
        return
    repl.set_params(seed=_number(arg, int, "/seed N|random"))
    repl.note(f"seed = {arg}")


@command("/settings", "show the sampler settings in use")
def _settings(repl, arg):
    params = repl.params() if repl.lm else None
    if params is None:
        raise InputError("No model is loaded, so there are no settings yet; load one with /model SPEC.")
    table = Table(box=None, show_header=False, pad_edge=False)
    for f in dataclasses.fields(params):
        mark = " (set here)" if f.name in repl.overrides else ""
        table.add_row(f.name, f"{getattr(params, f.name)}{mark}")
    table.add_row("candidates", str(repl.engine_args.candidates))
    repl.console.print(table)


# ------------------------------------------------------------------ model and mode


@command("/model SPEC", "load another model: 'bundled', a checkpoint directory, or a cached Hugging Face id",
         ("bundled",), path=True)
def _model(repl, arg):
    if not arg:
        raise InputError("Say which model: /model bundled, /model PATH or /model ORG/NAME.")
    from dgterm.engine.local import checkpoint

    # refuse a bad spec before unloading; a checkpoint small enough to hold beside the working
    # model loads first (any failure, NaN weights included, keeps the working one)
    path = checkpoint.resolve(arg, repl.engine_args.download)
    checkpoint.check_checkpoint(path)
    repl.load(arg, keep=checkpoint.weights_bytes(path) <= checkpoint.SCAN_LIMIT)


@command("/mode chat|plain", "chat: answer with the chat template and the conversation; plain: continue raw text",
         ("chat", "plain"))
def _mode(repl, arg):
    if arg not in ("chat", "plain"):
        raise InputError("Use /mode chat or /mode plain.")
    if arg == "chat" and repl.lm is not None and not repl.lm.has_chat_template:
        raise InputError(f"{repl.lm.name} has no chat template, so it cannot chat; stay in plain mode.")
    repl.mode = arg
    repl.note(f"{arg} mode")


@command("/keys emacs|vi", "editing keys of the prompt", ("emacs", "vi"))
def _keys(repl, arg):
    from prompt_toolkit.enums import EditingMode

    if arg not in ("emacs", "vi"):
        raise InputError("Use /keys emacs or /keys vi.")
    if repl.session is not None:
        repl.session.editing_mode = EditingMode.VI if arg == "vi" else EditingMode.EMACS
    repl.note(f"{arg} keys")


@command("/clear", "forget the conversation (the next prompt starts a new chat)")
def _clear(repl, arg):
    repl.messages = []
    repl.note("Conversation cleared.")


# ------------------------------------------------------------------ the last run


def _last(repl):
    if repl.last is None:
        raise InputError("Nothing has run yet; send a prompt first.")
    return repl.last


@command("/stats", "statistics of the last run")
def _stats(repl, arg):
    last = _last(repl)
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_row("prompt", Text(last.prompt[:60] + ("…" if len(last.prompt) > 60 else "")))
    table.add_row("mode", last.mode)
    result = last.result
    best = result.best if result is not None and result.candidates else None  # the draft shown
    table.add_row("seed", str(best.seed if best else last.task.seeds[0]))
    if result is None:
        table.add_row("outcome", last.error or "did not finish")
        table.add_row("steps seen", str(len(last.events)))
    else:
        run = result.run
        table.add_row("outcome", "cancelled" if run.cancelled else "finished")
        row = best.row if best else 0
        steps, tokens = [str(n) for n in run.steps], int(run.generated[row])
        ev = last.events[-1] if last.events else None
        if run.cancelled and ev is not None:  # count the canvas it stopped in, as the totals do
            if ev.window >= len(run.steps):
                steps.append(f"{ev.step} (cancelled)")
            tokens = ev.tokens
        forwards = int(run.forwards[row])
        table.add_row("steps per canvas", ", ".join(steps) or "0")
        table.add_row("decoder forwards", str(forwards))
        table.add_row("tokens", str(tokens))
        table.add_row("tokens per forward", f"{tokens / max(forwards, 1):.2f}")
        table.add_row("tokens per second", f"{tokens / run.busy if run.busy > 0 else 0.0:.1f}")  # = row_rate
        warmup = run.timings.get("warm-up", 0.0)
        table.add_row("time", f"{run.elapsed:.2f} s (encoding {run.timings.get('encode', 0.0):.2f} s"
                      + (f", compiling the step {warmup:.2f} s)" if warmup else ")"))
        if best:
            table.add_row("log-likelihood per token", f"{best.score:.3f} ± {best.score_se:.3f}")
            table.add_row("mean entropy (last step)", f"{best.entropy:.3f}")
    repl.console.print(table)


@command("/trace FILE", "save every step of the last run as JSON lines (dgterm.engine.output.trace)", path=True)
def _trace(repl, arg):
    from dgterm.engine.output.trace import TraceWriter
    from dgterm.paths import refuse_input

    last = _last(repl)
    if not arg:
        raise InputError("Say where to write: /trace FILE.")
    task = last.task
    refuse_input(arg, "/trace", repl.engine_args.local_files())
    try:
        with TraceWriter(arg, task, "continue", last.prompt, task="repl", mode=last.mode) as trace:
            for event in last.events:
                trace.step(event)
            if last.result is not None:
                trace.finish()
    except OSError as e:
        raise InputError(f"Cannot write {arg} ({e.strerror}); pick another path.") from None
    repl.note(f"Wrote {len(last.events)} steps to {arg}.")


@command("/thinking", "show the thinking channel of the last answer, if the model opened one")
def _thinking(repl, arg):
    last = _last(repl)
    thought = last.result.best.thinking if last.result and last.result.candidates else None
    if not thought:
        raise InputError("The last answer has no thinking channel.")
    repl.console.print(Text(thought, "italic"))


@command("/refine [P]", "draw again the tokens of the last answer the model doubts (confidence under P, default "
         f"{DEFAULT_REFINE_BELOW}), everything else kept")
def _refine(repl, arg):
    from dgterm.engine.tasks.refine import check_threshold

    below = _number(arg, float, "/refine [P]") if arg else DEFAULT_REFINE_BELOW
    repl.refine(check_threshold(below))


# ------------------------------------------------------------------ help and exit


@command("/help", "this list")
def _help(repl, arg):
    table = Table(box=None, show_header=False, pad_edge=False)
    for cmd in COMMANDS.values():
        table.add_row(Text(cmd.usage, "bold"), cmd.help)
    repl.console.print(table)
    keys = Table(box=None, show_header=False, pad_edge=False)
    for key, what in KEYS:
        keys.add_row(Text(key, "bold"), what)
    repl.console.print(keys)


@command("/exit", "leave the REPL (also Ctrl-D)")
def _exit(repl, arg):
    repl.running = False


# ------------------------------------------------------------------ prompt-toolkit glue


class SlashCompleter(Completer):
    """Command names after '/', then each command's choices or a path."""

    paths = PathCompleter(expanduser=True)

    def get_completions(self, document, complete_event):
        text = document.text_before_cursor
        if not text.startswith("/") or "\n" in text:
            return
        name, space, arg = text[1:].partition(" ")
        if not space:
            for cmd in COMMANDS.values():
                if cmd.name.startswith(name.lower()):
                    yield Completion(cmd.name, -len(name), display=cmd.usage, display_meta=cmd.help)
            return
        cmd = COMMANDS.get(ALIASES.get(name, name))
        if cmd is None:
            return
        for choice in cmd.choices:
            if choice.startswith(arg):
                yield Completion(choice, -len(arg))
        if cmd.path:
            yield from self.paths.get_completions(Document(arg, len(arg)), complete_event)


def key_bindings() -> KeyBindings:
    """Enter sends (the prompt is multi-line, where Enter would insert a newline);
    Alt-Enter inserts a newline. Pasted text keeps its newlines (bracketed paste)."""
    kb = KeyBindings()

    @kb.add("enter")
    def _send(event):
        buffer = event.current_buffer
        state = buffer.complete_state
        chosen = state and (state.current_completion or (state.completions[0] if len(state.completions) == 1 else None))
        if chosen:  # Enter in the completion menu takes the selected (or the only) completion
            buffer.apply_completion(chosen)
        else:
            buffer.validate_and_handle()

    @kb.add("escape", "enter")
    def _newline(event):
        event.current_buffer.insert_text("\n")

    return kb
