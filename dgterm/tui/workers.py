"""What the model worker does, off the UI thread: load a model, drive a task, replay a
trace, compute the confidence lens. Every function here reports only by ``post``-ing
typed messages; none touches a widget. torch is imported inside the functions."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from contextlib import contextmanager

from dgterm.errors import DgtermError
from dgterm.engine.output.frames import Choice, FrameBuilder, Layout, step_record
from dgterm.engine.output.tokens import RecordedText
from dgterm.tui.job import Job
from dgterm.tui.messages import (LensReady, ModelFailed, ModelLoaded, RunCancelled, RunFailed, RunFinished,
                                 RunStarted, StepMessage)

Post = Callable[[object], object]


def load_model(engine, post: Post) -> None:
    """Load the engine of ``engine`` (an EngineArgs) and post ModelLoaded or ModelFailed."""
    try:
        lm = engine.load()
    except DgtermError as e:
        post(ModelFailed(str(e)))
        return
    except Exception as e:  # noqa: BLE001 - anything else still becomes one sentence
        post(ModelFailed(f"The model could not be loaded ({type(e).__name__}: {e}); check the checkpoint."))
        return
    post(ModelLoaded(lm))


def make_task(lm, job: Job):
    from dgterm.engine import tasks
    from dgterm.engine.tasks import chat, until_valid as rounds

    reqs = [tasks.SpanRequest(s, e, n) for s, e, n in job.spans]
    if job.kind == "infill":
        def start(params):
            return tasks.infill(lm, job.text, reqs, params, candidates=job.candidates, cancel=job.cancel,
                                check=job.check)

        if job.require_valid and job.check is not None:
            return rounds.UntilValid(start, job.params, job.candidates, job.require_valid)
        return start(job.params)
    if job.kind == "search":
        return tasks.infill(lm, job.text, reqs, job.params, candidates=1, lengths=job.lengths, cancel=job.cancel,
                            check=job.check)
    if job.kind == "rewrite":
        return chat.rewrite(lm, job.text, reqs[0], job.instruction, job.params, candidates=job.candidates,
                             cancel=job.cancel, check=job.check)
    if job.kind == "continue":
        return tasks.continue_text(lm, job.text[: job.spans[0][0]], job.params, candidates=job.candidates,
                                   cancel=job.cancel)
    raise ValueError(job.kind)


def settle_heap() -> None:
    """Set everything alive now (torch, transformers, the model: millions of objects) aside
    from the cyclic garbage collector. Otherwise a full collection walks them all and
    freezes the UI for 100-300 ms in the middle of a run (tests/bench/tui_latency.py)."""
    gc.freeze()


def leave_a_core(lm) -> None:
    """On the CPU, run the model on all cores but one, so that the UI thread always has a
    core to take keys and paint on (the benchmark in tests/bench/tui_latency.py)."""
    if str(lm.device).startswith("cpu"):
        import torch

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        torch.set_num_threads(max(1, cores - 1))


@contextmanager
def no_full_collections():
    """No full garbage collection while a run is painted: one walks every object the app
    made since :func:`settle_heap` (~36 ms here) and lands between a key press and its
    paint. The young generations still run; the postponed full one comes after the run."""
    young, middle, full = gc.get_threshold()
    gc.set_threshold(young, middle, 1 << 30)
    try:
        yield
    finally:
        gc.set_threshold(young, middle, full)


def execute(lm, job: Job, post: Post) -> None:
    """Run ``job`` to the end (or until ``job.cancel``), posting a message per step."""
    leave_a_core(lm)
    with no_full_collections():
        _execute(lm, job, post)


def _execute(lm, job: Job, post: Post) -> None:
    try:
        task = make_task(lm, job)
        layout = task.layout
    except DgtermError as e:
        post(RunFailed(job, str(e)))
        return
    post(RunStarted(job, layout))
    from dgterm.engine.local.oom import guard_oom
    from dgterm.engine.output.tokens import token_text

    build = FrameBuilder(layout, token_text(lm.tokenizer))
    frames, seen, writer, rounds = job.frames, set(), None, [0]
    try:
        if job.trace:
            writer = _trace_writer(job, task, layout)
        with guard_oom(lm.quant, candidates=job.candidates):
            for event in task:
                if getattr(task, "round", 0) != len(rounds) - 1:  # require_valid drew another round
                    build, rounds = FrameBuilder(layout, token_text(lm.tokenizer)), rounds + [len(frames)]
                frame = build(step_record(event))
                frames.append(frame)
                post(StepMessage(job, frame))
                if writer is not None:
                    writer.step(event, lm.tokenizer)
                    seen.update(event.canvas.unique().tolist())
                    seen.update(event.argmax.unique().tolist())
        result = task.result
        if writer is not None:
            _finish_trace(writer, result, seen, lm)
        if result.run.cancelled:
            post(RunCancelled(job))
            return
        base, rows = task.seeds[0], layout.rows()
        choices = [Choice(list(c.spans), c.score, list(c.lengths), (c.seed - base) % rows, c.thinking, c.entropy,
                          c.valid, c.reason, (c.seed - base) // rows) for c in result.candidates]
        post(RunFinished(job, frames, choices, _stats(result.run) | {"rounds": rounds}))
    except DgtermError as e:
        post(RunFailed(job, str(e)))
    except Exception as e:  # noqa: BLE001
        post(RunFailed(job, f"The run failed ({type(e).__name__}: {e}); the document is unchanged."))
    finally:
        if writer is not None:
            writer.close()


def _stats(run) -> dict:
    return {"tokens_per_second": run.tokens_per_second, "tokens_per_forward": run.tokens_per_forward[0],
            "elapsed": run.elapsed, "steps": list(run.steps)}


def _trace_writer(job, task, layout):
    from dgterm.engine.output.trace import TraceWriter, header

    return TraceWriter(job.trace, header(task, task=job.kind, dgterm={
        "layout": layout.to_json(), "text": job.text, "spans": [list(s) for s in job.spans],
        "instruction": job.instruction}))


def _finish_trace(writer, result, seen, lm) -> None:
    from dgterm.engine.output.tokens import token_text
    from dgterm.engine.output.trace import result_record

    writer.result({**result_record(result), **token_text(lm.tokenizer).recorded(seen)})


def replay(path: str, job: Job, post: Post, delay: float = 0.0, until: int | None = None) -> None:
    """Post a recorded run's steps as if it ran now (``delay`` seconds between steps).
    With ``until``, stop after that many steps and hold the run there until cancelled
    (screenshots and snapshot tests of a run in progress)."""
    try:
        trace = read_replay(path)
    except DgtermError as e:
        post(RunFailed(job, str(e)))
        return
    meta = trace.header["dgterm"]
    layout = Layout.from_json(meta["layout"])
    build = FrameBuilder(layout, RecordedText(trace.result or {}))
    post(RunStarted(job, layout))
    frames = job.frames
    for record in trace.steps:
        if job.cancel.is_set():
            post(RunCancelled(job))
            return
        if until is not None and len(frames) >= until:
            _hold(job)
            post(RunCancelled(job))
            return
        frame = build(record)
        frames.append(frame)
        post(StepMessage(job, frame))
        if delay:
            job.cancel.wait(delay)
    result = trace.result or {}
    cands = result.get("candidates", [])
    if not cands or result.get("stats", {}).get("cancelled"):
        post(RunCancelled(job))
        return
    base = trace.header.get("seed", 0)
    choices = [Choice(c["spans"], c["score"], c["lengths"], c["seed"] - base, c.get("thinking"),
                      c.get("entropy", 0.0), c.get("valid"), c.get("reason", "")) for c in cands]
    stats = result.get("stats", {})
    post(RunFinished(job, frames, choices, {
        "tokens_per_second": stats.get("tokens_per_second", 0.0),
        "tokens_per_forward": (stats.get("tokens_per_forward") or [0.0])[0],
        "elapsed": stats.get("elapsed", 0.0), "steps": stats.get("steps_per_canvas", [])}))


def _hold(job: Job) -> None:
    from textual.worker import get_current_worker

    worker = get_current_worker()
    while not job.cancel.wait(0.05) and not worker.is_cancelled:
        pass


def read_replay(path: str):
    from dgterm.engine.output.trace import read_trace
    from dgterm.errors import InputError

    trace = read_trace(path)
    if "dgterm" not in trace.header:
        raise InputError(f"{path} was not recorded by the editor; record one with `dgterm open FILE --trace {path}`.")
    return trace


def lens(lm, job: Job, post: Post) -> None:
    """Score every token of the region ``job.spans[0]`` by how surely the model keeps it."""
    start, end, _ = job.spans[0]
    leave_a_core(lm)
    try:
        scores = lm.confidence(job.text, start, end, cancel=job.cancel)
    except DgtermError as e:
        post(RunFailed(job, str(e)))
        return
    except Exception as e:  # noqa: BLE001
        post(RunFailed(job, f"The lens failed ({type(e).__name__}: {e}); the document is unchanged."))
        return
    if job.cancel.is_set():
        post(RunCancelled(job))
    else:
        post(LensReady(job, scores))
