"""``umi eval steps``: requests to the running role services, by one of two protocols.

``paper`` (the default) is the reference pipeline's (GLPFT ``infer_pipeline.py``): the planner
is asked on every gold step with the gold history before it; then, where the planner itself
decided so (:func:`umi.format.parse_planner`, as the orchestrator routes), the caller is asked
with the planner's own turn as the thought and the last turn of its history, or the summarizer
with that turn last in its history. A step whose planner decided otherwise, or gave up, asks
nothing more and scores ``none`` (score.py). ``teacher-forcing`` asks the caller on every gold
call step with the gold thought and the summarizer on every gold finish step, whatever the
planner said: a measure of each role alone, not comparable with the paper's numbers.
The single-model baseline asks the backbone once per gold step under either protocol.
Requests run concurrently up to a bound, with a progress bar; failed requests are recorded
(and count as wrong), never lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from tqdm import tqdm

from umi.eval.gold import GoldStep, for_caller, for_summarizer
from umi.eval.predictions import Prediction, PredictionRole, Protocol
from umi.format import ToolDoc, Turn, parse_planner

ENDPOINTS: dict[PredictionRole, str] = {
    "planner": "/v1/plan",
    "caller": "/v1/call",
    "summarizer": "/v1/summarize",
    "backbone": "/v1/step",
}
RETRIES = 4


@dataclass(frozen=True)
class Ask:
    """What one role is asked at one gold step (``thought``: the caller's only)."""

    step_id: str
    role: PredictionRole
    tools: list[ToolDoc]
    history: list[Turn]
    thought: str | None = None


def first_asks(steps: Sequence[GoldStep], mode: str) -> list[Ask]:
    """The planner (``mode`` ``multi``) or the backbone (``single``) on every step."""
    role: PredictionRole = "backbone" if mode == "single" else "planner"
    return [Ask(s.id, role, s.tools, list(s.history)) for s in steps]


def follow_up_asks(steps: Sequence[GoldStep], protocol: Protocol, planner: Mapping[str, Prediction] | None = None) -> list[Ask]:
    """The caller and summarizer asks of a multi-model run. ``planner`` (step id -> the planner's
    prediction) is needed by the ``paper`` protocol; a failed planner request asks nothing."""
    out: list[Ask] = []
    for s in steps:
        if protocol == "teacher-forcing":
            if s.call is not None:
                out.append(Ask(s.id, "caller", s.tools, s.call.history, s.call.thought))
            if s.answer is not None:
                out.append(Ask(s.id, "summarizer", s.tools, s.answer.history))
            continue
        pred = (planner or {}).get(s.id)
        if pred is None or pred.error is not None:
            continue
        plan = parse_planner(pred.text)
        turn = Turn(role="planner", content=plan.text)
        if plan.next == "caller":
            out.append(Ask(s.id, "caller", s.tools, for_caller(s.history) + [turn], plan.text))
        elif plan.next == "conclusion":
            out.append(Ask(s.id, "summarizer", s.tools, for_summarizer(s.history) + [turn]))
    return out


@dataclass(frozen=True)
class Request:
    step_id: str
    role: PredictionRole
    body: dict[str, Any]


def to_request(ask: Ask, sampling: dict[str, Any]) -> Request:
    """The JSON body of a role service's endpoint (docs/role-services.md) for ``ask``."""
    body: dict[str, Any] = {"history": [t.model_dump() for t in ask.history], "sampling": sampling}
    if ask.role != "summarizer":
        body["tools"] = [t.doc_dict() for t in ask.tools]
    if ask.thought is not None:
        body["thought"] = ask.thought
    return Request(ask.step_id, ask.role, body)


async def _send(client: httpx.AsyncClient, base_url: str, req: Request) -> Prediction:
    url = base_url.rstrip("/") + ENDPOINTS[req.role]
    error = "no attempt"
    for attempt in range(RETRIES + 1):
        try:
            response = await client.post(url, json=req.body)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code == 200:
                body = response.json()
                return Prediction(
                    id=req.step_id, role=req.role, text=body.get("text", ""), model=body.get("model"),
                    latency_ms=body.get("latency_ms"), usage=body.get("usage"),
                )
            error = f"HTTP {response.status_code}: {response.text[:300]}"
            if response.status_code not in (429, 502, 503, 504):
                break
            retry_after = response.headers.get("retry-after", "")
            if retry_after.isdigit():
                await asyncio.sleep(min(float(retry_after), 10.0))
                continue
        if attempt < RETRIES:
            await asyncio.sleep(min(0.25 * 2**attempt, 4.0))
    return Prediction(id=req.step_id, role=req.role, text="", error=error)


async def run_requests(
    requests: Sequence[Request],
    urls: dict[PredictionRole, str],
    concurrency: int = 8,
    timeout_s: float = 120.0,
    progress: bool = True,
    label: str = "steps",
) -> list[Prediction]:
    """Send every request (at most ``concurrency`` at once); predictions come back in order."""
    limit = asyncio.Semaphore(max(1, concurrency))
    bar = tqdm(total=len(requests), desc=label, unit="req", disable=not progress, dynamic_ncols=True)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:

        async def one(req: Request) -> Prediction:
            async with limit:
                pred = await _send(client, urls[req.role], req)
            bar.update(1)
            return pred

        started = time.perf_counter()
        try:
            results = await asyncio.gather(*(one(r) for r in requests))
        finally:
            bar.close()
    if progress:
        elapsed = time.perf_counter() - started
        failed = sum(1 for p in results if p.error)
        print(f"{label}: {len(results)} requests in {elapsed:.1f}s, {failed} failed")
    return list(results)
