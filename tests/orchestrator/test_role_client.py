"""The HTTP role client inside the loop: bounded retries of 5xx, Retry-After honoured, 4xx not
retried, an unreachable service fails the chat with the trajectory so far kept; every request
carries the chat id for a load balancer's affinity."""

from __future__ import annotations

from typing import Any

from tests.support.orchestrator_fakes import Fail, plan, tool
from umi.engines.process import free_port
from umi.roleapi import PlanRequest


def roles_of(doc: dict) -> list[str]:
    return [s["role"] for s in doc["steps"]]


def test_a_failing_role_service_is_retried_a_bounded_number_of_times_then_failed(orch, fake_roles) -> None:
    fake_roles.caller = lambda req: Fail(500, "CUDA out of memory")
    doc = orch.chat(query="q", tools=[tool("t")]).json()
    assert doc["status"] == "failed"
    assert doc["error"]["type"] == "role_service" and doc["error"]["role"] == "caller"
    assert doc["error"]["status_code"] == 500 and "CUDA out of memory" in doc["error"]["message"]
    assert fake_roles.count("caller") == orch.settings.role_max_attempts == 3
    assert roles_of(doc) == ["planner"]  # the trajectory so far is kept
    stored = orch.client.get(f"/chat/{doc['chat_id']}").json()
    assert stored["status"] == "failed" and stored["error"] == doc["error"] and len(stored["steps"]) == 1


def test_a_4xx_from_a_role_service_is_not_retried(orch, fake_roles) -> None:
    fake_roles.planner = lambda req: Fail(422, "history[0].role: bad")
    doc = orch.chat(query="q", tools=[tool("t")]).json()
    assert doc["status"] == "failed" and doc["error"]["status_code"] == 422
    assert fake_roles.count("planner") == 1


def test_an_unreachable_role_service_fails_the_chat(make_orch, fake_roles) -> None:
    orch = make_orch(summarizer_url=f"http://127.0.0.1:{free_port()}", role_max_attempts=2)
    fake_roles.planner = lambda req: plan("Done.", "conclusion")
    doc = orch.chat(query="q").json()
    assert doc["status"] == "failed" and doc["error"]["role"] == "summarizer"
    assert "unreachable" in doc["error"]["message"]
    assert roles_of(doc) == ["planner"]


def test_a_503_with_retry_after_is_retried_and_the_chat_goes_on(orch, fake_roles, tool_server) -> None:
    replies = iter([Fail(503, "loading", retry_after=0)])

    def planner(req: PlanRequest) -> Any:
        return next(replies, None) or (plan("Done.", "conclusion") if req.history[1:] else plan("Go.", "caller"))

    fake_roles.planner = planner
    doc = orch.chat(query="q", tools=[tool("t", tool_server.url + "/echo")]).json()
    assert doc["status"] == "completed"
    assert fake_roles.count("planner") == 3  # one 503, then two planner turns


def test_every_role_request_carries_the_chat_id(orch, fake_roles, tool_server) -> None:
    fake_roles.planner = lambda req: plan("Done.", "conclusion") if req.history[1:] else plan("Go.", "caller")
    doc = orch.chat(query="q", tools=[tool("t", tool_server.url + "/echo")]).json()
    assert doc["status"] == "completed"
    assert fake_roles.chat_ids == {"planner": [doc["chat_id"]] * 2, "caller": [doc["chat_id"]], "summarizer": [doc["chat_id"]]}
