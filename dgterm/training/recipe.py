"""The recipe that builds the bundled model: tokenizer, config, training, export.

Run as ``dgterm train OUT`` (dgterm.commands.train). It trains the
real ``DiffusionGemmaForBlockDiffusion`` class at a tiny size on the offline corpus
of :mod:`dgterm.training.corpus`, on the CPU or on a GPU when one is there.

Each example is a clean prefix (the encoder's input, random length) followed by a
canvas of ``canvas_length`` tokens corrupted with uniform-state noise: each token is
replaced by a uniformly random token with probability ``t``. Half the examples noise
the whole canvas (``t`` drawn per example); the other half noise only one to three
contiguous spans and leave the rest clean — the regime that infill runs in. Half
the batches are self-conditioned: a first pass without gradient, whose logits feed
the second pass through ``self_conditioning_logits``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from dgterm.errors import InputError
from dgterm.training import corpus

PAD, EOS, BOS = 0, 1, 2
SPECIAL_TOKENS = [
    "<pad>", "<eos>", "<bos>", "<unk>",
    "<|turn>", "<turn|>", "<|channel>", "<channel|>",
    "<|image>", "<image|>", "<|image_token|>",
]
TURN_END = SPECIAL_TOKENS.index("<turn|>")
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|turn>{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{{ message['content'] | trim }}<turn|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|turn>model\n{% endif %}"
)


@dataclass
class Recipe:
    vocab_size: int = 4096
    hidden_size: int = 256
    layers: int = 4
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 64
    intermediate_size: int = 512
    experts: int = 4
    top_k: int = 2
    expert_size: int = 256
    canvas_length: int = 128
    max_prefix: int = 192
    batch_size: int = 16
    steps: int = 3000
    lr: float = 2e-3
    warmup: int = 150
    weight_decay: float = 0.05
    clean_weight: float = 0.25  # loss weight of positions the noise left clean
    chat_fraction: float = 0.08
    seed: int = 0
    # continued training (the second recipe, `dgterm train OUT --from bundled`): start from a
    # checkpoint's weights and tokenizer; some span-mode examples noise a whole line or the tail
    # of one after `=`, `(`, `,` or `:` (the infills users ask for); t = u ** power (power > 1:
    # more low-noise examples, the steps the sampler ends on)
    init_from: str | None = None
    aligned_fraction: float = 0.0
    noise_power: float = 1.0


# ---------------------------------------------------------------- tokenizer


def build_tokenizer(texts, vocab_size: int):
    """Byte-level BPE with DiffusionGemma's special-token layout (pad 0, eos 1, bos 2)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>",
        additional_special_tokens=SPECIAL_TOKENS[4:],
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


# ---------------------------------------------------------------- model


def model_config(r: Recipe):
    from transformers import DiffusionGemmaConfig

    v = r.vocab_size
    # the special ids go on the text config and on the top-level one (an extra keyword there)
    special: dict[str, Any] = dict(pad_token_id=PAD, eos_token_id=[EOS, TURN_END], bos_token_id=BOS)
    text = dict(
        vocab_size=v, hidden_size=r.hidden_size, intermediate_size=r.intermediate_size,
        num_hidden_layers=r.layers, num_attention_heads=r.heads, num_key_value_heads=r.kv_heads,
        head_dim=r.head_dim, global_head_dim=r.head_dim, num_global_key_value_heads=r.kv_heads,
        max_position_embeddings=32768, sliding_window=512,
        layer_types=["sliding_attention"] * (r.layers - 1) + ["full_attention"],
        num_experts=r.experts, top_k_experts=r.top_k, moe_intermediate_size=r.expert_size,
        enable_moe_block=True, **special,
    )
    # The class always builds a Gemma 4 vision tower; keep it negligible.
    vision = dict(
        model_type="gemma4_vision", hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=1, num_key_value_heads=1, head_dim=16, position_embedding_size=64, patch_size=4,
    )
    return DiffusionGemmaConfig(
        text_config=text, vision_config=vision, canvas_length=r.canvas_length,
        boi_token_id=SPECIAL_TOKENS.index("<|image>"), eoi_token_id=SPECIAL_TOKENS.index("<image|>"),
        image_token_id=SPECIAL_TOKENS.index("<|image_token|>"), **special,
    )


def generation_config(steps=16, entropy_bound=0.1, t_max=0.5, t_min=0.1, max_new_tokens=128):
    """Defaults tuned for the bundled model on held-out infill (`dgterm bench quality --sweep`)."""
    from transformers.models.diffusion_gemma.generation_diffusion_gemma import (
        DiffusionGemmaGenerationConfig,
        EntropyBoundSamplerConfig,
    )

    return DiffusionGemmaGenerationConfig(
        max_new_tokens=max_new_tokens, max_denoising_steps=steps,
        sampler_config=EntropyBoundSamplerConfig(entropy_bound=float(entropy_bound)),
        t_min=float(t_min), t_max=float(t_max), stability_threshold=1, confidence_threshold=0.005,
        pad_token_id=PAD, eos_token_id=[EOS, TURN_END], bos_token_id=BOS,
    )


# ---------------------------------------------------------------- data


class TokenStream:
    """All training files as one id stream, each file followed by EOS."""

    def __init__(self, tokenizer: Any, files: Iterable[corpus.CorpusFile]) -> None:
        files = list(files)
        ids: list[int] = []
        starts: list[int] = []
        for f in files:
            starts.append(len(ids))
            ids.extend(tokenizer(f.text, add_special_tokens=False)["input_ids"])
            ids.append(EOS)
        self.ids = torch.tensor(ids, dtype=torch.long)
        self.starts = torch.tensor(starts, dtype=torch.long)
        self.long_texts = [f.text for f in files if len(f.text) >= 400]


def make_batch(stream: TokenStream, r: Recipe, g: torch.Generator, tokenizer):
    """One batch: (prefix ids, clean canvas, noisy canvas, corrupted mask, position offset)."""
    b, c = r.batch_size, r.canvas_length
    if torch.rand((), generator=g) < r.chat_fraction:
        return chat_batch(stream, r, g, tokenizer)
    from_start = torch.rand((), generator=g) < 0.1
    p = 1 if from_start else int(torch.randint(1, r.max_prefix + 1, (), generator=g))
    if from_start:
        starts = stream.starts[torch.randint(len(stream.starts), (b,), generator=g)]
        windows = torch.stack([stream.ids[s : s + c] for s in starts.tolist()])
        windows = F.pad(windows, (0, c - windows.shape[1]), value=PAD)
        prefix = torch.full((b, 1), BOS)
        canvas = windows
    else:
        starts = torch.randint(0, len(stream.ids) - p - c, (b,), generator=g)
        windows = torch.stack([stream.ids[s : s + p + c] for s in starts.tolist()])
        prefix, canvas = windows[:, :p], windows[:, p:].clone()
    # Everything after the first EOS of a canvas is pad, as generation leaves it.
    is_eos = canvas == EOS
    after = (is_eos.cumsum(-1) > 0) & ~((is_eos.cumsum(-1) == 1) & is_eos)
    canvas[after] = PAD
    return prefix, canvas


def chat_batch(stream: TokenStream, r: Recipe, g: torch.Generator, tokenizer):
    """Chat-formatted examples: 'continue' or 'rewrite' a snippet, answered in the canvas."""
    b, c = r.batch_size, r.canvas_length
    prefixes, canvases = [], []
    for _ in range(b):
        text = stream.long_texts[int(torch.randint(len(stream.long_texts), (), generator=g))]
        a = int(torch.randint(0, len(text) - 160, (), generator=g))
        n = int(torch.randint(40, 160, (), generator=g))
        snippet, after = text[a : a + n], text[a + n : a + n + 200]
        if torch.rand((), generator=g) < 0.5:
            ask, answer = "Continue this text:\n" + snippet, after
        else:
            ask, answer = "Rewrite this text:\n" + snippet, snippet
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": ask}], add_generation_prompt=True,
                                               tokenize=False)
        prefixes.append(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        ans = tokenizer(answer, add_special_tokens=False)["input_ids"][: c - 1] + [TURN_END]
        canvases.append(ans + [PAD] * (c - len(ans)))
    p = max(len(x) for x in prefixes)
    # Left-pad the prompts with BOS repeats: they are rare and harmless for the encoder.
    prefix = torch.tensor([[BOS] * (p - len(x)) + x for x in prefixes])
    return prefix, torch.tensor(canvases)


def token_classes(tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """(breaks, openers) over the vocabulary: tokens holding a newline, tokens ending in an
    opener of an expression (``=``, ``(``, ``,``, ``:``)."""
    texts = [tokenizer.decode([i]) for i in range(len(tokenizer))]
    breaks = torch.tensor(["\n" in t for t in texts])
    openers = torch.tensor([t.rstrip(" ").endswith(("=", "(", ",", ":")) for t in texts])
    return breaks, openers


def aligned_spans(canvas: torch.Tensor, classes, g: torch.Generator) -> torch.Tensor:
    """(B, C) bool: per row one whole line (between line breaks) or, half the time when it
    has one, the tail of that line after an opener."""
    breaks, openers = classes
    b, c = canvas.shape
    out = torch.zeros(b, c, dtype=torch.bool)
    for i in range(b):
        text = (canvas[i] != PAD).nonzero()[:, 0]
        n = int(text[-1]) + 1 if len(text) else 0  # the pad after an EOS is no line
        bounds = [-1, *[q for q in breaks[canvas[i]].nonzero()[:, 0].tolist() if q < n], n]
        lines = [(a + 1, z) for a, z in zip(bounds, bounds[1:]) if z > a + 1]
        if not lines:
            continue
        start, end = lines[int(torch.randint(len(lines), (), generator=g))]
        inner = [q for q in range(start, end - 1) if openers[canvas[i, q]]]
        if inner and torch.rand((), generator=g) < 0.5:
            start = inner[int(torch.randint(len(inner), (), generator=g))] + 1
        out[i, start:end] = True
    return out


def corrupt(canvas: torch.Tensor, r: Recipe, g: torch.Generator, classes=None):
    """Uniform-state noise: global (whole canvas at rate t) or spans (infill regime); with
    ``classes`` (token_classes) and ``r.aligned_fraction``, some spans are lines or line tails."""
    b, c = canvas.shape
    t = torch.rand(b, 1, generator=g) ** r.noise_power
    noise_all = torch.rand(b, c, generator=g) < t
    # span mode: 1-3 spans of 1..48 tokens, noised at rate t inside
    span = torch.zeros(b, c, dtype=torch.bool)
    pos = torch.arange(c)
    for _ in range(3):
        start = torch.randint(0, c, (b, 1), generator=g)
        length = torch.randint(1, 49, (b, 1), generator=g)
        use = torch.rand(b, 1, generator=g) < 0.6
        span |= use & (pos >= start) & (pos < start + length)
    if classes is not None and r.aligned_fraction > 0:
        aligned = torch.rand(b, 1, generator=g) < r.aligned_fraction
        span = torch.where(aligned, aligned_spans(canvas, classes, g), span)
    span_mode = torch.rand(b, 1, generator=g) < 0.5
    mask = torch.where(span_mode, span & noise_all, noise_all)
    random_tokens = torch.randint(0, r.vocab_size, (b, c), generator=g)
    return torch.where(mask, random_tokens, canvas), mask


# ---------------------------------------------------------------- training


def loss_on(model, prefix, noisy, clean, mask, offset, r: Recipe, self_condition: bool):
    b, p = prefix.shape
    c = noisy.shape[1]
    pos = torch.arange(p, device=prefix.device)[None] + offset
    dpos = torch.arange(p, p + c, device=prefix.device)[None] + offset
    kwargs = dict(input_ids=prefix, position_ids=pos, decoder_input_ids=noisy, decoder_position_ids=dpos)
    sc = None
    if self_condition:
        with torch.no_grad():
            sc = model(**kwargs).logits
    logits = model(**kwargs, self_conditioning_logits=sc).logits
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), clean.reshape(-1), reduction="none").view(b, c)
    w = torch.where(mask, 1.0, r.clean_weight)
    return (ce * w).sum() / w.sum(), (ce * mask).sum() / mask.sum().clamp(min=1)


def train(out: Path, r: Recipe, resume: bool = True, device: str | None = None, log_every: int = 20):
    from tqdm import tqdm
    from transformers import AutoTokenizer, DiffusionGemmaForBlockDiffusion

    out.mkdir(parents=True, exist_ok=True)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(r.seed)
    tok_dir = out / "tokenizer"
    if not (tok_dir / "tokenizer.json").exists():
        if r.init_from:  # the checkpoint's own tokenizer: its weights are trained on those ids
            AutoTokenizer.from_pretrained(r.init_from).save_pretrained(tok_dir)
        else:
            files = list(corpus.iter_files("train"))
            build_tokenizer((f.text for f in files), r.vocab_size).save_pretrained(tok_dir)
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    classes = token_classes(tokenizer) if r.aligned_fraction > 0 else None
    cache = out / "stream.pt"
    if cache.exists():
        try:
            stream = torch.load(cache, weights_only=False)
        except Exception as e:  # noqa: BLE001 - any damage to the pickle
            raise InputError(f"{cache} cannot be read ({type(e).__name__}); delete it, and it is rebuilt "
                             "from the corpus.") from None
    else:
        stream = TokenStream(tokenizer, corpus.iter_files("train"))
        torch.save(stream, cache)

    if r.init_from:  # its weights (tied as the class ties them), trained on from here
        model = DiffusionGemmaForBlockDiffusion.from_pretrained(r.init_from, dtype=torch.float32)
    else:
        model = DiffusionGemmaForBlockDiffusion(model_config(r))
    model = model.to(device)  # type: ignore[arg-type]  # transformers' wrapper of `to` is typed as unbound
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": r.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=r.lr, betas=(0.9, 0.98),
    )

    def lr_at(step):
        if step < r.warmup:
            return (step + 1) / r.warmup
        progress = (step - r.warmup) / max(1, r.steps - r.warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    g = torch.Generator().manual_seed(r.seed)
    step, log = 0, []
    ckpt = out / "checkpoint.pt"
    if resume and ckpt.exists():
        try:
            state = torch.load(ckpt, weights_only=False)
        except Exception as e:  # noqa: BLE001 - any damage to the pickle
            raise InputError(f"{ckpt} cannot be read ({type(e).__name__}); delete it or pass --no-resume.") from None
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        g.set_state(state["gen"])
        torch.set_rng_state(state["torch_rng"])
        step, log = state["step"], state["log"]
    (out / "recipe.json").write_text(json.dumps(asdict(r), indent=2))

    model.train()
    tokens = 0
    t0 = time.perf_counter()
    bar = tqdm(total=r.steps, initial=step, unit="step", dynamic_ncols=True)
    while step < r.steps:
        prefix, clean = make_batch(stream, r, g, tokenizer)
        noisy, mask = corrupt(clean, r, g, classes)
        offset = int(torch.randint(0, 2048, (), generator=g))
        self_condition = bool(torch.rand((), generator=g) < 0.5)
        prefix, clean, noisy, mask = (x.to(device) for x in (prefix, clean, noisy, mask))
        loss, noised_loss = loss_on(model, prefix, noisy, clean, mask, offset, r, self_condition)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        step += 1
        tokens += prefix.numel() + clean.numel()
        rate = tokens / (time.perf_counter() - t0)
        bar.set_postfix(loss=f"{loss.item():.3f}", noised=f"{noised_loss.item():.3f}", tok_s=f"{rate:.0f}")
        bar.update(1)
        if step % log_every == 0:
            log.append({"step": step, "loss": round(loss.item(), 4), "noised_loss": round(noised_loss.item(), 4),
                        "tok_s": round(rate), "lr": sched.get_last_lr()[0]})
        if step % 200 == 0 or step == r.steps:
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "gen": g.get_state(), "torch_rng": torch.get_rng_state(), "step": step, "log": log}, tmp)
            os.replace(tmp, ckpt)
    bar.close()
    return model, tokenizer, log


def export(model, tokenizer, dest: Path, gen_kwargs: dict | None = None):
    """Write a loadable checkpoint: config, generation config, safetensors, tokenizer."""
    dest.mkdir(parents=True, exist_ok=True)
    model = model.to("cpu").eval()
    model.generation_config = generation_config(**(gen_kwargs or {}))
    model.save_pretrained(dest, safe_serialization=True)
    tokenizer.save_pretrained(dest)
