"""Quantization plans for DiffusionGemma (MoE experts included) and the memory planner.

``BitsAndBytesConfig`` quantizes ``nn.Linear`` only, but DiffusionGemma keeps its 128
experts per layer as two fused 3-D parameters (``experts.gate_up_proj`` (E, 2I, H) and
``experts.down_proj`` (E, H, I)): 22.8 B of the 26B-A4B's 25.8 B parameters. Here every
weight is classified into a *component* and a *plan* says which format each component
gets:

==================  ======  ======  ======
component           bf16    int8    nf4
==================  ======  ======  ======
experts             bf16    int8    nf4
attention           bf16    int8    int8
mlp (dense)         bf16    int8    int8
self_conditioning   bf16    int8    int8
router              bf16    bf16    bf16
embed (= lm_head)   bf16    bf16    bf16
vision              bf16    bf16    int8
other (norms, ...)  bf16    bf16    bf16
==================  ======  ======  ======

("bf16" means the compute dtype: bfloat16 on a GPU, float32 on the CPU.) The tied
embedding stays in the compute dtype in every plan: the decoder multiplies the softmax of
the self-conditioning logits by the whole ``embed_tokens.weight`` at every step and the
sampler reads its dtype, and quantizing it costs more quality than anything else per
byte saved (docs/quantization.md has the measurement).

Quantized modules replace the originals with the same forward signature: a
``QuantizedExperts`` for each ``DiffusionGemmaTextExperts`` (the encoder and the
decoder layer of the same index share one, as they share the weights) and a
``QuantLinear`` for each ``nn.Linear`` whose component is quantized. A dense
checkpoint tensor ``X`` becomes ``X.qweight`` + ``X.absmax`` (nf4) or ``X.qweight`` +
``X.scale`` (int8); formats in :mod:`dgterm.engine.local.kernels.nf4`.

The package, by concern (the first three are torch-free at import and named here; the
rest import torch, so their users import them where they need them):

- ``plans``     the components, the plans, ``get_plan``
- ``profiles``  configs of profiles (no weights), checkpoints, ``bundled``: ``load_config``
- ``planner``   the memory planner (meta device), what fits, the refusal, free memory
- ``modules``   ``QuantWeight``, ``QuantLinear``, ``QuantizedExperts``; ``apply_plan``; ``build_meta``
- ``shards``    safetensors shards, read and written streamed
- ``loader``    the quantized load path (``loading.load`` calls it); pre-quantized markers
- ``export``    ``dgterm quantize`` (pre-quantized checkpoints) and the plans as a table

The planner builds the model on the ``meta`` device, applies a plan with the very code the
loader uses, and adds the runtime buffers::

    cfg = quant.load_config("diffusiongemma-26b-a4b")     # a profile, a directory, 'bundled'
    plan = quant.plan_memory(cfg, "nf4", context=8192, candidates=1)
    plan.total, plan.fits(free_bytes), quant.choose_plan(cfg, free_bytes)

Importing this package does not import torch.
"""

from dgterm.engine.local.quant.planner import (
    MemoryPlan,
    all_plans,
    choose_plan,
    dense_bytes_per_element,
    free_bytes,
    host_memory,
    kv_cache_bytes,
    max_context,
    parameter_counts,
    plan_memory,
    refusal,
)
from dgterm.engine.local.quant.plans import (
    COMPONENTS,
    PLAN_NAMES,
    PLANS,
    QUANT_TO_PLAN,
    GiB,
    PlanSpec,
    component_of,
    get_plan,
)
from dgterm.engine.local.quant.profiles import config_path, list_profiles, load_config, profiles_dir

__all__ = ["COMPONENTS", "PLANS", "PLAN_NAMES", "QUANT_TO_PLAN", "GiB", "MemoryPlan", "PlanSpec", "all_plans",
           "choose_plan", "component_of", "config_path", "dense_bytes_per_element", "free_bytes", "get_plan",
           "host_memory", "kv_cache_bytes", "list_profiles", "load_config", "max_context", "parameter_counts",
           "plan_memory", "profiles_dir", "refusal"]
