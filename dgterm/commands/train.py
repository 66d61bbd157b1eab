"""Train the bundled model: the recipe of dgterm.training.recipe, on the offline corpus.

Resumes from the newest checkpoint in OUT unless --no-resume; --export writes the
finished model as a loadable checkpoint.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dgterm.commands.arguments import whole


def add_arguments(p):
    p.add_argument("out", type=Path, help="working directory (checkpoints, tokenizer)")
    p.add_argument("--export", type=Path, help="write the finished model here")
    g = p.add_argument_group("recipe (defaults: dgterm.training.recipe.Recipe)")
    g.add_argument("--steps", type=whole(1))
    g.add_argument("--batch-size", type=whole(1))
    g.add_argument("--lr", type=_rate)
    g.add_argument("--seed", type=whole(0))
    g.add_argument("--from", dest="init_from", metavar="MODEL",
                   help="continue from a checkpoint ('bundled' or a folder): its weights and tokenizer, the "
                        "line-aligned spans and more low-noise examples (the second recipe, MODEL_CARD.md)")
    g.add_argument("--warmup", type=whole(0))
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: a GPU when there is one)")
    p.add_argument("--no-resume", action="store_true", help="start over instead of resuming from OUT")


# The second recipe: continued from a trained checkpoint at a lower peak rate, half the span
# examples lines or line tails, t = u ** 1.5 (more of the low-noise steps the sampler ends on).
CONTINUED = {"aligned_fraction": 0.5, "noise_power": 1.5, "lr": 6e-4, "warmup": 50}


def _rate(text: str) -> float:
    import math

    try:
        x = float(text)
    except ValueError:
        x = math.nan
    if not (math.isfinite(x) and x > 0):
        raise argparse.ArgumentTypeError(f"'{text}' is not a learning rate; give a positive number like 3e-3")
    return x


def _check_folder(path: Path, what: str) -> None:
    """``path`` is, or can become, a folder we can write to."""
    import os

    from dgterm.errors import InputError

    if path.exists() and not path.is_dir():
        raise InputError(f"The {what} {path} is a file; give a folder (new or existing).")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"Cannot create the {what} {path} ({e.strerror}); choose a folder you can write to.") from None
    if not os.access(path, os.W_OK):
        raise InputError(f"The {what} {path} is not writable; choose a folder you can write to.")


def run(args) -> int:
    import zipfile

    from dgterm.errors import InputError

    _check_folder(args.out, "working directory")
    if args.export:
        _check_folder(args.export, "--export")
    if args.device:
        from dgterm.engine.local.checkpoint import pick_device

        args.device = pick_device(args.device)
    ckpt, stream = args.out / "checkpoint.pt", args.out / "stream.pt"
    if not args.no_resume and ckpt.exists() and not zipfile.is_zipfile(ckpt):
        raise InputError(f"{ckpt} is not a checkpoint dgterm wrote (it is damaged); delete it or pass --no-resume.")
    if stream.exists() and not zipfile.is_zipfile(stream):
        raise InputError(f"{stream} is not a token cache dgterm wrote (it is damaged); delete it, and it is "
                         "rebuilt from the corpus.")
    from dgterm.training.recipe import Recipe, export, train

    given = dict(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed, warmup=args.warmup)
    if args.init_from:
        from dgterm.engine.local.checkpoint import resolve

        given.update(init_from=str(resolve(args.init_from)), aligned_fraction=CONTINUED["aligned_fraction"],
                     noise_power=CONTINUED["noise_power"], lr=args.lr or CONTINUED["lr"],
                     warmup=args.warmup if args.warmup is not None else CONTINUED["warmup"])
    recipe = Recipe(**{k: v for k, v in given.items() if v is not None})
    model, tokenizer, _ = train(args.out, recipe, resume=not args.no_resume, device=args.device)
    if args.export:
        export(model, tokenizer, args.export)
    return 0
