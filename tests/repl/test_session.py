"""The REPL end to end: real models, keys through prompt-toolkit's pipe input.

The bundled checkpoint is still being trained, so no test asserts what the model says.
"""

from __future__ import annotations

import _thread
import threading

from dgterm.engine.output.trace import read_trace
from dgterm.repl.render import printable

FAST = ("--steps", "2", "--seed", "5")
TINY = ("--steps", "2", "--canvases", "1")


def test_a_chat_prompt_on_the_bundled_model(run_repl, bundled, isolated_user_dirs):
    r = run_repl(["What does zip do?", "/stats"], *FAST, lm=bundled)
    assert r.rc == 0
    last = r.repl.last
    answer = last.result.best.text
    assert r.repl.mode == "chat" and not last.result.run.cancelled
    assert r.repl.messages == [{"role": "user", "content": "What does zip do?"},
                               {"role": "assistant", "content": answer}]
    # Piped output (not a terminal): no animation, the answer as it is, then what /stats prints.
    assert "\x1b[" not in r.out
    assert r.out.startswith(printable(answer) + "\n")
    assert "finished" in r.out and "tokens per second" in r.out
    assert "steps · " in r.err and f"seed {last.result.best.seed}" in r.err  # a note, with the shown draft's seed
    history = (isolated_user_dirs / "state" / "repl_history").read_text(encoding="utf-8")
    assert "What does zip do?" in history and "/stats" in history


def test_the_conversation_grows_turn_by_turn(run_repl, tiny):
    r = run_repl(["First question.", "Second question.", "/clear"], *TINY, "--mode", "chat", lm=tiny,
                 setup=lambda repl: _watch_messages(repl))
    assert [len(m) for m in r.repl.seen] == [2, 4]
    assert r.repl.seen[1][2] == {"role": "user", "content": "Second question."}
    assert r.repl.messages == [] and "Conversation cleared." in r.err


def _watch_messages(repl):
    repl.seen = []
    show = repl.show

    def record(*a):
        repl.seen.append(list(repl.messages))
        show(*a)

    repl.show = record


def test_ctrl_c_cancels_and_the_repl_goes_on(run_repl, bundled, tmp_path):
    """A real SIGINT-style interrupt in the main thread while the worker denoises."""

    def interrupt_after_first_step(repl):
        def watch():
            while repl.last is None or not repl.last.events:
                if stop.wait(0.01):
                    return
            _thread.interrupt_main()

        threading.Thread(target=watch, daemon=True).start()

    stop = threading.Event()
    trace = tmp_path / "run.jsonl"
    try:
        r = run_repl(["Tell me a long story.", "/stats", f"/trace {trace}"], "--steps", "60", lm=bundled,
                     setup=interrupt_after_first_step)
    finally:
        stop.set()
    last = r.repl.last
    assert last.result.run.cancelled and last.result.candidates == []
    assert 1 <= len(last.events) < 60
    assert "Cancelled at step" in r.err
    assert r.repl.messages == []  # a cancelled turn is not part of the conversation
    assert "cancelled" in r.out  # /stats after the cancel
    saved = read_trace(trace)
    assert saved.header["mode"] == "chat" and len(saved.steps) == len(last.events)
    assert saved.header["params"]["seed"] == last.task.seeds[0]  # the seed that ran, even when it was random
    assert f"Wrote {len(last.events)} steps" in r.err


def test_errors_are_one_sentence_and_the_repl_stays_up(run_repl, bundled):
    r = run_repl(["/model /no/such/model", "/steps many", "/steps 0", "/frobnicate", "/trace out.jsonl",
                  "/mode chatty", "/steps", "/temp 0.6", "continue this"], "--steps", "1", "--mode", "plain",
                 lm=bundled)
    errors = r.err.strip().splitlines()
    assert errors[:8] == [
        "Model path /no/such/model does not exist; pass a checkpoint directory, a Hugging Face id, or 'bundled'.",
        "'many' is not a number; use /steps N.",
        "Not changed: steps must be at least 1.",
        "Unknown command /frobnicate; /help lists the commands.",
        "Nothing has run yet; send a prompt first.",
        "Use /mode chat or /mode plain.",
        "Give a number: /steps N.",
        f"temperature 0.6 at the first step → {bundled.defaults.t_min} at the last",
    ]
    assert r.repl.lm is bundled  # a bad /model spec is refused before the loaded model is dropped
    assert r.repl.last.result.candidates  # the prompt after the errors ran


def test_a_failing_generation_is_one_sentence(run_repl, tiny, continue_runs_out_of_memory):
    r = run_repl(["a prompt", "/steps 3"], "--mode", "plain", *TINY, lm=tiny)
    assert "ran out of memory on cpu; lower /canvases or --candidates, or restart with --quant nf4." in r.err
    assert "steps = 3" in r.err  # still reading input afterwards


def test_no_model_at_start(run_repl):
    r = run_repl(["hello"], "--model", "/no/such/model")
    assert r.rc == 0 and r.repl.lm is None
    assert r.err.splitlines() == [
        "Model path /no/such/model does not exist; pass a checkpoint directory, a Hugging Face id, or 'bundled'.",
        "No model is loaded; load one with /model SPEC (or /model bundled).",
    ]


def test_live_canvas_in_a_terminal(run_repl, tiny, monkeypatch):
    """With a terminal the canvas is drawn and erased in place; then the answer prints."""
    from dgterm.repl import driver, loop

    monkeypatch.setattr(loop, "follow", lambda *a, **kw: driver.follow(*a, fps=1e6))  # draw every step
    r = run_repl(["some text"], "--mode", "plain", "--seed", "1", *TINY, lm=tiny, terminal=True, width=50, height=12)
    assert "\x1b[2K" in r.out  # lines erased in place
    assert "/2 · canvas 1/1" in r.out and "tok/s" in r.out and "Ctrl-C cancels" in r.out
    assert r.repl.last.result.best.text.strip()[:10] in r.out


def test_plain_mode_and_a_fixed_seed_repeat(run_repl, tiny):
    r = run_repl(["/seed 11", "def add(a, b):", "def add(a, b):", "/seed random"], "--mode", "plain", *TINY,
                 lm=tiny,
                 setup=_watch_results)
    first, second = r.repl.results
    assert first == second and r.repl.mode == "plain"
    assert "seed = random" in r.err and "seed" not in r.repl.overrides


def _watch_results(repl):
    repl.results = []
    show = repl.show

    def record(cand, run, seed):
        repl.results.append((cand.text, seed))
        show(cand, run, seed)

    repl.show = record


def test_multi_line_prompt(run_repl, tiny):
    r = run_repl(["line one\x1b\rline two"], "--mode", "plain", *TINY, lm=tiny)
    assert r.repl.last.prompt == "line one\nline two"


def test_a_thinking_channel_is_shown_collapsed(run_repl, tiny, monkeypatch):
    from dgterm.engine.tasks import continuation

    monkeypatch.setattr(continuation, "split_thinking", lambda tok, ids: ("The answer.", "first this, then that"))
    r = run_repl(["Why?", "/thinking"], "--mode", "chat", *TINY, lm=tiny)
    assert "▸ thought for 4 words (/thinking shows it)" in r.err
    assert "first this, then that" not in r.err and r.out.splitlines() == ["The answer.", "first this, then that"]
