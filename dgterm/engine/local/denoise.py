"""The step loop: encode, denoise canvas after canvas, yield a StepEvent per step.

A run is a sequence of *windows*. Before each window the encoder appends to the KV
cache whatever is pending: the previous window's finished canvas, then the window's
own ``prefix`` tokens (the prompt, or the document text between two canvases). The
decoder then refines the window's canvas, with some positions pinned if the window
says so. Continuing text is the special case of one prefix and unpinned windows
until EOS; it reproduces ``model.generate`` exactly (see :mod:`dgterm.engine.local.sampler`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterable
from typing import Any, Protocol

import torch

from dgterm.engine.backend import Engine
from dgterm.engine.events import Run, RunResult, StepEvent, Window, seeds_for
from dgterm.engine.local.prefill import SharedPrefill, _cache_keyword
from dgterm.engine.local.sampler import Pins, Sampler
from dgterm.engine.local.self_conditioning import top_k_logits
from dgterm.engine.local.static import DecoderForward, HostMirror, StaticContext, decoder_forward
from dgterm.engine.params import COMPILED_TOP_K, SamplerParams
from dgterm.errors import SettingError


class LocalModel(Engine, Protocol):
    """What the step loop, scoring, the lens and the batcher read of the model in this process
    (:class:`dgterm.engine.local.loading.LoadedModel`, which calls them): an Engine whose
    transformers model is here."""

    model: Any  # a transformers DiffusionGemmaForBlockDiffusion
    compile: bool  # the decoder step compiled (torch.compile) over a static context

    @property
    def output_pad(self) -> int | None: ...


def denoise(lm: LocalModel, windows: Iterable[Window], params: SamplerParams, *, candidates: int = 1,
            cancel: threading.Event | None = None, stop_at_eos: bool = True, lag: int | None = None,
            static: bool | None = None, backend: Any = None) -> Run:
    """``lag``: how many steps late the loop reads whether every row finished (default: 1
    on CUDA, where the device runs ahead; 0 on the CPU); the tokens are the same either way.
    ``static``: the decoder reads the context in fixed-size buffers
    (:class:`dgterm.engine.local.static.StaticContext`), compiled with ``backend`` (default:
    the model's ``compile`` setting decides both)."""
    if static is None:
        static = backend is not None or lm.compile
        backend = backend or ("inductor" if lm.compile else None)
    if static and params.sc_top_k:
        raise SettingError(COMPILED_TOP_K)
    forward = decoder_forward(lm.model, backend) if static else None
    return Run(_denoise(lm, windows, params, candidates, cancel, stop_at_eos, lag, forward))


@torch.no_grad()
def _denoise(lm: LocalModel, windows: Iterable[Window], params: SamplerParams, batch: int,
             cancel: threading.Event | None, stop_at_eos: bool,
             lag: int | None, forward: DecoderForward | None) -> Generator[StepEvent, None, RunResult]:
    model, device = lm.model, lm.device
    C = lm.canvas_length
    gens = [torch.Generator(device=device).manual_seed(s) for s in seeds_for(params, batch)]
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config.get_text_config(decoder=True))
    prefill = SharedPrefill(model, cache, batch)  # the prompt is encoded once for every candidate
    eos = torch.tensor(lm.eos_ids, dtype=torch.long, device=device)
    pad = lm.output_pad
    sc_dtype = model.model.decoder.embed_tokens.weight.dtype
    cur_len = 0
    pending: torch.Tensor | None = None
    canvases: list[torch.Tensor] = []
    steps: list[int] = []
    forwards = torch.zeros(batch, dtype=torch.int, device=device)
    generated = torch.zeros(batch, dtype=torch.long, device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    t0 = time.perf_counter()
    encode_time = 0.0
    context = StaticContext() if forward is not None else None
    warmup = forward.warmup if forward is not None else 0.0

    def warmed() -> dict[str, float]:  # compiling a new shape, paid once per shape
        return {} if forward is None else {"warm-up": forward.warmup - warmup}

    def result(cancelled: bool = False) -> RunResult:
        return RunResult(canvases=canvases, steps=steps, forwards=forwards.cpu(), generated=generated.cpu(),
                         elapsed=time.perf_counter() - t0, cancelled=cancelled, finished_at_eos=done.cpu(),
                         windows=len(canvases), timings={"encode": encode_time, **warmed()},
                         context=None if cancelled else (prefill, cur_len))

    for wi, window in enumerate(windows):
        # 1. Commit what is pending into the encoder's KV cache.
        parts = [pending] if pending is not None else []
        if window.prefix:
            parts.append(torch.tensor(window.prefix, device=device).expand(batch, -1))
        if parts:
            t = time.perf_counter()
            cur_len = prefill.append(torch.cat(parts, dim=-1), cur_len)
            encode_time += time.perf_counter() - t
        # 2. Denoise the canvas.
        pins = None
        if (pinned := window.pins()) is not None:
            held, known = pinned
            pins = Pins(held.to(device).expand(batch, -1), known.to(device).expand(batch, -1))
        sampler = Sampler(params, lm.vocab_size, gens, pins)
        restrict = restriction(window.allowed, lm.vocab_size, device)
        canvas = sampler.initial_canvas(batch, C, device)
        if window.start is not None:  # the noise is drawn all the same: one random stream with or without a seed
            canvas = window.start.to(device).expand(batch, -1) if pins is None else pins.impose(window.start.to(device))
        positions = torch.arange(cur_len, cur_len + C, dtype=torch.int32, device=device)[None]
        if context is None:
            mask = decoder_mask(model, canvas, cache, cur_len)
            sc, argmax = None, canvas
        else:  # every step one graph: the first step's self-conditioning is masked out
            mask = context.fill(cache, C, model.config.get_text_config(decoder=True).layer_types)
            sc, argmax = torch.zeros(batch, C, lm.vocab_size, dtype=sc_dtype, device=device), canvas
            sc_off, sc_on = torch.zeros(batch, dtype=torch.bool, device=device), torch.ones(batch, dtype=torch.bool,
                                                                                            device=device)
        finished = torch.zeros(batch, dtype=torch.bool, device=device)
        finished_at = torch.zeros(batch, dtype=torch.int32, device=device)  # the step each row finished at
        free = torch.ones(batch, C, dtype=torch.bool, device=device) if pins is None else ~pins.mask
        mirror = HostMirror(device, lag)
        last: StepEvent | None = None
        for step, cur_step in enumerate(reversed(range(1, params.steps + 1)), start=1):
            if cancel is not None and cancel.is_set():
                return result(cancelled=True)
            forwards += ~(finished | done)
            if forward is None:
                logits = decoder_logits(model, canvas, sc, mask, cache, positions, params.sc_top_k)
            else:
                assert context is not None and sc is not None  # set with forward
                logits = forward(canvas, sc, sc_off if step == 1 else sc_on, mask, context, positions)
            if restrict is not None:
                logits = restrict(logits)
            canvas, argmax, sc, finished, accepted, entropy = sampler.step(
                logits, canvas, argmax, sc, finished, cur_step, sc_dtype)
            finished_at = torch.where(finished & (finished_at == 0), step, finished_at)
            news = torch.stack([finished.all().long(), generated[0] + (accepted[0] & free[0]).sum()])
            mirror.push(news, StepEvent(window=wi, step=step, max_steps=params.steps, canvas=canvas, argmax=argmax,
                                        accepted=accepted, entropy=entropy, finished=finished, elapsed=0.0,
                                        pinned=None if pins is None else pins.mask))
            shown, stopped = yield from _deliver(mirror, t0, warmed)
            last = shown or last
            if stopped:  # every row had finished at ``last``: any later step is undone
                break
        else:
            shown, _ = yield from _deliver(mirror, t0, warmed, everything=True)
            last = shown or last
        assert last is not None  # a canvas has one step at least
        steps.append(last.step)
        sampler.rewind(finished_at.tolist())
        # 3. Finish the canvas: after EOS everything is pad, and a finished candidate stays so
        #    (with no pad id, as in generate, the tokens stay).
        final = last.argmax.clone()
        if stop_at_eos:
            done = pad_after_eos(final, done, eos, pad)
        generated += generated_tokens(final, free, pad)
        canvases.append(final)
        pending = final
        if stop_at_eos and done.all():
            break
    return result()


def _deliver(mirror: HostMirror, t0: float, warmed: Callable[[], dict[str, float]],
             everything: bool = False) -> Generator[StepEvent, None, tuple[StepEvent | None, bool]]:
    """Yield the steps whose numbers have reached the host; returns the last one yielded and
    whether every row had finished at it (the later steps already queued are dropped)."""
    event = None
    for (all_finished, tokens), event in mirror.ready(everything):
        event.tokens, event.elapsed = int(tokens), time.perf_counter() - t0
        event.warmup = warmed().get("warm-up", 0.0)
        yield event
        if all_finished:
            mirror.clear()
            return event, True
    return event, False


def pad_after_eos(final: torch.Tensor, done: torch.Tensor, eos: torch.Tensor, pad_id: int | None) -> torch.Tensor:
    """In place: pad after each row's first EOS, and all of a row already done; returns the
    new done mask. With no pad id (as in ``generate``) the tokens stay; only the mask moves."""
    is_eos = torch.isin(final, eos)
    if pad_id is not None:
        final[done] = pad_id
        is_eos &= ~done[:, None]
        csum = is_eos.cumsum(-1)
        final[(csum > 0) & ~((csum == 1) & is_eos)] = pad_id
    return done | is_eos.any(-1)


def generated_tokens(final: torch.Tensor, free: torch.Tensor, pad_id: int | None) -> torch.Tensor:
    """Tokens produced per row: the free positions, less the pad (none to count without a pad id)."""
    return (free if pad_id is None else (final != pad_id) & free).sum(-1)


def restriction(allowed: dict[int, list[int]], vocab: int,
                device: str | torch.device) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """A function that rules out, at each position of ``allowed``, every other token (their
    logits become the dtype's lowest half, so they are never sampled, nor the argmax: finite,
    as the fused sampler's entropy needs); None when nothing is."""
    if not allowed:
        return None
    positions = torch.tensor(sorted(allowed), device=device)
    barred = torch.ones(len(allowed), vocab, dtype=torch.bool, device=device)
    for row, p in enumerate(sorted(allowed)):
        barred[row, torch.tensor(allowed[p], dtype=torch.long, device=device)] = False

    def restrict(logits: torch.Tensor) -> torch.Tensor:
        logits[:, positions] = logits[:, positions].masked_fill(barred, torch.finfo(logits.dtype).min / 2)
        return logits

    return restrict


def decoder_mask(model: Any, canvas: torch.Tensor, cache: Any, cur_len: int, visible: int | None = None) -> Any:
    """The decoder's attention masks for a canvas over ``cur_len`` cached tokens (built once per
    window); with ``visible``, the canvas positions from there on are hidden (a narrower canvas)."""
    full = torch.ones(canvas.shape[0], cur_len + canvas.shape[1], dtype=torch.bool, device=canvas.device)
    if visible is not None:
        full[:, cur_len + visible :] = False
    return model.model.decoder.create_diffusion_decoder_attention_mask(model.config, canvas.unsqueeze(-1), cache, full)


def decoder_logits(model: Any, canvas: torch.Tensor, self_conditioning: torch.Tensor | None, mask: Any, cache: Any,
                   positions: torch.Tensor, sc_top_k: int = 0) -> torch.Tensor:
    """One decoder forward over the canvas: the logits of every canvas position (``sc_top_k``:
    self-conditioned on the top k of ``self_conditioning`` only)."""
    inputs = dict(decoder_input_ids=canvas, decoder_attention_mask=mask, decoder_position_ids=positions,
                  **{_cache_keyword(model): cache})
    if sc_top_k:
        return top_k_logits(model, sc_top_k, self_conditioning, **inputs)
    return model(**inputs, self_conditioning_logits=self_conditioning).logits
