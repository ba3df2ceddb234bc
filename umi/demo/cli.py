"""``umi demo corpus | quality | run | up | ask``."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from umi.format.constraints import CONSTRAINT_MODES


def _cmd_corpus(args: argparse.Namespace) -> int:
    from umi.demo.corpus import write_corpus
    from umi.demo.corpus_spec import CorpusSpec

    for line in write_corpus(Path(args.out), CorpusSpec(seed=args.seed, train=args.train, test=args.test)):
        print(line)
    return 0


def _cmd_quality(args: argparse.Namespace) -> int:
    from umi.demo.quality import is_current, measure

    missing = [str(Path(args.models) / name) for name in ("planner", args.caller, "summarizer")
               if not (Path(args.models) / name / "config.json").is_file()]  # fmt: skip
    if missing:
        import sys

        from umi.settings_cli import EXIT_USAGE

        print(f"umi demo quality: --models: no model in {', '.join(missing)} (build the demo models with `make models`)", file=sys.stderr)
        return EXIT_USAGE
    if args.suite:
        return _quality_suite(args)
    if args.if_changed and args.out and is_current(Path(args.out), Path(args.models), args.caller, args.constrained):
        print(f"{args.out}: up to date (measured on these models)")
        return 0
    report = measure(Path(args.models), Path(args.test), args.caller, args.limit, progress=not args.quiet, constrained=args.constrained)
    text = json.dumps(report, indent=2)
    if not args.out:
        print(text)
        return 0
    Path(args.out).write_text(text + "\n", encoding="utf-8")
    m = report["metrics"]
    print(f"task success {report['task_success']}%, arguments exactly right {report['arguments_exact']}%, "
          f"Plan ACC {m['plan_acc']}, Act. EM {m['act_em']}, Hallu. {m['hallu']} on {report['trajectories']} held-out questions "
          f"(constrained decoding: {report['constrained']}) -> {args.out}")
    return 0


def _quality_suite(args: argparse.Namespace) -> int:
    import sys

    from umi.demo.own_words import SUITES, measure_suite, report_lines
    from umi.settings_cli import EXIT_USAGE

    if args.suite not in SUITES:
        print(f"umi demo quality: --suite: unknown suite {args.suite!r}; known: {', '.join(SUITES)}", file=sys.stderr)
        return EXIT_USAGE
    report = measure_suite(Path(args.models), args.suite, args.caller, args.limit, progress=not args.quiet, constrained=args.constrained)
    print("\n".join(report_lines(report)))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"-> {args.out}")
    return 0


def _stack_config(args: argparse.Namespace, free_ports: bool, admin_token: str | None = None) -> Any:
    import secrets

    from umi.demo.stack import DOCUMENTED_PORTS, DemoModels, StackConfig, StackPorts, new_work_dir

    return StackConfig(
        models=DemoModels.in_dir(args.models, args.caller_v2),
        work_dir=new_work_dir(),
        admin_token=admin_token or secrets.token_hex(16),
        ports=StackPorts.free() if free_ports else DOCUMENTED_PORTS,
        engine=args.engine,
        temperature=args.temperature,
        max_new_tokens=args.max_new_tokens,
        ready_timeout_s=args.ready_timeout_s,
    )


def _cmd_run(args: argparse.Namespace) -> int:
    from umi.demo.run import run_demo

    return run_demo(_stack_config(args, free_ports=True), seed=args.seed, strict=args.strict)


def _cmd_up(args: argparse.Namespace) -> int:
    from umi.demo.up import up

    return up(_stack_config(args, free_ports=args.free_ports, admin_token=os.environ.get("UMI_ADMIN_TOKEN")))


def _cmd_ask(args: argparse.Namespace) -> int:
    import asyncio

    from umi.demo.run import ask_one, outcome_lines

    outcome = asyncio.run(ask_one(args.question, args.orchestrator, args.tools_url, args.tools, args.max_steps))
    print("\n".join(outcome_lines(1, outcome)[:-1]) if outcome.chat else f"the request failed: {outcome.error}")
    return 0 if outcome.chat is not None and outcome.status != "failed" else 1


def _add_stack_options(p: argparse.ArgumentParser) -> None:
    from umi.demo.stack import DEFAULT_MODELS_DIR, DEMO_MAX_NEW_TOKENS, MODELS_DIR_ENV

    p.add_argument(
        "--models", default=os.environ.get(MODELS_DIR_ENV) or DEFAULT_MODELS_DIR,
        help=f"directory with planner/, caller/, summarizer/, caller-v2/ (default: ${MODELS_DIR_ENV} or {DEFAULT_MODELS_DIR})",
    )  # fmt: skip
    p.add_argument("--caller-v2", default=None, help="the caller to swap to (default: MODELS/caller-v2)")
    p.add_argument("--engine", default="transformers", help="the role services' engine (default: transformers, the CPU engine)")
    p.add_argument("--temperature", type=float, default=0.0, help="the role services' temperature (default: 0, greedy)")
    p.add_argument(
        "--max-new-tokens", type=int, default=DEMO_MAX_NEW_TOKENS,
        help=f"the role services' max new tokens (default: {DEMO_MAX_NEW_TOKENS}: the demo models' turns are shorter)",
    )  # fmt: skip
    p.add_argument("--ready-timeout-s", type=float, default=600.0, help="how long the stack may take to get ready")


def add_demo_parser(sub: Any) -> None:
    from umi.demo.corpus_spec import DEMO_CORPUS

    p = sub.add_parser("demo", help="the demo: corpus, model quality, the scripted demo, the stack for manual use")
    dsub = p.add_subparsers(dest="demo_command", required=True, metavar="DEMO_COMMAND")
    c = dsub.add_parser("corpus", help="write the synthetic corpus (train/test, v1/v2 tool sets)")
    c.add_argument("--out", required=True)
    c.add_argument("--seed", type=int, default=DEMO_CORPUS.seed, help=f"default: {DEMO_CORPUS.seed}, the demo models' corpus")
    c.add_argument("--train", type=int, default=DEMO_CORPUS.train, help=f"trajectories per training file (default: {DEMO_CORPUS.train})")
    c.add_argument("--test", type=int, default=DEMO_CORPUS.test, help=f"trajectories per test file (default: {DEMO_CORPUS.test})")
    c.set_defaults(func=_cmd_corpus)
    q = dsub.add_parser("quality", help="held-out quality of trained demo models (in process)")
    q.add_argument("--models", required=True, help="directory with planner/, caller/, summarizer/")
    what = q.add_mutually_exclusive_group(required=True)
    what.add_argument("--test", help="held-out trajectory file: step metrics and task success")
    what.add_argument(
        "--suite", metavar="own-words",
        help="a question suite instead (own-words: questions as people write them, umi/demo/own_words.json): "
        "the whole loop per question, fully right and calls right, a table and the failures",
    )  # fmt: skip
    q.add_argument("--caller", default="caller", help="which caller directory (caller or caller-v2)")
    q.add_argument("--limit", type=int, default=0)
    q.add_argument("--out", default=None, help="write the report here (and print a one-line summary)")
    q.add_argument("--if-changed", action="store_true", help="with --test: do nothing if --out was measured on these very models")
    q.add_argument("--constrained", choices=CONSTRAINT_MODES, default="off",
                   help="constrained decoding as UMI_CONSTRAINED_DECODING sets it (docs/role-services.md); default off")
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=_cmd_quality)
    r = dsub.add_parser("run", help="make demo: the stack on free ports, example chats, a caller swap under load; then stop")
    _add_stack_options(r)
    r.add_argument("--seed", type=int, default=7, help="the corpus seed whose held-out split gives the questions")
    r.add_argument("--strict", action="store_true", help="also fail when a chat's calls or answer values are not the expected ones")
    r.set_defaults(func=_cmd_run)
    u = dsub.add_parser("up", help="make up: the stack in the foreground on the documented ports until Ctrl-C")
    _add_stack_options(u)
    u.add_argument("--free-ports", action="store_true", help="free loopback ports instead of the documented ones")
    u.set_defaults(func=_cmd_up)
    a = dsub.add_parser("ask", help="one question through a running stack (make up), printed step by step")
    a.add_argument("question")
    a.add_argument("--tools", default="v1", choices=("v1", "v2"), help="the tool set (v2 adds get_population)")
    a.add_argument("--orchestrator", default="http://127.0.0.1:8000")
    a.add_argument("--tools-url", default="http://127.0.0.1:8300")
    a.add_argument("--max-steps", type=int, default=10)
    a.set_defaults(func=_cmd_ask)
