"""Train the bundled model: the recipe of dgterm.engine.recipe, on the offline corpus.

Resumes from the newest checkpoint in OUT unless --no-resume; --export writes the
finished model as a loadable checkpoint.
"""

from __future__ import annotations

from pathlib import Path


def add_arguments(p):
    p.add_argument("out", type=Path, help="working directory (checkpoints, tokenizer)")
    p.add_argument("--export", type=Path, help="write the finished model here")
    g = p.add_argument_group("recipe (defaults: dgterm.engine.recipe.Recipe)")
    g.add_argument("--steps", type=int)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--lr", type=float)
    g.add_argument("--seed", type=int)
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: a GPU when there is one)")
    p.add_argument("--no-resume", action="store_true", help="start over instead of resuming from OUT")


def run(args) -> int:
    from dgterm.engine.recipe import Recipe, export, train

    given = dict(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    recipe = Recipe(**{k: v for k, v in given.items() if v is not None})
    model, tokenizer, _ = train(args.out, recipe, resume=not args.no_resume, device=args.device)
    if args.export:
        export(model, tokenizer, args.export)
    return 0
