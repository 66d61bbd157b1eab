"""Sampler parameters: the checkpoint's generation_config.json, overridable per call."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from dgterm.errors import SettingError

# whole-number settings and their ranges (None allowed for seed and canvases)
WHOLE = {"steps": (1, 100_000), "stability": (0, 100_000), "max_new_tokens": (1, 1 << 24),
         "canvases": (1, 1 << 20), "seed": (0, (1 << 63) - 1), "max_length": (1, 1 << 24),
         "sc_top_k": (0, 1 << 24)}
OPTIONAL = ("seed", "canvases", "max_length")
DEFAULT_MAX_NEW_TOKENS = 256  # transformers' default; max_length counts only while max_new_tokens is left at it
REAL = ("entropy_bound", "t_max", "t_min", "confidence")
# The settings of the denoising sampler itself: the per-request ``dgterm.sampler`` of `dgterm serve`
# (what the remote engine sends), and the first of the command-line sampler flags.
SAMPLER_FIELDS = ("steps", "entropy_bound", "t_max", "t_min", "stability", "confidence")
OPT_IN_FIELDS = ("sc_top_k",)  # also taken by `dgterm serve`; the remote engine sends them only when set
MODES = ("fused", "reference")  # how a step is drawn (dgterm.engine.local.sampler)
# How spans are laid out (the infill task, the lens, the editor's token counts):
DEFAULT_INSERT_TOKENS = 16  # tokens an empty span (an insertion point) asks for
CHARS_PER_TOKEN_BOUND = 8  # generous: how many characters of context to tokenize per token wanted
# top-k self-conditioning (sc_top_k) runs in the eager step loop and in `dgterm serve`'s batcher
COMPILED_TOP_K = ("Top-k self-conditioning (--sc-top-k) does not run in the compiled step (--compile); "
                  "drop one of them.")
REMOTE_TOP_K = ("Top-k self-conditioning (--sc-top-k) runs in this process or on dgterm serve, not on vLLM; "
                "drop the flag or give a dgterm serve address.")
# Refine (dgterm.engine.tasks.refine): a token of the span whose confidence (the lens's probability that
# the model keeps it) is under this is re-noised and drawn again; the others are pinned.
DEFAULT_REFINE_BELOW = 0.1


def search_lengths(tokens: int, canvas_length: int) -> list[int]:
    """The lengths a length search tries for a span of ``tokens`` tokens: half, as many, half
    again and twice as many, within half a canvas (the editor's search, the language server)."""
    return sorted({max(1, min(canvas_length // 2, k)) for k in (tokens // 2, tokens, tokens + tokens // 2, 2 * tokens)})


@dataclass(frozen=True)
class SamplerParams:
    steps: int = 48
    entropy_bound: float = 0.1
    t_max: float = 0.8
    t_min: float = 0.4
    stability: int = 1
    confidence: float = 0.005
    seed: int | None = None
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    canvases: int | None = None  # at most this many canvases; None: from max_new_tokens
    max_length: int | None = None  # prompt + generated tokens, when max_new_tokens is left at its default
    mode: str = "fused"  # or "reference": token for token what model.generate draws
    # self-conditioning from the top k of the previous step's logits (0: all of them, exact);
    # approximate, opt-in (dgterm.engine.local.self_conditioning)
    sc_top_k: int = 0

    def __post_init__(self):
        for name, (low, high) in WHOLE.items():
            v = getattr(self, name)
            if v is None and name in OPTIONAL:
                continue
            if isinstance(v, bool) or not isinstance(v, int):
                raise SettingError(f"{name} must be a whole number, not {v!r}")
            if v < low:
                raise SettingError(f"{name} must be at least {low}")
            if v > high:
                raise SettingError(f"{name} must be at most {high}")
        for name in REAL:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise SettingError(f"{name} must be a number, not {v!r}")
        if self.mode not in MODES:
            raise SettingError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.sc_top_k and self.mode == "reference":
            raise SettingError("top-k self-conditioning (sc_top_k) is an approximation and the reference sampler "
                               "draws exactly what generate draws: drop one of them")
        if self.entropy_bound <= 0:
            raise SettingError("entropy bound must be greater than 0")
        if not 0 <= self.t_min < self.t_max:
            raise SettingError("temperatures need 0 <= t_min < t_max")
        if self.stability < 0 or self.confidence <= 0:
            raise SettingError("stability must be >= 0 and confidence > 0")

    def replace(self, **overrides) -> SamplerParams:
        """A copy with the overrides that are not None applied."""
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise SettingError(f"unknown setting(s) {', '.join(unknown)}; the settings are "
                             f"{', '.join(f.name for f in dataclasses.fields(self))}")
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def new_tokens(self, prompt_length: int = 0) -> int:
        """Tokens to generate after a prompt, as ``model.generate`` reads its config:
        ``max_length`` minus the prompt when ``max_new_tokens`` is left at its default."""
        if self.max_length and self.max_new_tokens == DEFAULT_MAX_NEW_TOKENS:
            return self.max_length - prompt_length
        return self.max_new_tokens

    def max_canvases(self, canvas_length: int, prompt_length: int = 0) -> int:
        n = max(0, -(-self.new_tokens(prompt_length) // canvas_length))
        return min(n, self.canvases) if self.canvases else n

    @classmethod
    def from_generation_config(cls, gc) -> SamplerParams:
        """Read a transformers DiffusionGemmaGenerationConfig (or None: the reference defaults)."""
        if gc is None:
            return cls()
        defaults = cls()
        sampler = getattr(gc, "sampler_config", None)

        def pick(name, default):
            value = getattr(gc, name, None)
            return default if value is None else value

        return cls(
            steps=pick("max_denoising_steps", defaults.steps),
            entropy_bound=float(getattr(sampler, "entropy_bound", defaults.entropy_bound) or defaults.entropy_bound),
            t_max=float(pick("t_max", defaults.t_max)),
            t_min=float(pick("t_min", defaults.t_min)),
            stability=pick("stability_threshold", defaults.stability),
            confidence=float(pick("confidence_threshold", defaults.confidence)),
            max_new_tokens=pick("max_new_tokens", defaults.max_new_tokens),
            max_length=getattr(gc, "max_length", None),
        )
