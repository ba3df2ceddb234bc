"""The ``umi`` command.

    umi samples --role ROLE FILE            GLPFT samples of one role, as JSON, to stdout
    umi render  --role ROLE FILE [--index N] the exact prompt for the next step of trajectory N
    umi serve   ROLE|orchestrator|tools [--host H] [--port P] [flags]   (NAME --help: its flags)
    umi eval    steps | score | chats       the paper's metrics, and end-to-end task success
    umi train   --recipe FILE --out DIR     GLPFT training
    umi demo    corpus | quality            the demo's synthetic corpus and model quality
    umi config-docs                         docs/configuration.md, from the settings classes
    umi chat    list | show ID              chats of an orchestrator in the terminal (umi.chat_cli)
    umi swap    ROLE --to PATH --version V (--replicas URLS | --dns NAME[:PORT])
                                            swap every replica of a role, canary first (umi.swap_cli)

Bad input exits 2 with one line that names the file, the trajectory and the field.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from types import ModuleType

from umi.chat_cli import ChatCliError, add_chat_parser
from umi.demo.cli import add_demo_parser
from umi.eval.cli import USER_ERRORS as EVAL_USER_ERRORS
from umi.settings_cli import EXIT_USAGE
from umi.swap_cli import SwapUsageError, add_swap_parser
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


# `umi serve NAME ARGS...` imports this module and calls its `serve(ARGS)`; its `serve_parser()`
# (umi.settings_cli) reads --host, --port and the settings flags, and answers NAME --help.
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


def serve_target(name: str) -> ModuleType:
    """The module of ``umi serve NAME``: it has ``serve(argv)`` and ``serve_parser()``."""
    try:
        module = importlib.import_module(SERVE_TARGETS[name])
    except ModuleNotFoundError as exc:
        raise UsageError(f"`umi serve {name}` cannot start: {exc}") from None
    if not hasattr(module, "serve") or not hasattr(module, "serve_parser"):
        raise UsageError(f"`umi serve {name}` is not available in this version of umi-serve")
    return module


def _cmd_serve(args: argparse.Namespace) -> int:
    argv = args.args[1:] if args.args[:1] == ["--"] else args.args
    serve_target(args.name).serve(argv)
    return 0


def config_reference() -> str:
    """docs/configuration.md: the flags and settings of ``umi serve orchestrator`` and ``umi serve ROLE``."""
    from umi.settings_cli import reference

    return reference([
        ("umi serve orchestrator", "The orchestrator ([orchestrator.md](orchestrator.md)).", serve_target("orchestrator").serve_parser()),
        ("umi serve ROLE", "A role service: `planner`, `caller`, `summarizer` or `backbone` ([role-services.md](role-services.md)).",
         serve_target("planner").serve_parser()),
    ])  # fmt: skip


def _cmd_config_docs(args: argparse.Namespace) -> int:
    sys.stdout.write(config_reference())
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
    p.add_argument("args", nargs=argparse.REMAINDER, help="--host, --port and its settings flags (NAME --help lists them)")
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("config-docs", help="print docs/configuration.md, generated from the settings classes")
    p.set_defaults(func=_cmd_config_docs)

    add_eval_parser(sub)
    add_train_parser(sub)
    add_demo_parser(sub)
    add_chat_parser(sub)
    add_swap_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (TrajectoryFileError, UsageError, SwapUsageError, *EVAL_USER_ERRORS, *TRAIN_USER_ERRORS) as exc:
        print(f"umi: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ChatCliError as exc:
        print(f"umi: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
