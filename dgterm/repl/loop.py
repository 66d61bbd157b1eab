"""The REPL loop: read a prompt (prompt-toolkit), run it live, print the answer (rich).

Results go to ``console`` (standard output); loading messages, notes and errors go to
``notes``, which is standard error when standard output is not a terminal, so a pipe
receives the answers only.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markdown import Markdown
from rich.text import Text

from dgterm.config import state_dir
from dgterm.engine.args import EngineArgs
from dgterm.errors import DgtermError, InputError
from dgterm.repl import slash
from dgterm.repl.driver import RunThread, follow, in_background, no_echo
from dgterm.repl.render import STATUS, printable

if TYPE_CHECKING:
    from dgterm.engine.backend import Engine

HISTORY_FILE = "repl_history"


@dataclass
class LastRun:
    """What /stats and /trace report: one run, finished or cancelled."""

    mode: str | None  # chat or plain (decided when the model loaded)
    prompt: str
    task: Any  # a Task (refine, continue, chat)
    events: list = field(default_factory=list)
    error: str | None = None
    context: str = ""  # the text before the answer, as /refine gives it to the model
    refined: bool = False  # a refine: the candidates' text is the context and the answer

    @property
    def result(self):
        return self.task.result

    @property
    def answer(self) -> str | None:
        """The best candidate's answer, or None."""
        result = self.task.result
        if not (result and result.candidates):
            return None
        return result.best.text[len(self.context):] if self.refined else result.best.text


HISTORY_LIMIT = 16 << 20


def _check_history(path) -> None:
    """Raise OSError (with a reason) unless ``path`` is missing or a regular file we can read
    and write of sane size: a folder, /dev/zero or an unreadable file must not break every prompt."""
    import errno
    import stat

    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, "it is not a regular file")
    if st.st_size > HISTORY_LIMIT:
        raise OSError(errno.EFBIG, "it is over 16 MiB")
    if not os.access(path, os.R_OK | os.W_OK):
        raise OSError(errno.EACCES, "it cannot be read and written")


class Repl:
    def __init__(self, engine_args: EngineArgs, *, mode: str | None = None, keys: str = "emacs", lm=None,
                 console: Console | None = None, notes: Console | None = None, input=None, output=None):
        """``engine_args``: the model and sampler settings (the one way in, dgterm.engine.args);
        ``mode``: chat or plain (None: chat when the model has a chat template); ``keys``: emacs
        or vi; ``lm``: a model loaded already (else ``run`` loads the configured one); ``input``
        and ``output``: prompt-toolkit's (tests pass a pipe input and a DummyOutput)."""
        self.engine_args, self.keys = engine_args, keys
        self.console = console or Console()
        # piped: notes go to stderr, one line each (a log file should not wrap at 80 columns)
        self.notes = notes or (self.console if self.console.is_terminal else Console(stderr=True, soft_wrap=True))
        self.live = self.console.is_terminal and not self.console.is_dumb_terminal
        self.lm: Engine | None = None
        self.mode = mode
        self.overrides: dict = {}  # sampler settings changed with slash commands
        self.messages: list[dict] = []
        self.last: LastRun | None = None
        self.running = True
        self.failed = False  # an error was shown (piped sessions exit 1)
        interactive = input is not None or (sys.stdin is not None and sys.stdin.isatty())
        self.session = self._session(input, output) if interactive else None
        if lm is not None:
            self._use(lm)

    # ------------------------------------------------------------------ prompt-toolkit

    def _session(self, input, output):
        from prompt_toolkit import PromptSession
        from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
        from prompt_toolkit.enums import EditingMode
        from prompt_toolkit.history import FileHistory, InMemoryHistory
        from prompt_toolkit.output import create_output

        history = InMemoryHistory()
        directory = state_dir()
        try:
            directory.mkdir(parents=True, exist_ok=True)
            _check_history(directory / HISTORY_FILE)
            history = FileHistory(str(directory / HISTORY_FILE))
        except OSError as e:
            self.note(f"History will not be saved: {e.strerror} ({directory / HISTORY_FILE}); "
                      "set DGTERM_STATE_DIR to a writable folder.")
        return PromptSession(
            history=history,
            completer=slash.SlashCompleter(),
            complete_while_typing=True,
            auto_suggest=AutoSuggestFromHistory(),
            multiline=True,
            key_bindings=slash.key_bindings(),
            prompt_continuation=lambda width, line, wrapped: "." * (width - 1) + " ",
            editing_mode=EditingMode.VI if self.keys == "vi" else EditingMode.EMACS,
            bottom_toolbar=self._toolbar,
            input=input,
            output=output or create_output(always_prefer_tty=True),
        )

    def _toolbar(self):
        if self.lm is None:
            return " no model · /model SPEC loads one · /help"
        try:
            p = self.params()
        except DgtermError:
            return f" {self.lm.name} · {self.mode} · bad sampler settings: /settings says why"
        seed = "random" if p.seed is None else p.seed
        return f" {self.lm.name} · {self.mode} · steps {p.steps} · seed {seed} · /help"

    def read(self) -> str | None:
        """The next input, or None at end of input (Ctrl-D)."""
        if self.session is None:
            if sys.stdin is None:
                return None
            line = sys.stdin.buffer.readline()  # bytes: a line that is not UTF-8 is refused, not fatal
            return line.decode("utf-8", "surrogateescape").rstrip("\r\n") if line else None
        while True:
            try:
                return self.session.prompt([("class:prompt", f"{self.mode or 'dgterm'}› ")])
            except KeyboardInterrupt:
                continue  # Ctrl-C at the prompt drops the line, as in a shell
            except EOFError:
                return None

    # ------------------------------------------------------------------ loop

    def run(self) -> int:
        """0, or for piped input (a script), 2 when no model loaded and 1 when any input failed."""
        if self.lm is None:
            self.load(None)  # the configured engine: --model, or --server
            if self.lm is None and self.session is None:
                return 2
        while self.running:
            text = self.read()
            if text is None:
                break
            self.handle(text)
        return 1 if self.failed and self.session is None else 0

    def handle(self, text: str) -> None:
        """One input: a slash command or a prompt. Errors become one sentence; the loop goes on."""
        if not text.strip():
            return
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            self.error("That line holds bytes that are not UTF-8; convert the input to UTF-8 and send it again.")
            return
        try:
            if text.lstrip().startswith("/"):
                slash.dispatch(self, text.strip())
            else:
                self.ask(text)
        except DgtermError as e:
            self.error(str(e))

    def note(self, message: str, style: str = "dim") -> None:
        self.notes.print(Text(message, style))

    def error(self, message: str) -> None:
        self.failed = True
        self.notes.print(Text(message, "bold red"))

    # ------------------------------------------------------------------ model and settings

    def load(self, spec: str | None, keep: bool = False) -> None:
        """Load a model (None: the configured one). On failure the REPL stays up, with no model
        loaded, or with the one it had when ``keep`` (which frees it only once the new one is in)."""
        engine_args = self.engine_args.replace(model=spec)
        if spec is not None:
            engine_args = engine_args.replace(server="")  # /model SPEC loads that model here
        s = engine_args.settings
        if not keep:
            self._unload()
        try:
            loading = self.notes.status(f"Loading {s.server or s.model}…") if self.notes.is_terminal else nullcontext()
            with no_echo(), loading:
                lm = in_background(engine_args.load)
        except DgtermError as e:
            self.error(str(e))
            return
        except KeyboardInterrupt:
            self.error("Loading cancelled; load a model with /model SPEC.")
            return
        except Exception as e:  # noqa: BLE001 - out of memory while moving to the device, broken install
            self.error(f"Loading {s.model} failed ({type(e).__name__}: {str(e)[:200]}); "
                       "pick another model with /model.")
            return
        if keep:
            self._unload()
        self._use(lm)
        self.note(f"{lm.summary()}, {self.mode} mode, loaded in {lm.load_seconds:.1f} s. /help lists commands.")

    def _unload(self) -> None:
        """Free the current model first (the last run holds it too): two big models rarely fit at once.
        The engine left behind is closed (a remote one's connection)."""
        if self.lm is not None:
            self.lm.close()
        self.lm = self.last = None
        if "torch" in sys.modules:
            import gc

            import torch

            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def _use(self, lm) -> None:
        self.lm = lm
        if self.mode == "chat" and not lm.has_chat_template:
            self.note(f"{lm.name} has no chat template, so this session continues raw text (plain mode).")
        if self.mode is None or (self.mode == "chat" and not lm.has_chat_template):
            self.mode = "chat" if lm.has_chat_template else "plain"

    def params(self):
        """The model's defaults < config [sampler] < flags < slash commands."""
        try:
            params = self.engine_args.sampler_params(self.lm).replace(**self.overrides)
            if "canvases" in self.overrides:  # /canvases N means N whole canvases
                params = params.replace(max_new_tokens=params.canvases * self.lm.canvas_length)
            return params
        except ValueError as e:
            raise InputError(f"Bad sampler setting: {e}.") from None

    def set_params(self, **values) -> None:
        """Change sampler settings, refusing values the sampler would reject."""
        before = dict(self.overrides)
        self.overrides.update(values)
        try:
            if self.lm is not None:
                self.params()
            else:
                from dgterm.engine.params import SamplerParams

                SamplerParams().replace(**self.overrides)
        except InputError as e:  # a SettingError is one
            self.overrides = before
            raise InputError(f"Not changed: {str(e).removeprefix('Bad sampler setting: ').rstrip('.')}.") from None

    # ------------------------------------------------------------------ generation

    def ask(self, text: str) -> None:
        if self.lm is None:
            raise InputError("No model is loaded; load one with /model SPEC (or /model bundled).")
        from dgterm.engine import tasks
        from dgterm.engine.tasks import chat
        from dgterm.engine.tasks.template import thinking_of

        params = self.params()
        cancel = threading.Event()
        if self.mode == "chat":
            turn = self.messages + [{"role": "user", "content": text}]
            task = chat.chat(self.lm, turn, params, candidates=self.engine_args.candidates, cancel=cancel,
                             thinking=thinking_of(self.engine_args.settings.thinking, None))
        else:
            task = tasks.continue_text(self.lm, text, params, candidates=self.engine_args.candidates, cancel=cancel)
        context = self._context(turn) if self.mode == "chat" else text
        result = self._follow(LastRun(self.mode, text, task, context=context), cancel)
        if result is None:
            return
        best = result.best
        if self.mode == "chat":
            self.messages = turn + [{"role": "assistant", "content": best.text}]
        self.show(best, result.run, best.seed)

    def refine(self, below: float) -> None:
        """Draw again the tokens of the last answer the model keeps with a probability under
        ``below``, the text before it and every other token pinned (engine.tasks.refine)."""
        last = self.last
        answer = last.answer if last else None
        if last is None or answer is None:
            raise InputError("There is no answer to refine; send a prompt first.")
        if self.lm is None:
            raise InputError("No model is loaded; load one with /model SPEC (or /model bundled).")
        if not answer:
            raise InputError("The last answer is empty; there is nothing to refine.")
        from dgterm.engine.tasks.refine import refine

        cancel, text = threading.Event(), last.context + answer
        task = refine(self.lm, text, len(last.context), len(text), self.params(), below=below,
                      candidates=self.engine_args.candidates, cancel=cancel)
        result = self._follow(LastRun(last.mode, last.prompt, task, context=last.context, refined=True), cancel)
        if result is None:
            return
        new = result.best.text[len(last.context):]
        if last.mode == "chat" and self.messages:
            self.messages[-1] = {"role": "assistant", "content": new}
        self.show(dataclasses.replace(result.best, text=new), result.run, task.seeds[0])

    def _context(self, turn: list[dict]) -> str:
        """The conversation before the answer, as text (its BOS left to the tasks)."""
        from dgterm.engine.tasks.template import render_chat

        assert self.lm is not None  # asked while a model answers
        bos = getattr(self.lm.tokenizer, "bos_token", None) or ""
        return render_chat(self.lm.tokenizer, turn).removeprefix(bos)

    def _follow(self, last: LastRun, cancel: threading.Event):
        """Run ``last.task`` live (it becomes the last run); its result, or None when it failed
        or was cancelled (both said)."""
        self.last = last
        worker = RunThread(last.task, last.events)
        with no_echo():
            follow(worker, cancel, self.console, self.live)
        if worker.error is not None:
            last.error = self._failure(worker.error)
            self.error(last.error)
            return None
        result = last.task.result
        assert result is not None  # the run ended without an error
        if result.run.cancelled:
            ev = worker.events[-1] if worker.events else None
            where = f" at step {ev.step}/{ev.max_steps} of canvas {ev.window + 1}" if ev else ""
            self.note(f"Cancelled{where}; /stats and /trace FILE still show the run.", "yellow")
            return None
        return result

    def _failure(self, error: BaseException) -> str:
        from dgterm.engine.local import oom

        if isinstance(error, DgtermError):
            return str(error)
        assert self.lm is not None  # a model ran the generation that failed
        if memory := oom.as_out_of_memory(error, oom.explain_for_session(self.lm.name, self.lm.device)):
            return str(memory)
        return (f"Generation failed ({type(error).__name__}: {str(error)[:200]}); "
                "try again, or /trace FILE and report it.")

    def show(self, cand, run, seed: int) -> None:
        """The answer: Markdown (chat) or the raw continuation (plain); raw text when piped."""
        if cand.thinking:
            words = len(cand.thinking.split())
            self.notes.print(Text(f"▸ thought for {words} words (/thinking shows it)", STATUS))
        answer = printable(cand.text)
        if not self.console.is_terminal:
            self.console.out(answer, highlight=False)
        elif self.mode == "chat":
            self.console.print(Markdown(answer))
        else:
            self.console.print(Text(answer), soft_wrap=False)
        tokens = int(run.generated[cand.row])  # the draft shown, as /stats counts it
        warmup = run.timings.get("warm-up", 0.0)
        self.notes.print(Text(f"{sum(run.steps)} steps · {tokens} tokens · {run.row_rate(cand.row):.1f} tok/s · "
                              f"{run.elapsed:.1f} s{f' (compiling {warmup:.1f} s)' if warmup else ''} · seed {seed}",
                              STATUS))
