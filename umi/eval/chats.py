"""``umi eval chats``: end-to-end tasks through a running orchestrator, scored by task success.

A suite file is JSON:

    {"name": "demo",
     "tools": [OpenAI function tools with "endpoint"]        (or "tools_url": ".../tools"),
     "tasks": [{"id": "weather-1", "query": "...",
                "expected_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}],
                "expected_answer": ["Oslo", "12"],
                "expected_status": "completed"}]}

A task succeeds when the chat ends in ``expected_status`` (default ``completed``), every
expected call was made with equal arguments (numbers compared as numbers), and the answer
contains every expected value (case-insensitive).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, Field
from tqdm import tqdm

from umi.eval.metrics import mean

TERMINAL = {"completed", "gave_up", "requires_action", "max_steps", "failed"}


class ExpectedCall(BaseModel):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Task(BaseModel):
    id: str
    query: str
    expected_calls: list[ExpectedCall] = Field(default_factory=list)
    expected_answer: list[str] = Field(default_factory=list)
    expected_status: str = "completed"
    max_steps: int = 10


class Suite(BaseModel):
    name: str = "suite"
    tools: list[dict[str, Any]] = Field(default_factory=list)
    tools_url: str | None = None
    tasks: list[Task]


class TaskResult(BaseModel):
    id: str
    success: bool
    status: str | None
    calls: int
    latency_ms: float
    reasons: list[str]
    chat_id: str | None = None
    answer: str | None = None


class ChatsReport(BaseModel):
    suite: str
    tasks: int
    success_rate: float | None
    calls_per_task: float | None
    latency_ms_p50: float | None
    latency_ms_mean: float | None
    results: list[TaskResult]


def load_suite(path: str | Path) -> Suite:
    return Suite.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return abs(float(expected) - float(actual)) < 1e-9
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(_same(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(_same(a, b) for a, b in zip(expected, actual))
    if isinstance(expected, str) and isinstance(actual, str):
        return expected.strip().lower() == actual.strip().lower()
    return bool(expected == actual)


def judge(task: Task, chat: dict[str, Any]) -> tuple[bool, list[str], int]:
    """Whether a finished chat document solves the task, why not, and how many calls it made."""
    reasons: list[str] = []
    calls = [s for s in chat.get("steps", []) if s.get("role") == "caller"]
    if chat.get("status") != task.expected_status:
        reasons.append(f"status {chat.get('status')!r}, expected {task.expected_status!r}")
    for exp in task.expected_calls:
        if not any(c.get("name") == exp.name and _same(exp.arguments, c.get("arguments") or {}) for c in calls):
            reasons.append(f"no call {exp.name}({json.dumps(exp.arguments, ensure_ascii=False)})")
    answer = (chat.get("answer") or "").lower()
    for value in task.expected_answer:
        if value.lower() not in answer:
            reasons.append(f"answer lacks {value!r}")
    return not reasons, reasons, len(calls)


async def _tools(client: httpx.AsyncClient, suite: Suite) -> list[dict[str, Any]]:
    if suite.tools:
        return suite.tools
    if suite.tools_url:
        response = await client.get(suite.tools_url)
        response.raise_for_status()
        body = response.json()
        return body["tools"] if isinstance(body, dict) else body
    raise ValueError("the suite has neither tools nor tools_url")


# What a chat request may raise: the request failed, or its answer is not a chat document.
CHAT_ERRORS = (httpx.HTTPError, ValueError, KeyError)


async def run_chat(client: httpx.AsyncClient, base: str, task: Task, tools: list[dict[str, Any]]) -> dict[str, Any]:
    """``POST /chat`` for the task's query; the chat document once it stopped (raises CHAT_ERRORS)."""
    response = await client.post(f"{base}/chat", json={"query": task.query, "tools": tools, "max_steps": task.max_steps})
    response.raise_for_status()
    chat: dict[str, Any] = response.json()
    while chat.get("status") not in TERMINAL:
        await asyncio.sleep(0.1)
        chat = (await client.get(f"{base}/chat/{chat['chat_id']}")).json()
    return chat


async def _run_task(client: httpx.AsyncClient, base: str, task: Task, tools: list[dict[str, Any]]) -> TaskResult:
    started = time.perf_counter()
    try:
        chat = await run_chat(client, base, task, tools)
    except CHAT_ERRORS as exc:
        latency = 1000 * (time.perf_counter() - started)
        return TaskResult(id=task.id, success=False, status=None, calls=0, latency_ms=latency, reasons=[f"request failed: {exc}"])
    latency = 1000 * (time.perf_counter() - started)
    ok, reasons, calls = judge(task, chat)
    return TaskResult(
        id=task.id, success=ok, status=chat.get("status"), calls=calls, latency_ms=round(latency, 1),
        reasons=reasons, chat_id=chat.get("chat_id"), answer=chat.get("answer"),
    )


def _median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


async def run_suite(
    suite: Suite, orchestrator_url: str, concurrency: int = 4, timeout_s: float = 300.0,
    headers: dict[str, str] | None = None, progress: bool = True,
) -> ChatsReport:
    base = orchestrator_url.rstrip("/")
    limit = asyncio.Semaphore(max(1, concurrency))
    bar = tqdm(total=len(suite.tasks), desc=f"chats[{suite.name}]", unit="task", disable=not progress, dynamic_ncols=True)
    async with httpx.AsyncClient(timeout=timeout_s, headers=headers) as client:
        tools = await _tools(client, suite)

        async def one(task: Task) -> TaskResult:
            async with limit:
                result = await _run_task(client, base, task, tools)
            bar.update(1)
            return result

        try:
            results = list(await asyncio.gather(*(one(t) for t in suite.tasks)))
        finally:
            bar.close()
    successes = [1.0 if r.success else 0.0 for r in results]
    rate = mean(successes)
    return ChatsReport(
        suite=suite.name,
        tasks=len(results),
        success_rate=None if rate is None else round(100 * rate, 2),
        calls_per_task=mean([float(r.calls) for r in results]),
        latency_ms_p50=_median([r.latency_ms for r in results]),
        latency_ms_mean=mean([r.latency_ms for r in results]),
        results=results,
    )
