"""``umi eval steps``: teacher-forced requests to the running role services.

Every gold step becomes requests with the gold history before it: the planner on every step,
the caller on gold call steps (with the gold thought), the summarizer on gold finish steps;
or, for the single-model baseline, the backbone on every step. Requests run concurrently up
to a bound, with a progress bar; failed requests are recorded (and count as wrong), never lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from tqdm import tqdm

from umi.eval.gold import GoldStep
from umi.eval.predictions import Prediction, PredictionRole

ENDPOINTS: dict[PredictionRole, str] = {
    "planner": "/v1/plan",
    "caller": "/v1/call",
    "summarizer": "/v1/summarize",
    "backbone": "/v1/step",
}
RETRIES = 4


@dataclass(frozen=True)
class Request:
    step_id: str
    role: PredictionRole
    body: dict[str, Any]


def _tools(step: GoldStep) -> list[dict[str, Any]]:
    return [t.doc_dict() for t in step.tools]


def _turns(turns: Sequence[Any]) -> list[dict[str, str]]:
    return [t.model_dump() for t in turns]


def build_requests(steps: Sequence[GoldStep], mode: str, sampling: dict[str, Any]) -> list[Request]:
    """The requests of one run: ``mode`` is ``multi`` (three roles) or ``single`` (backbone)."""
    out: list[Request] = []
    for step in steps:
        if mode == "single":
            out.append(Request(step.id, "backbone", {"tools": _tools(step), "history": _turns(step.history), "sampling": sampling}))
            continue
        out.append(Request(step.id, "planner", {"tools": _tools(step), "history": _turns(step.history), "sampling": sampling}))
        if step.call is not None:
            body = {"tools": _tools(step), "history": _turns(step.call.history), "thought": step.call.thought, "sampling": sampling}
            out.append(Request(step.id, "caller", body))
        if step.answer is not None:
            out.append(Request(step.id, "summarizer", {"history": _turns(step.answer.history), "sampling": sampling}))
    return out


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
