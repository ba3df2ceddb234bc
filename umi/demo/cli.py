"""``umi demo corpus | quality``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _cmd_corpus(args: argparse.Namespace) -> int:
    from umi.demo.corpus import build_corpus

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", args.train), ("test", args.test)):
        for version in ("v1", "v2"):
            path = out / f"{split}-{version}.json"
            path.write_text(json.dumps(build_corpus(args.seed, count, split, version), indent=1) + "\n", encoding="utf-8")
            print(f"wrote {path} ({count} trajectories)")
    from umi.demo.suite import suite_from_trajectories
    from umi.format import load_trajectories

    for version in ("v1", "v2"):
        path = out / f"suite-test-{version}.json"
        suite = suite_from_trajectories(load_trajectories(out / f"test-{version}.json"), f"heldout-{version}")
        path.write_text(suite.model_dump_json(indent=1) + "\n", encoding="utf-8")
        print(f"wrote {path} (a chat suite of the held-out split: umi eval chats --suite {path})")
    return 0


def _cmd_quality(args: argparse.Namespace) -> int:
    from umi.demo.quality import measure

    report = measure(Path(args.models), Path(args.test), args.caller, args.limit, progress=not args.quiet)
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


def add_demo_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="the demo's corpus and model quality")
    dsub = p.add_subparsers(dest="demo_command", required=True, metavar="DEMO_COMMAND")
    c = dsub.add_parser("corpus", help="write the synthetic corpus (train/test, v1/v2 tool sets)")
    c.add_argument("--out", required=True)
    c.add_argument("--seed", type=int, default=7)
    c.add_argument("--train", type=int, default=3000, help="trajectories per training file")
    c.add_argument("--test", type=int, default=200, help="trajectories per test file")
    c.set_defaults(func=_cmd_corpus)
    q = dsub.add_parser("quality", help="held-out quality of trained demo models (in process)")
    q.add_argument("--models", required=True, help="directory with planner/, caller/, summarizer/")
    q.add_argument("--test", required=True, help="held-out trajectory file")
    q.add_argument("--caller", default="caller", help="which caller directory (caller or caller-v2)")
    q.add_argument("--limit", type=int, default=0)
    q.add_argument("--out", default=None, help="also write the report here")
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=_cmd_quality)
