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
    "summarize:Convert 5 EUR": "none",
    "plan:Convert 5 EUR": "Convert.\n Next: caller.",
    "call:Convert 5 EUR": 'Action: convert_for_currency\nAction Input: {"amount": 5, "to": "USD"}',
    "plan:Book me a flight": "Cannot.\n Next: give up.",
    "step:Weather in Z\u00fcrich?": "W\nAction: get_weather_for_weather\nAction Input: {}",
    "step:Convert 5 EUR": "C\nAction: convert_for_currency\nAction Input: {}",
    "step:Book me a flight": "B\nconclusion: give up.",
}


def _run(url: str, out: Path, data: Path, *extra: str) -> int:
    return main([
        "eval", "steps", "--data", str(data), "--planner", url, "--caller", url, "--summarizer", url,
        "--out", str(out), "--quiet", "--concurrency", "3", *extra,
    ])


def test_eval_steps_asks_the_caller_and_summarizer_only_where_the_planner_decided_so(
    trajectories_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    out = tmp_path / "results.json"
    with serve_app(role_app(ANSWERS, seen, flaky=True)) as url:
        code = _run(url, out, trajectories_path, "--backbone", url)
    printed = capsys.readouterr().out
    assert code == 0, printed
    # The fake planner answers by question: "caller" on all four steps of the first two questions
    # (wrongly at the finish steps 0:4 and 1:7), "give up" on the third. So the caller is asked on
    # those four steps and the summarizer never; the backbone on all 5; plus one retried 503.
    paths = [p for p, _ in seen]
    counts = {p: paths.count(p) for p in ("plan", "call", "summarize", "step")}
    expected = {"plan": 5, "call": 4, "summarize": 0, "step": 5}
    assert all(counts[p] >= n for p, n in expected.items()) and counts["summarize"] == 0
    assert sum(counts.values()) == sum(expected.values()) + 1
    calls = [b for p, b in seen if p == "call"]
    # the caller sees the planner's own turn (not the gold "I need the weather."), last in its history
    weather = [b for b in calls if b["history"][0]["content"].startswith("Weather")]
    assert {b["thought"] for b in weather} == {"Weather.\n Next: caller."}
    assert all(b["history"][-1] == {"role": "planner", "content": b["thought"]} for b in calls)
    assert all(b["sampling"]["temperature"] == 0.0 for _, b in seen)
    doc = json.loads(out.read_text(encoding="utf-8"))
    multi = doc["runs"]["multi-model"]["metrics"]
    single = doc["runs"]["single-model"]["metrics"]
    # multi: decisions right on 3 of 5; both gold calls exact; R-L: "none" (no answer) scores 0
    # against the 0:4 answer and 1 against the gold "none" of 1:7
    assert (multi["plan_acc"], multi["act_em"], multi["hallu"], multi["arg_f1"], multi["rouge_l"]) == (60.0, 100.0, 0.0, 100.0, 50.0)
    assert (single["plan_acc"], single["act_em"], single["arg_f1"], single["rouge_l"]) == (60.0, 100.0, 0.0, 50.0)
    assert "| multi-model |" in printed and "| single-model |" in printed and "| alpha-UMi 7B (paper) |" in printed
    preds = json.loads((tmp_path / "results.multi.predictions.json").read_text(encoding="utf-8"))
    assert {p["role"] for p in preds} == {"planner", "caller"} and not any("error" in p for p in preds)
    assert {p["protocol"] for p in preds} == {"paper"}
    assert out.with_suffix(".png").exists() and out.with_suffix(".md").exists()


def test_teacher_forcing_is_an_option_labelled_apart_from_the_papers_numbers(
    trajectories_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    out = tmp_path / "tf.json"
    with serve_app(role_app(ANSWERS, seen)) as url:
        code = _run(url, out, trajectories_path, "--protocol", "teacher-forcing")
    printed = capsys.readouterr().out
    assert code == 0, printed
    paths = [p for p, _ in seen]
    # the caller on the 2 gold call steps with the gold thought, the summarizer on both gold finish steps
    assert {p: paths.count(p) for p in ("plan", "call", "summarize")} == {"plan": 5, "call": 2, "summarize": 2}
    assert all(b["thought"].endswith("Next: caller.") and not b["thought"].startswith("Weather") for p, b in seen if p == "call")
    assert "| multi-model (teacher forcing) | 60.00 | 100.00 | 0.00 | 100.00 | 100.00 | 5 |" in printed
    assert "(paper)" not in printed and "Not comparable with the paper's numbers" in printed
    preds = json.loads((tmp_path / "tf.multi.predictions.json").read_text(encoding="utf-8"))
    assert {p["protocol"] for p in preds} == {"teacher-forcing"}


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
