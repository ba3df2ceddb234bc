"""``umi eval steps | score | chats``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from umi.eval.chats import load_suite, run_suite
from umi.eval.gold import GoldStep, gold_steps
from umi.eval.predictions import Prediction, PredictionRole, PredictionsFileError, Protocol, dump_predictions, load_predictions
from umi.eval.report import markdown_table, run_name, write_report
from umi.eval.score import ScoreError, ScoreResult, score
from umi.eval.steps import Ask, first_asks, follow_up_asks, run_requests, to_request
from umi.format import TrajectoryFileError, load_trajectories

MULTI, SINGLE = "multi-model", "single-model"
PROTOCOLS: tuple[Protocol, ...] = ("paper", "teacher-forcing")


class EvalUsageError(Exception):
    pass


def _print_outputs(paths: dict[str, Path], runs: dict[str, ScoreResult]) -> None:
    sys.stdout.write(markdown_table(runs))
    print("wrote " + ", ".join(str(p) for p in paths.values()))


def _ask(
    steps: Sequence[GoldStep], mode: str, protocol: Protocol, urls: dict[PredictionRole, str],
    sampling: dict[str, Any], args: argparse.Namespace, name: str,
) -> list[Prediction]:
    """The predictions of one run: the planner (or backbone) first, then what its decisions ask."""

    def send(asks: Sequence[Ask], label: str) -> list[Prediction]:
        requests = [to_request(a, sampling) for a in asks]
        return asyncio.run(
            run_requests(requests, urls, concurrency=args.concurrency, timeout_s=args.timeout, progress=not args.quiet, label=label)
        )

    first = send(first_asks(steps, mode), f"{name}: {'backbone' if mode == 'single' else 'planner'}")
    if mode == "single":
        return first
    follow_ups = send(follow_up_asks(steps, protocol, {p.id: p for p in first}), f"{name}: caller and summarizer")
    return [p.model_copy(update={"protocol": protocol}) for p in first + follow_ups]


def _cmd_steps(args: argparse.Namespace) -> int:
    multi = [args.planner, args.caller, args.summarizer]
    if any(multi) and not all(multi):
        raise EvalUsageError("--planner, --caller and --summarizer go together (all three, or use --backbone)")
    if not any(multi) and not args.backbone:
        raise EvalUsageError("give the role services: --planner URL --caller URL --summarizer URL, and/or --backbone URL")
    steps = gold_steps(load_trajectories(args.data))
    if args.limit:
        steps = steps[: args.limit]
    sampling: dict[str, Any] = {"temperature": args.temperature, "max_tokens": args.max_tokens}
    runs: dict[str, ScoreResult] = {}
    predictions: dict[str, list[dict[str, Any]]] = {}
    plans: list[tuple[str, dict[PredictionRole, str]]] = []
    if all(multi):
        plans.append(("multi", {"planner": args.planner, "caller": args.caller, "summarizer": args.summarizer}))
    if args.backbone:
        plans.append(("single", {"backbone": args.backbone}))
    for mode, urls in plans:
        label = MULTI if mode == "multi" else SINGLE
        preds = _ask(steps, mode, args.protocol, urls, sampling, args, label)
        result = score(steps, preds, mode, args.protocol, args.rouge)  # type: ignore[arg-type]
        runs[run_name(result)] = result
        predictions[mode] = dump_predictions(preds)
    out = Path(args.out)
    for mode, preds in predictions.items():
        pred_path = out.with_name(f"{out.stem}.{mode}.predictions.json")
        pred_path.parent.mkdir(parents=True, exist_ok=True)
        pred_path.write_text(json.dumps(preds, indent=1) + "\n", encoding="utf-8")
    paths = write_report(runs, out, extra={"data": str(args.data), "sampling": sampling, "protocol": args.protocol, "rouge": args.rouge})
    _print_outputs(paths, runs)
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    steps = gold_steps(load_trajectories(args.gold))
    runs: dict[str, ScoreResult] = {}
    for path in args.pred:
        result = score(steps, load_predictions(path), protocol=args.protocol, rouge=args.rouge)
        name = run_name(result)
        if name in runs:
            name = f"{name} ({Path(path).name})"
        runs[name] = result
    paths = write_report(runs, args.out, extra={"gold": str(args.gold), "predictions": [str(p) for p in args.pred]})
    _print_outputs(paths, runs)
    return 0


def _cmd_chats(args: argparse.Namespace) -> int:
    try:
        if args.suite == "demo":
            from umi.demo.suite import demo_suite

            suite = demo_suite(args.tools_url)
        else:
            suite = load_suite(args.suite)
    except FileNotFoundError:
        raise EvalUsageError(f"{args.suite}: no such suite file") from None
    except ValueError as exc:
        raise EvalUsageError(f"{args.suite}: not a valid suite: {str(exc).splitlines()[0]}") from None
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else None
    report = asyncio.run(
        run_suite(suite, args.orchestrator, concurrency=args.concurrency, headers=headers, progress=not args.quiet)
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    print("| suite | tasks | task success | calls/task | latency p50 (ms) |\n|---|---:|---:|---:|---:|")
    fmt = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
    print(f"| {report.suite} | {report.tasks} | {fmt(report.success_rate)} | {fmt(report.calls_per_task)} | {fmt(report.latency_ms_p50)} |")
    for r in report.results:
        if not r.success:
            print(f"  FAILED {r.id}: {'; '.join(r.reasons)}")
    print(f"wrote {args.out}")
    return 0


def _rouge_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rouge", choices=("paper", "words"), default="paper",
        help="R-L: paper (default; the rouge package 1.0.1, as the paper computed it) or words "
        "(umi's earlier lower-cased word-token LCS; not comparable with the paper's numbers)",
    )


def add_eval_parser(sub: Any) -> None:
    p = sub.add_parser("eval", help="evaluate role services (step metrics) or the whole agent (chats)")
    esub = p.add_subparsers(dest="eval_command", required=True, metavar="EVAL_COMMAND")

    s = esub.add_parser("steps", help="the paper's step metrics from running role services")
    s.add_argument("--data", required=True, help="trajectory file with the gold steps")
    s.add_argument("--planner", help="planner service base URL")
    s.add_argument("--caller", help="caller service base URL")
    s.add_argument("--summarizer", help="summarizer service base URL")
    s.add_argument("--backbone", help="single-model (backbone) service base URL")
    s.add_argument("--out", default="eval/results.json", help="report path; .md and .png are written beside it")
    s.add_argument("--concurrency", type=int, default=8, help="requests in flight at once (default 8)")
    s.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (default 0: greedy)")
    s.add_argument("--max-tokens", type=int, default=512, help="max new tokens per request (default 512)")
    s.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default 120)")
    s.add_argument("--limit", type=int, default=0, help="evaluate only the first N gold steps")
    s.add_argument(
        "--protocol", choices=PROTOCOLS, default="paper",
        help="paper (default): the caller or summarizer is asked only where the planner decided so, with the "
        "planner's own turn; teacher-forcing: the caller on every gold call step with the gold thought and the "
        "summarizer on every gold finish step (each role alone; not comparable with the paper's numbers)",
    )
    _rouge_option(s)
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_steps)

    c = esub.add_parser("score", help="score saved predictions against gold trajectories (no model needed)")
    c.add_argument("--gold", required=True, help="trajectory file with the gold steps")
    c.add_argument("--pred", required=True, action="append", help="predictions file (repeat to compare runs)")
    c.add_argument("--out", default="eval/score.json", help="report path; .md and .png are written beside it")
    c.add_argument(
        "--protocol", choices=PROTOCOLS, default=None,
        help="how multi-model predictions were made (default: what the records say, else paper)",
    )
    _rouge_option(c)
    c.set_defaults(func=_cmd_score)

    h = esub.add_parser("chats", help="end-to-end task success through a running orchestrator")
    h.add_argument("--suite", required=True, help="suite file (tasks and tools), or 'demo' for the built-in demo suite")
    h.add_argument("--tools-url", default="http://127.0.0.1:8300/tools", help="the demo tools server's /tools (for --suite demo)")
    h.add_argument("--orchestrator", required=True, help="orchestrator base URL")
    h.add_argument("--out", default="eval/chats.json")
    h.add_argument("--concurrency", type=int, default=4)
    h.add_argument("--api-key", default=None, help="bearer key when the orchestrator requires one")
    h.add_argument("--quiet", action="store_true")
    h.set_defaults(func=_cmd_chats)


USER_ERRORS = (EvalUsageError, PredictionsFileError, ScoreError, TrajectoryFileError)
