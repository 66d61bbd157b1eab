"""Save a pre-quantized checkpoint (MoE experts included) that loads without re-quantizing.

``dgterm quantize MODEL OUT --plan nf4`` streams MODEL's shards tensor by tensor, quantizes
them on the device (a GPU when there is one), and writes OUT shard by shard, with the
tokenizer, config and ``dgterm-quant.json``. ``dgterm open --model OUT`` then loads it
directly; ``--quant`` is not needed.
"""

from __future__ import annotations

import re

from dgterm.engine.local.checkpoint import DTYPES, QUANTS

SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]i?B?)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    m = SIZE.match(text)
    if not m:
        raise ValueError(text)
    unit = (m.group(2) or "B").upper().rstrip("B").rstrip("I")
    return int(float(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[unit])


def add_arguments(p):
    p.add_argument("model", help="checkpoint directory, 'bundled', or a Hugging Face id in the local cache")
    p.add_argument("out", help="directory to write (must be new or empty)")
    p.add_argument("--plan", "--quant", dest="plan", choices=QUANTS[1:], default="nf4",
                   help="quantization plan (default nf4: experts nf4, attention/MLP int8)")
    p.add_argument("--device", default="auto", help="where to quantize: auto, cpu, cuda or cuda:N")
    p.add_argument("--dtype", choices=DTYPES[1:], default="bf16", help="dtype of the tensors kept dense")
    p.add_argument("--max-shard-size", default="2GiB", help="largest output shard (default 2GiB)")
    p.add_argument("--overwrite", action="store_true", help="replace the weights in a non-empty OUT")
    p.add_argument("--download", action="store_true", help="allow downloading a Hugging Face id")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args) -> int:
    import json

    from dgterm.engine.local import checkpoint
    from dgterm.engine.local.quant import export
    from dgterm.errors import InputError

    try:
        shard = parse_size(args.max_shard_size)
    except ValueError:
        raise InputError(f"--max-shard-size '{args.max_shard_size}' is not a size; write e.g. 2GiB or 500MB.") from None
    src = checkpoint.resolve(args.model, args.download)
    device = checkpoint.pick_device(args.device)
    info = export.quantize_checkpoint(src, args.out, plan=args.plan, device=device, dtype=args.dtype,
                                                 max_shard_bytes=shard, overwrite=args.overwrite)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"Wrote {args.out}: {args.plan}, {info['bytes'] / (1 << 30):.2f} GiB in {len(info['shards'])} shard(s) "
              f"({info['seconds']:.1f} s). Load it with --model {args.out}.")
    return 0
