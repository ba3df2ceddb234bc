"""`umi eval steps` against scripted role services: the requests it sends and the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.support.servers import running_app as serve_app
from umi.cli import main


def role_app(answers: dict[str, str], seen: list[tuple[str, dict[str, Any]]], flaky: bool = False) -> FastAPI:
    """A fake role service that answers by the last user turn, and records what it was sent."""
    app = FastAPI()
    state = {"failed_once": False}

    async def answer(path: str, request: Request) -> JSONResponse:
        body = await request.json()
        seen.append((path, body))
        if flaky and not state["failed_once"]:
            state["failed_once"] = True
            return JSONResponse({"error": {"type": "engine_unavailable", "message": "warming"}}, 503, headers={"Retry-After": "0"})
        query = next(t["content"] for t in body["history"] if t["role"] == "user")
        text = answers[f"{path}:{query}"]
        return JSONResponse({"text": text, "model": {"name": "fake", "version": "v1"}, "usage": {}, "latency_ms": 1.0})

    def route(path: str) -> Any:
        async def handler(request: Request) -> JSONResponse:
            return await answer(path, request)

        return handler

    for path in ("plan", "call", "summarize", "step"):
        app.add_api_route(f"/v1/{path}", route(path), methods=["POST"])
    return app


ANSWERS = {
    "plan:Weather in Z\u00fcrich?": "Weather.\n Next: caller.",
    "call:Weather in Z\u00fcrich?": 'Action: get_weather_for_weather\nAction Input: {"city": "Z\u00fcrich"}',
    "summarize:Weather in Z\u00fcrich?": "It is 3 degrees in Z\u00fcrich.",
    "plan:Convert 5 EUR": "Convert.\n Next: caller.",
    "call:Convert 5 EUR": 'Action: convert_for_currency\nAction Input: {"amount": 5, "to": "USD"}',
    "plan:Book me a flight": "Cannot.\n Next: give up.",
    "step:Weather in Z\u00fcrich?": "W\nAction: get_weather_for_weather\nAction Input: {}",
    "step:Convert 5 EUR": "C\nAction: convert_for_currency\nAction Input: {}",
    "step:Book me a flight": "B\nconclusion: give up.",
}


def test_eval_steps_multi_and_single_side_by_side(
    trajectories_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    out = tmp_path / "results.json"
    with serve_app(role_app(ANSWERS, seen, flaky=True)) as url:
        code = main([
            "eval", "steps", "--data", str(trajectories_path), "--planner", url, "--caller", url,
            "--summarizer", url, "--backbone", url, "--out", str(out), "--quiet", "--concurrency", "3",
        ])
    printed = capsys.readouterr().out
    assert code == 0, printed
    # planner on all 5 steps, caller on the 2 call steps, summarizer on the 1 finish step with an answer,
    # backbone on all 5; plus the one request that got 503 and was retried.
    paths = [p for p, _ in seen]
    counts = {p: paths.count(p) for p in ("plan", "call", "summarize", "step")}
    expected = {"plan": 5, "call": 2, "summarize": 1, "step": 5}
    assert all(counts[p] >= n for p, n in expected.items())
    assert sum(counts.values()) == sum(expected.values()) + 1
    calls = [b for p, b in seen if p == "call"]
    assert all(b["thought"].endswith("Next: caller.") for b in calls)
    assert all(b["sampling"]["temperature"] == 0.0 for _, b in seen)
    doc = json.loads(out.read_text(encoding="utf-8"))
    multi = doc["runs"]["multi-model"]["metrics"]
    single = doc["runs"]["single-model"]["metrics"]
    # multi: decisions right on 4 of 5 (1:7 is a conclusion, the fake says caller), calls exact
    assert (multi["plan_acc"], multi["act_em"], multi["arg_f1"], multi["rouge_l"], multi["missing"]) == (60.0, 100.0, 100.0, 100.0, 0)
    assert (single["plan_acc"], single["act_em"], single["arg_f1"]) == (60.0, 100.0, 0.0)
    assert "| multi-model |" in printed and "| single-model |" in printed
    preds = json.loads((tmp_path / "results.multi.predictions.json").read_text(encoding="utf-8"))
    assert {p["role"] for p in preds} == {"planner", "caller", "summarizer"} and not any("error" in p for p in preds)
    assert out.with_suffix(".png").exists() and out.with_suffix(".md").exists()


def test_eval_steps_requires_all_three_roles(trajectories_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", "steps", "--data", str(trajectories_path), "--planner", "http://127.0.0.1:9"])
    assert code == 2 and "--caller" in capsys.readouterr().err


def test_eval_steps_records_failed_requests_as_wrong(trajectories_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    app = FastAPI()

    @app.post("/v1/step")
    async def broken() -> JSONResponse:
        return JSONResponse({"error": {"type": "bad_request", "message": "no"}}, 400)

    with serve_app(app) as url:
        code = main(["eval", "steps", "--data", str(trajectories_path), "--backbone", url, "--out", str(out), "--quiet"])
    assert code == 0
    preds = json.loads((tmp_path / "r.single.predictions.json").read_text(encoding="utf-8"))
    assert len(preds) == 5 and all(p["error"].startswith("HTTP 400") for p in preds)
    assert json.loads(out.read_text(encoding="utf-8"))["runs"]["single-model"]["metrics"]["plan_acc"] == 0.0
