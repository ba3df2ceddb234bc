"""`umi eval chats`: judging chats, and a suite run against a scripted orchestrator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from tests.support.servers import running_app as serve_app
from umi.cli import main
from umi.demo.suite import demo_suite
from umi.demo.tools_app import create_app as tools_app
from umi.eval.chats import Task, judge


def chat(status: str, calls: list[tuple[str, dict]], answer: str | None) -> dict[str, Any]:
    steps = [{"role": "caller", "name": n, "arguments": a} for n, a in calls]
    return {"chat_id": "c", "status": status, "steps": steps, "answer": answer}


TASK = Task(
    id="t", query="q",
    expected_calls=[{"name": "convert_currency", "arguments": {"amount": 250, "from_currency": "EUR", "to_currency": "JPY"}}],
    expected_answer=["41086.96"],
)


def test_judge_success_with_numbers_compared_as_numbers() -> None:
    ok, reasons, calls = judge(TASK, chat("completed", [("convert_currency", {"amount": 250.0, "from_currency": "eur", "to_currency": "JPY"})], "It is 41086.96 JPY."))
    assert (ok, reasons, calls) == (True, [], 1)


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        (chat("failed", [("convert_currency", {"amount": 250, "from_currency": "EUR", "to_currency": "JPY"})], "41086.96"), "status 'failed'"),
        (chat("completed", [("convert_currency", {"amount": 25, "from_currency": "EUR", "to_currency": "JPY"})], "41086.96"), "no call convert_currency"),
        (chat("completed", [("convert_currency", {"amount": 250, "from_currency": "EUR", "to_currency": "JPY", "x": 1})], "41086.96"), "no call"),
        (chat("completed", [("convert_currency", {"amount": 250, "from_currency": "EUR", "to_currency": "JPY"})], "about 41000"), "answer lacks"),
    ],
)
def test_judge_failures_say_why(doc: dict, needle: str) -> None:
    ok, reasons, _ = judge(TASK, doc)
    assert ok is False and any(needle in r for r in reasons)


def scripted_orchestrator(answers: dict[str, dict[str, Any]], seen: list[dict]) -> FastAPI:
    app = FastAPI()

    @app.post("/chat")
    async def create(body: dict) -> dict:
        seen.append(body)
        return {"chat_id": body["query"], **answers[body["query"]]}

    return app


def test_demo_suite_run_reports_success_calls_and_latency(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = demo_suite()
    answers: dict[str, dict[str, Any]] = {}
    for task in suite.tasks:
        calls = [(c.name, c.arguments) for c in task.expected_calls]
        answers[task.query] = chat(task.expected_status, calls, " and ".join(task.expected_answer) or None)
    answers["What time is it in Lima?"]["answer"] = "I do not know"  # one failure
    seen: list[dict] = []
    out = tmp_path / "chats.json"
    with serve_app(tools_app()) as tools_url, serve_app(scripted_orchestrator(answers, seen)) as orch:
        code = main(["eval", "chats", "--suite", "demo", "--tools-url", f"{tools_url}/tools",
                     "--orchestrator", orch, "--out", str(out), "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["tasks"] == 10 and report["success_rate"] == 90.0
    assert report["calls_per_task"] == pytest.approx(1.0)  # 8 one-call, 1 two-call, 1 give-up
    assert "FAILED time: answer lacks '" in printed
    assert len(seen) == 10 and all(len(body["tools"]) == 8 for body in seen)
    assert seen[0]["tools"][0]["endpoint"]["url"].startswith(tools_url)
