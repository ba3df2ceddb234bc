"""The ``umi`` command.

    umi samples --role ROLE FILE            GLPFT samples of one role, as JSON, to stdout
    umi render  --role ROLE FILE [--index N] the exact prompt for the next step of trajectory N
    umi serve   ROLE|orchestrator|tools [--host H] [--port P]
    umi eval    steps | score | chats       the paper's metrics, and end-to-end task success
    umi train   --recipe FILE --out DIR     GLPFT training
    umi demo    corpus | quality            the demo's synthetic corpus and model quality

Bad input exits 2 with one line that names the file, the trajectory and the field.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence

from umi.demo.cli import add_demo_parser
from umi.eval.cli import USER_ERRORS as EVAL_USER_ERRORS
from umi.eval.cli import add_eval_parser
from umi.train.cli import USER_ERRORS as TRAIN_USER_ERRORS
from umi.train.cli import add_train_parser
from umi.format import (
    DEFAULT_SYSTEM_PREFIX,
    ROLES,
    VARIANTS,
    TrajectoryFileError,
    build_samples,
    last_planner_turn,
    load_trajectories,
    render_prompt,
)

EXIT_USAGE = 2

# `umi serve NAME` imports this module and calls its `serve(host=, port=, extra_args=)`.
SERVE_TARGETS: dict[str, str] = {
    "planner": "services.planner",
    "caller": "services.caller",
    "summarizer": "services.summarizer",
    "backbone": "services.backbone",
    "orchestrator": "orchestrator",
    "tools": "umi.demo.tools_app",
}


class UsageError(Exception):
    """An error for the user: printed as one line, exit status 2."""


def _cmd_samples(args: argparse.Namespace) -> int:
    trajectories = load_trajectories(args.file)
    samples = build_samples(trajectories, args.role, args.variant)
    json.dump([s.model_dump() for s in samples], sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    trajectories = load_trajectories(args.file)
    if not 0 <= args.index < len(trajectories):
        raise TrajectoryFileError(
            args.file, f"--index {args.index} is out of range: the file holds {len(trajectories)} trajectories"
        )
    traj = trajectories[args.index]
    thought = ""
    if args.role == "caller":
        planner = last_planner_turn(traj.conversations)
        if planner is None:
            raise TrajectoryFileError(
                args.file,
                "the caller's prompt needs a planner turn (from: assistant) to take its thought from",
                index=args.index,
                field="conversations",
            )
        thought = planner.content
    prefix = "" if args.no_system_prefix else args.system_prefix
    sys.stdout.write(render_prompt(args.role, traj.tools, traj.conversations, thought, args.variant, prefix))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    target = SERVE_TARGETS[args.name]
    try:
        module = importlib.import_module(target)
    except ModuleNotFoundError as exc:
        raise UsageError(f"`umi serve {args.name}` cannot start: {exc}") from None
    serve = getattr(module, "serve", None)
    if serve is None:
        raise UsageError(f"`umi serve {args.name}` is not available in this version of umi-serve")
    serve(host=args.host, port=args.port, extra_args=args.extra)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="umi", description="umi-serve: the alpha-UMi multi-LLM agent in production")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--role", required=True, choices=ROLES, help="which role's prompts")
        p.add_argument("--variant", default="toolbench", choices=VARIANTS, help="template variant (default: toolbench)")
        p.add_argument("file", metavar="FILE", help="a JSON list of trajectories in the alpha-UMi format")

    p = sub.add_parser("samples", help="write the GLPFT training samples of one role as JSON")
    common(p)
    p.set_defaults(func=_cmd_samples)

    p = sub.add_parser("render", help="print the exact prompt for the next step of a trajectory (no newline added)")
    common(p)
    p.add_argument("--index", type=int, default=0, help="which trajectory of the file (default: 0)")
    p.add_argument(
        "--system-prefix", default=DEFAULT_SYSTEM_PREFIX, help=f"text before the prompt (default: {DEFAULT_SYSTEM_PREFIX!r})"
    )
    p.add_argument("--no-system-prefix", action="store_true", help="render without the system prefix")
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("serve", help="run a role service or the orchestrator")
    p.add_argument("name", choices=sorted(SERVE_TARGETS), help="what to run")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=_cmd_serve, extra=[])

    add_eval_parser(sub)
    add_train_parser(sub)
    add_demo_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # `umi serve NAME [--host H] [--port P] [service options...]`: the service parses the rest.
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        if args.command != "serve":
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        args.extra = unknown
    try:
        return int(args.func(args))
    except (TrajectoryFileError, UsageError, *EVAL_USER_ERRORS, *TRAIN_USER_ERRORS) as exc:
        print(f"umi: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
