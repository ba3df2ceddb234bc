"""``make up`` (``umi demo up``): the demo stack in the foreground, on the documented ports, for
manual use, until Ctrl-C (or SIGTERM); then every process it started is stopped."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from umi.demo.stack import Say, Stack, StackConfig, StackError, keep_logs, running_stack

# What each part serves, in the order of the table `make up` prints (the entry point first).
ENDPOINTS = {
    "orchestrator": "POST /chat, GET /chat/{id}, the viewer /ui, /docs; OpenAI: /v1/models, /v1/chat/completions, /v1/responses",
    "planner": "POST /v1/plan, /admin/weights",
    "caller": "POST /v1/call, /admin/weights",
    "summarizer": "POST /v1/summarize, /admin/weights",
    "tools": "GET /tools?set=v1|v2; /mcp: the same tools as an MCP server",
    "redis": "the chats (umi:chat:<id>)",
}


def umi_command() -> str:
    """How to run this environment's ``umi`` (relative to the working directory when inside it)."""
    path = Path(sys.executable).parent / "umi"
    return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)


def ready_lines(stack: Stack) -> list[str]:
    """The table of what listens where, and commands to try."""
    c = stack.config
    umi = umi_command()
    lines = ["", "the demo stack is up (Ctrl-C stops it):"]
    lines += [f"  {name:<13} {stack.url(name):<28} {what}" for name, what in ENDPOINTS.items()]
    lines += [
        "",
        f"admin token of the role services: {c.admin_token}",
        "try:",
        f'  {umi} demo ask "What is the weather in Riga?" --orchestrator {stack.url("orchestrator")} --tools-url {stack.url("tools")}',
        f"  curl -s {stack.url('caller')}/admin/weights -H 'Authorization: Bearer {c.admin_token}' "
        f"-H 'Content-Type: application/json' -d '{{\"path\": \"{c.models.caller_v2}\"}}'",
        f'  {umi} demo ask "How many people live in Porto?" --tools v2 --orchestrator {stack.url("orchestrator")} --tools-url {stack.url("tools")}',
    ]
    return lines


def up(config: StackConfig, say: Say = print, poll_s: float = 1.0) -> int:
    """Run until interrupted. 0 after Ctrl-C/SIGTERM and a clean stop; 1 when a part failed."""
    started = time.monotonic()
    status = 0
    stack = Stack(config)
    try:
        with running_stack(stack, say):
            say(f"ready in {time.monotonic() - started:.1f} s")
            say("\n".join(ready_lines(stack)))
            try:
                while True:
                    stack.check_running()
                    time.sleep(poll_s)
            except KeyboardInterrupt:
                say("interrupted")
    except KeyboardInterrupt:
        say("interrupted")
    except StackError as exc:
        say(f"umi demo up: error: {exc}")
        status = 1
    if stack.leftover:
        status = 1
    if status == 0:
        shutil.rmtree(config.work_dir, ignore_errors=True)
    else:
        keep_logs(config.work_dir, say)
    return status
