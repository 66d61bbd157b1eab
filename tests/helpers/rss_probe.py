"""Run in a subprocess by test_streaming.py: load a checkpoint and report peak RSS.

``python rss_probe.py CHECKPOINT MODE`` with MODE ``nf4`` (dgterm's streaming quantized
loader) or ``hf`` (transformers' ``from_pretrained``, the unquantized reference). Prints
one JSON line: RSS after imports (baseline), the high-water mark during the load (the
kernel's VmHWM, reset after imports through /proc/self/clear_refs) and the model's bytes.
"""

import json
import sys


def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def main():
    path, mode = sys.argv[1], sys.argv[2]
    import torch
    from transformers import AutoTokenizer, DiffusionGemmaForBlockDiffusion  # noqa: F401

    from dgterm.engine.local import loading
    from dgterm.engine.local.quant import loader, modules  # noqa: F401

    torch.set_num_threads(1)
    AutoTokenizer.from_pretrained(path)  # warm the tokenizer code path: it is not the model
    baseline = status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    if mode == "hf":
        model = DiffusionGemmaForBlockDiffusion.from_pretrained(path)
    else:
        model = loading.load(path, device="cpu", quant=mode).model
    peak = status("VmHWM")
    model_bytes = sum(t.numel() * t.element_size() for _, t, _ in modules.unique_tensors(model))
    print(json.dumps({"baseline": baseline, "peak": peak, "delta": peak - baseline, "model_bytes": model_bytes}))


if __name__ == "__main__":
    main()
