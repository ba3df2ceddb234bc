"""``umi train``: GLPFT over a recipe."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from umi.train.recipe import RecipeError, load_recipe


def _cmd_train(args: argparse.Namespace) -> int:
    from umi.train.glpft import train

    recipe = load_recipe(args.recipe)
    base = Path(args.data_root) if args.data_root else Path(args.recipe).resolve().parent
    started = time.perf_counter()
    try:
        status = train(recipe, Path(args.out), base, only=args.only or (), progress=not args.quiet)
    except KeyboardInterrupt:
        print(f"\ninterrupted: the same command resumes (finished models and soup copies are kept, a run in "
              f"progress continues from its last checkpoint, every save_every steps) -> {args.out}", file=sys.stderr)
        return 130
    for name, state in status.items():
        print(f"{name}: {state}")
    print(f"done in {time.perf_counter() - started:.0f}s -> {args.out}")
    return 0


def add_train_parser(sub: Any) -> None:
    p = sub.add_parser("train", help="GLPFT: stage 1 backbone, then one fine-tuned copy per role")
    p.add_argument("--recipe", required=True, help="recipe file (TOML), e.g. recipes/demo.toml")
    p.add_argument("--out", required=True, help="output directory: backbone/, planner/, caller/, ...")
    p.add_argument("--data-root", default=None, help="directory the recipe's data paths are relative to (default: the recipe's)")
    p.add_argument("--only", action="append", help="build only this model (repeatable): backbone, planner, caller, ...")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_train)


USER_ERRORS = (RecipeError,)
