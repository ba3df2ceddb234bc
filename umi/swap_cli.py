"""``umi swap ROLE --to PATH --version V (--replicas URL[,URL...] | --dns NAME[:PORT])``: a weight
swap across every replica of a role, one at a time, canary first, rolled back on any failure
(umi.fleet_swap holds the procedure; this is its command line).

The admin token is ``$UMI_ADMIN_TOKEN`` or the first line of ``--token-file`` (never a flag: command
lines are visible to other users). Progress goes to stderr, one line per replica and step;
``--json`` prints the :class:`~umi.fleet_swap.FleetSwapReport` on stdout.

Exit status: 0 every replica serves the new version; 1 the swap failed and every swapped replica
was rolled back (or nothing changed), the message names the replica and the reason; 2 bad input
(no replicas, a bad URL, a name that does not resolve, no token); 3 a rollback failed too: the
replicas serve different versions (the report says which).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import typing
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from umi.demo.stack import DOCUMENTED_PORTS
from umi.fleet_swap import (
    CheckPolicy,
    FleetInputError,
    FleetSwap,
    FleetSwapReport,
    ProgressEvent,
    SwapTarget,
    replicas_from_dns,
    replicas_from_urls,
)
from umi.roleapi import RoleName
from umi.service.roles import RoleSpec

SHOWN_STARTS = {"swap", "error_rate", "rollback"}  # the steps that take a while: shown as they begin
STATUS_STYLE = {"start": "cyan", "ok": "green", "failed": "bold red"}


class SwapUsageError(Exception):
    """Bad input to ``umi swap``: one line, exit status 2."""


def role_spec(role: str) -> RoleSpec:
    """The role's :class:`RoleSpec` (its endpoint and request model), from ``services.<role>``."""
    spec: RoleSpec = importlib.import_module(f"services.{role}").ROLE
    return spec


def admin_token(token_file: str | None) -> str:
    """The first line of ``token_file``, else ``$UMI_ADMIN_TOKEN``. Raises :class:`SwapUsageError`."""
    if token_file is not None:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip().splitlines()
        except OSError as exc:
            raise SwapUsageError(f"--token-file: {exc.strerror}: {token_file}") from None
        if not token or not token[0].strip():
            raise SwapUsageError(f"--token-file: {token_file} is empty")
        return token[0].strip()
    token_env = os.environ.get("UMI_ADMIN_TOKEN", "").strip()
    if not token_env:
        raise SwapUsageError("no admin token: set UMI_ADMIN_TOKEN or give --token-file")
    return token_env


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def _seconds(text: str) -> float:
    """A finite number of seconds, 0 or more (``inf`` would sleep forever, ``nan`` compare false)."""
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not a finite number of seconds, 0 or more")
    return value


def _positive_seconds(text: str) -> float:
    value = _seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text} is not more than 0")
    return value


def _nonempty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty")
    return text


def add_swap_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "swap", help="swap a role's weights on every replica, one at a time, canary first, rolled back on failure",
        description="Swap a role's weights on every replica through its admin API, one replica at a time, the "
        "first as the canary; each is checked (ready, version, a warm-up request, the error rate over a window) "
        "before the next; on any failure every swapped replica is rolled back.",
        epilog="exit status: 0 done; 1 failed, every swapped replica rolled back; 2 bad input; "
        "3 a rollback failed too (mixed versions)",
    )
    p.add_argument("role", choices=typing.get_args(RoleName), help="the role whose replicas swap")
    p.add_argument("--to", required=True, type=_nonempty, metavar="PATH", help="the new weights: a model directory or hub id (full), an adapter directory (lora), as each replica sees it")
    p.add_argument("--version", required=True, type=_nonempty, help="the version the replicas report for the new weights")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--replicas", metavar="URL[,URL...]", help="the replicas' base URLs, in swap order (the first is the canary)")
    where.add_argument("--dns", metavar="NAME[:PORT]", help="every A/AAAA record of NAME (a headless Service) is a replica "
                       "(default port: the role's documented port, 8101/8102/8103)")
    p.add_argument("--scheme", choices=("http", "https"), default="http", help="with --dns (default: http)")
    p.add_argument("--kind", choices=("full", "lora"), default="full", help="full weights or a LoRA adapter (default: full)")
    p.add_argument("--strategy", choices=("blue_green", "in_place"), help="full weights (default: each replica's UMI_SWAP_STRATEGY)")
    p.add_argument("--drain-timeout", type=_positive_seconds, metavar="SECONDS", help="default: each replica's UMI_DRAIN_TIMEOUT_S")
    p.add_argument("--token-file", metavar="FILE", help="a file holding the admin token (default: $UMI_ADMIN_TOKEN)")
    p.add_argument("--check-window", type=_seconds, default=CheckPolicy.window_s, metavar="SECONDS",
                   help=f"how long each replica is watched after its swap (default: {CheckPolicy.window_s:g})")
    p.add_argument("--max-error-rate", type=_probability, default=CheckPolicy.max_error_rate, metavar="RATE",
                   help=f"most 5xx answers / answers on the role endpoint over the window, 0..1 (default: {CheckPolicy.max_error_rate:g})")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    p.set_defaults(func=_cmd_swap)


def _printer(console: Console, total: int):  # type: ignore[no-untyped-def]
    def show(event: ProgressEvent) -> None:
        if event.status == "start" and event.phase not in SHOWN_STARTS:
            return
        who = f"[{event.index + 1}/{total}{' canary' if event.index == 0 else ''}] {event.url}"
        style = STATUS_STYLE[event.status]
        detail = f"  {escape(event.detail)}" if event.detail else ""
        console.print(f"{escape(who)}  {event.phase} [{style}]{event.status}[/{style}]{detail}", highlight=False)

    return show


def _cmd_swap(args: argparse.Namespace) -> int:
    console = Console(stderr=True, soft_wrap=True)
    try:
        token = admin_token(args.token_file)
        if args.replicas is not None:
            replicas = replicas_from_urls(args.replicas)
        else:
            replicas = replicas_from_dns(args.dns, getattr(DOCUMENTED_PORTS, args.role, None), args.scheme)
    except FleetInputError as exc:
        raise SwapUsageError(str(exc)) from None
    target = SwapTarget(args.to, args.version, args.kind, args.strategy, args.drain_timeout)
    checks = CheckPolicy(window_s=args.check_window, max_error_rate=args.max_error_rate)
    console.print(f"umi swap {args.role}: {len(replicas)} replica{'s' if len(replicas) > 1 else ''} to {escape(args.to)} version {escape(args.version)} "
                  f"({args.kind}), one at a time", highlight=False)
    report = FleetSwap(role_spec(args.role), target, replicas, token, checks, _printer(console, len(replicas))).run()
    if args.json:
        json.dump(report.model_dump(mode="json"), sys.stdout, indent=2)
        sys.stdout.write("\n")
    _summary(console, report)
    return report.exit_code


def _summary(console: Console, report: FleetSwapReport) -> None:
    if report.ok:
        console.print(f"umi swap {report.role}: every replica serves {escape(report.version)}", highlight=False)
        return
    print(f"umi swap: error: {report.reason}", file=sys.stderr)
    for r in report.replicas:
        if r.outcome in ("rolled_back", "rollback_failed"):
            now = f"{r.model.name} {r.model.version}" if r.model else "unknown"
            print(f"umi swap: {r.url}: {r.outcome.replace('_', ' ')}, serves {now}", file=sys.stderr)
