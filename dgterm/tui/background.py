"""What the model worker does, off the UI thread: load a model, drive a task, replay a
trace, compute the confidence lens. Every function here reports only by ``send``-ing
typed messages (the App's ``post_message``); none touches a widget. torch is imported
inside the functions."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import replace

from textual.message import Message

from dgterm.engine.output.frames import Choice, DraftToken, Frame, Timeline, step_record
from dgterm.engine.output.tokens import RecordedText
from dgterm.errors import DgtermError
from dgterm.tui.job import Job
from dgterm.tui.messages import (
    LensReady,
    ModelFailed,
    ModelLoaded,
    RunCancelled,
    RunFailed,
    RunFinished,
    RunStarted,
    StepMessage,
)

Send = Callable[[Message], object]  # the App's post_message, from another thread


def load_model(engine_args, send: Send) -> None:
    """Load the engine ``engine_args`` names and send ModelLoaded or ModelFailed."""
    try:
        lm = engine_args.load()
    except DgtermError as e:
        send(ModelFailed(str(e)))
        return
    except Exception as e:  # noqa: BLE001 - anything else still becomes one sentence
        send(ModelFailed(f"The model could not be loaded ({type(e).__name__}: {e}); check the checkpoint."))
        return
    send(ModelLoaded(lm))


def make_task(lm, job: Job):
    from dgterm.engine import tasks
    from dgterm.engine.tasks import chat
    from dgterm.engine.tasks.until_valid import until_valid

    reqs = [tasks.SpanRequest(s, e, n) for s, e, n in job.spans]
    if job.kind == "infill":
        def start(params):
            return tasks.infill(lm, job.text, reqs, params, candidates=job.candidates, cancel=job.cancel,
                                check=job.check)

        return until_valid(start, job.params or lm.defaults, job.candidates,
                           job.require_valid if job.check is not None else 0)
    if job.kind == "search":
        return tasks.infill(lm, job.text, reqs, job.params, candidates=1, lengths=job.lengths, cancel=job.cancel,
                            check=job.check)
    if job.kind == "rewrite":
        return chat.rewrite(lm, job.text, reqs[0], job.instruction, job.params, candidates=job.candidates,
                             cancel=job.cancel, check=job.check, thinking=job.thinking)
    if job.kind == "refine":
        from dgterm.engine.tasks.refine import refine

        a, b, _ = job.spans[0]
        return refine(lm, job.text, a, b, job.params, below=job.below, lens=job.lens, candidates=job.candidates,
                      cancel=job.cancel, check=job.check)
    if job.kind == "continue":
        return tasks.continue_text(lm, job.text[: job.spans[0][0]], job.params, candidates=job.candidates,
                                   cancel=job.cancel)
    raise ValueError(job.kind)


def nothing_to_refine(job: Job, e: DgtermError) -> bool:
    """Whether ``e`` says a refine found no token under its threshold: a notice, not a failure."""
    if job.kind != "refine":
        return False
    from dgterm.engine.tasks.refine import NothingToRefine  # imported already: make_task ran it

    return isinstance(e, NothingToRefine)


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


def execute(lm, job: Job, send: Send) -> None:
    """Run ``job`` to the end (or until ``job.cancel``), sending a message per step."""
    leave_a_core(lm)
    with no_full_collections():
        _execute(lm, job, send)


def _execute(lm, job: Job, send: Send) -> None:
    try:
        task = make_task(lm, job)
        layout = task.layout
    except DgtermError as e:
        send(RunFailed(job, str(e), notice=nothing_to_refine(job, e)))
        return
    send(RunStarted(job, layout))
    from dgterm.engine.local.oom import guard_oom
    from dgterm.engine.output.tokens import token_text
    from dgterm.engine.output.trace import TraceWriter

    own = job.frames if job.kind != "refine" else []  # a refine's frames are of its runs: see as_span
    timeline, writer = Timeline(layout, token_text(lm.tokenizer), own), None
    try:
        if job.trace and job.kind != "refine":  # a trace replays spans of the document; a refine's runs are not
            writer = TraceWriter(job.trace, task, job.kind, job.text, job.spans, job.instruction)
        with guard_oom(lm.quant, candidates=job.candidates):
            for event in task:
                frame = timeline.add(step_record(event), task.round)
                if own is not job.frames:
                    frame = as_span(frame, job, [(r.start, r.end) for r in task.plans[0].spans])
                    job.frames.append(frame)
                send(StepMessage(job, frame))
                if writer is not None:
                    writer.step(event)
        result = task.result
        if writer is not None:
            writer.finish()
        if result.run.cancelled:
            send(RunCancelled(job))
            return
        choices = [Choice.of(c, task.seeds[0], layout.rows()) for c in result.candidates]
        if job.kind == "refine":  # the span's whole new text, as for every other run
            a, b, _ = job.spans[0]
            choices = [replace(ch, texts=[c.text[a : len(c.text) - (len(job.text) - b)]])
                       for ch, c in zip(choices, result.candidates)]
        send(RunFinished(job, job.frames, choices, _stats(result.run) | {"rounds": timeline.starts}))
    except DgtermError as e:
        send(RunFailed(job, str(e)))
    except Exception as e:  # noqa: BLE001
        send(RunFailed(job, f"The run failed ({type(e).__name__}: {e}); the document is unchanged."))
    finally:
        if writer is not None:
            writer.close()


def as_span(frame: Frame, job: Job, runs: list[tuple[int, int]]) -> Frame:
    """A refine's step as a step of its span: the kept text between the runs, pinned, and
    each run's live draft (the editor paints drafts in place of the document's spans)."""
    a, b, _ = job.spans[0]
    cuts = [a] + [x for run in runs for x in run] + [b]
    kept = [DraftToken(job.text[s:e], "pinned", 0.0) for s, e in zip(cuts[::2], cuts[1::2])]
    drafts = [[[kept[0]] + [t for run, k in zip(row, kept[1:]) for t in [*run, k]]] for row in frame.drafts]
    return replace(frame, drafts=drafts)


def _stats(run) -> dict:
    return {"tokens_per_second": run.tokens_per_second, "tokens_per_forward": run.tokens_per_forward[0],
            "elapsed": run.elapsed, "steps": list(run.steps)}


def replay_job(path: str) -> tuple[Job, str | None]:
    """The run a trace recorded, as a Job for the editor to replay: ``text`` and ``spans`` as
    recorded (the caller puts them into the document and fills in ``span_ids``), and the
    sentence to show when the trace's sampler settings are not valid (the replay then shows
    the defaults). A trace that cannot be replayed raises a DgtermError of one sentence."""
    from dgterm.engine.output.trace import read_replay
    from dgterm.engine.params import SamplerParams

    trace = read_replay(path)
    header = trace.header
    notice = None
    try:
        params = SamplerParams(**header.get("params", {}))
    except (TypeError, ValueError) as e:  # TypeError: a setting this version does not know
        params = SamplerParams()
        notice = f"The trace's sampler settings are not valid ({e}); replaying with the defaults."
    return Job(trace.kind, header["text"], [tuple(s) for s in header["spans"]], params=params,
               instruction=header.get("instruction", "")), notice


def replay(path: str, job: Job, send: Send, delay: float = 0.0, until: int | None = None) -> None:
    """Send a recorded run's steps as if it ran now (``delay`` seconds between steps).
    With ``until``, stop after that many steps and hold the run there until cancelled
    (screenshots and snapshot tests of a run in progress)."""
    from dgterm.engine.output.trace import read_replay

    try:
        trace = read_replay(path)
    except DgtermError as e:
        send(RunFailed(job, str(e)))
        return
    layout, result = trace.layout, trace.result or {}
    timeline = Timeline(layout, RecordedText(result), job.frames)
    send(RunStarted(job, layout))
    for record in trace.steps:
        if job.cancel.is_set():
            send(RunCancelled(job))
            return
        if until is not None and len(job.frames) >= until:
            _hold(job)
            send(RunCancelled(job))
            return
        send(StepMessage(job, timeline.add(record, record.get("round", 0))))
        if delay:
            job.cancel.wait(delay)
    cands = result.get("candidates", [])
    if not cands or result.get("stats", {}).get("cancelled"):
        send(RunCancelled(job))
        return
    choices = [Choice.from_record(c, trace.header.get("seed", 0), layout.rows()) for c in cands]
    stats = result.get("stats", {})
    send(RunFinished(job, job.frames, choices, {
        "tokens_per_second": stats.get("tokens_per_second", 0.0),
        "tokens_per_forward": (stats.get("tokens_per_forward") or [0.0])[0],
        "elapsed": stats.get("elapsed", 0.0), "steps": stats.get("steps_per_canvas", []),
        "rounds": timeline.starts}))


def _hold(job: Job) -> None:
    from textual.worker import get_current_worker

    worker = get_current_worker()
    while not job.cancel.wait(0.05) and not worker.is_cancelled:
        pass


def lens(lm, job: Job, send: Send) -> None:
    """Score every token of the region ``job.spans[0]`` by how surely the model keeps it."""
    start, end, _ = job.spans[0]
    leave_a_core(lm)
    try:
        scores = lm.confidence(job.text, start, end, cancel=job.cancel)
    except DgtermError as e:
        send(RunFailed(job, str(e)))
        return
    except Exception as e:  # noqa: BLE001
        send(RunFailed(job, f"The lens failed ({type(e).__name__}: {e}); the document is unchanged."))
        return
    if job.cancel.is_set():
        send(RunCancelled(job))
    else:
        send(LensReady(job, scores))
