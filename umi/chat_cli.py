"""``umi chat list`` and ``umi chat show ID``: the trajectory viewer's views in a terminal (rich),
for operators on a server without a browser. They read the orchestrator's viewer routes
(``orchestrator.ui``) over HTTP.

    umi chat list [--status S] [-q TEXT] [--limit N] [--offset N]   recent chats, newest first
    umi chat show ID [--prompts]      the timeline of one chat (with each role step's exact prompt)

``--url`` (default ``$UMI_ORCHESTRATOR_URL`` or http://127.0.0.1:8000) is the orchestrator;
``--key`` (default ``$UMI_API_KEY``) the Bearer key, when keys are set. An error answer exits 1
with its message.
"""

from __future__ import annotations

import argparse
import os
from datetime import datetime, timezone
from typing import Any

import httpx
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

ROLE_STYLE = {"planner": "blue", "caller": "yellow", "observation": "green", "summarizer": "magenta"}
STATUS_STYLE = {"completed": "green", "running": "cyan", "requires_action": "yellow", "failed": "red", "max_steps": "red"}
OBSERVATION_PREVIEW_CHARS = 300


class ChatCliError(Exception):
    """The orchestrator answered an error, or could not be reached."""


def _get(args: argparse.Namespace, path: str, params: dict[str, Any] | None = None) -> Any:
    headers = {"Authorization": f"Bearer {args.key}"} if args.key else {}
    try:
        response = httpx.get(args.url.rstrip("/") + path, params=params, headers=headers, timeout=args.timeout)
    except httpx.HTTPError as exc:
        raise ChatCliError(f"{args.url} is unreachable: {exc}") from None
    if response.status_code != 200:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:300]
        raise ChatCliError(f"{response.status_code}: {message}")
    return response.json()


def _time(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _ms(ms: float) -> str:
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.1f} ms"


def _status(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def chat_list_table(page: dict[str, Any]) -> Table:
    """The list as a table: created (UTC), status, query, steps, latency, models."""
    table = Table(title=f"chats {page['offset'] + 1}-{page['offset'] + len(page['chats'])}" if page["chats"] else "no chats")
    for column in ("created (UTC)", "chat", "status", "query", "steps", "latency", "models"):
        # The chat id is never wrapped, so it can be copied into `umi chat show`; the query and
        # the models wrap instead.
        table.add_column(column, overflow="fold", no_wrap=column == "chat", min_width=32 if column == "chat" else None)
    for c in page["chats"]:
        models = ", ".join(f"{role}: {v}" for role, v in c["models"].items())
        table.add_row(_time(c["created_at"]), c["chat_id"], _status(c["status"]), c["query"], str(c["steps"]),
                      _ms((c["updated_at"] - c["created_at"]) * 1000), models)  # fmt: skip
    if page["more"]:
        table.caption = f"more: --offset {page['offset'] + len(page['chats'])}"
    return table


def _step_body(step: dict[str, Any]) -> Text:
    role = step["role"]
    if role == "planner":
        return Text(f"{step.get('thought') or ''}\ndecision: {step.get('next')}")
    if role == "caller":
        return Text(f"call {step.get('name')} {step.get('tool_call_id') or ''}\n{step.get('arguments')}")
    if role == "observation":
        content = step.get("content") or ""
        cut = content[:OBSERVATION_PREVIEW_CHARS] + (" ..." if len(content) > OBSERVATION_PREVIEW_CHARS else "")
        error = f" error: {step['error']}" if step.get("error") else ""
        return Text(f"({len(content)} characters){error}\n{cut}")
    return Text(step.get("answer") or "")


def chat_view(view: dict[str, Any], prompts: dict[int, str] | None = None) -> Group:
    """One chat: its head, a waterfall of step latencies, and the timeline of steps."""
    chat = view["chat"]
    total_s = max(chat["updated_at"] - chat["created_at"], 1e-9)
    head = Text.assemble((chat["chat_id"], "bold"), "  ", _status(chat["status"]), f"\nquery: {view['query']}\n",
                         f"created {_time(chat['created_at'])} UTC, {_ms(total_s * 1000)}, {len(chat['steps'])} steps, "
                         f"{chat['usage']['prompt_tokens']} + {chat['usage']['completion_tokens']} tokens")  # fmt: skip
    if chat.get("answer"):
        head.append(f"\nanswer: {chat['answer']}")
    if chat.get("error"):
        head.append(f"\nerror ({chat['error']['type']}): {chat['error']['message']}", style="red")
    if view.get("trace_id"):
        head.append(f"\ntrace: {view.get('trace_url') or view['trace_id']}")
    width = 40
    waterfall = Table(box=None, show_header=False, padding=(0, 1))
    for step in chat["steps"]:
        start = int((step["started_at"] - chat["created_at"]) / total_s * width)
        length = max(1, int(step["latency_ms"] / 1000 / total_s * width))
        start = min(max(start, 0), width - 1)
        bar = Text(" " * start) + Text("█" * min(length, width - start), style=ROLE_STYLE.get(step["role"], ""))
        waterfall.add_row(f"{step['index']} {step['role']}", bar, _ms(step["latency_ms"]))
    panels = []
    for step in chat["steps"]:
        usage = step.get("usage")
        meta = " · ".join(x for x in (step.get("model_version"), f"{usage['prompt_tokens']} + {usage['completion_tokens']} tokens"
                                       if usage else None, _ms(step["latency_ms"])) if x)  # fmt: skip
        body = _step_body(step)
        if prompts and step["index"] in prompts:
            body.append("\n--- prompt ---\n" + prompts[step["index"]], style="dim")
        panels.append(Panel(body, title=f"#{step['index']} {step['role']}", subtitle=meta,
                            border_style=ROLE_STYLE.get(step["role"], ""), title_align="left"))  # fmt: skip
    return Group(Panel(head), Panel(waterfall, title="waterfall"), *panels)


def _cmd_list(args: argparse.Namespace) -> int:
    params = {"offset": args.offset, "limit": args.limit, **({"status": args.status} if args.status else {}),
              **({"q": args.q} if args.q else {})}  # fmt: skip
    Console().print(chat_list_table(_get(args, "/ui/api/chats", params)))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    view = _get(args, f"/ui/api/chats/{args.chat_id}")
    prompts = {}
    if args.prompts:
        for step in view["chat"]["steps"]:
            if step["role"] != "observation":
                prompts[step["index"]] = _get(args, f"/ui/api/chats/{args.chat_id}/prompt/{step['index']}")["render"]["prompt"]
    Console().print(chat_view(view, prompts))
    return 0


def add_chat_parser(sub: Any) -> None:
    p = sub.add_parser("chat", help="list chats and show one (the viewer's views in the terminal)")
    p.add_argument("--url", default=os.environ.get("UMI_ORCHESTRATOR_URL", "http://127.0.0.1:8000"),
                   help="the orchestrator [default: $UMI_ORCHESTRATOR_URL or http://127.0.0.1:8000]")  # fmt: skip
    p.add_argument("--key", default=os.environ.get("UMI_API_KEY"), help="Bearer key [default: $UMI_API_KEY]")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request [default: 30]")
    chat = p.add_subparsers(dest="chat_command", required=True, metavar="list|show")
    lp = chat.add_parser("list", help="recent chats, newest first")
    lp.add_argument("--status", help="only chats in this status")
    lp.add_argument("-q", help="text in the query or chat id")
    lp.add_argument("--limit", type=int, default=20, help="chats per page [default: 20]")
    lp.add_argument("--offset", type=int, default=0, help="chats to skip, newest first [default: 0]")
    lp.set_defaults(func=_cmd_list)
    sp = chat.add_parser("show", help="one chat: head, waterfall, steps")
    sp.add_argument("chat_id")
    sp.add_argument("--prompts", action="store_true", help="with each role step's exact prompt (/v1/render)")
    sp.set_defaults(func=_cmd_show)
