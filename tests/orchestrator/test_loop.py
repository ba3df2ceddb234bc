"""The agent loop end to end, real tools over HTTP, in both orchestrator builds: the integration
one (fake role services over HTTP, a real Redis) and the in-process one (the in-memory store and
an in-process role client). Retries of the HTTP role client: test_role_client.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.orchestrator_fakes import call, plan, tool
from umi.format.tools import HALLUCINATED_NAME
from umi.roleapi import BackboneResponse, ModelInfo, Usage


@pytest.fixture(params=["integration", "in_process"])
def orch_backend(request: pytest.FixtureRequest) -> str:
    return request.param


def roles_of(doc: dict) -> list[str]:
    return [s["role"] for s in doc["steps"]]


def test_the_whole_loop_with_a_server_tool(orch, fake_roles, tool_server) -> None:
    tools = [tool("weather", tool_server.url + "/echo", headers={"X-Api-Key": "k1"}), tool("other")]
    response = orch.chat(query="Weather in Oslo?", tools=tools, metadata={"user": "u1"})
    assert response.status_code == 200
    doc = response.json()
    chat_id = doc["chat_id"]

    assert doc["status"] == "completed"
    assert roles_of(doc) == ["planner", "caller", "observation", "planner", "summarizer"]
    assert [s["index"] for s in doc["steps"]] == [0, 1, 2, 3, 4]
    planner, caller, observation, _, summarizer = doc["steps"]
    assert (planner["thought"], planner["next"]) == ("I need a tool.", "caller")
    assert (caller["name"], caller["arguments"]) == ("weather", {"q": "Weather in Oslo?"})
    assert observation["tool_call_id"] == caller["tool_call_id"] and observation["error"] is None
    assert json.loads(observation["content"]) == {"echo": {"q": "Weather in Oslo?"}, "method": "POST"}
    assert doc["answer"] == summarizer["answer"] == "answer: " + observation["content"]
    assert doc["models"] == {"planner": "planner-v1", "caller": "caller-v1", "summarizer": "summarizer-v1"}
    assert doc["usage"]["role_calls"] == 4 and doc["usage"]["prompt_tokens"] == 40
    assert doc["metadata"] == {"user": "u1"} and doc["error"] is None and doc["pending_tool_calls"] == []
    assert all(s["model_version"] for s in doc["steps"] if s["role"] != "observation")

    # The tool ran once, with the endpoint's headers and the (chat, step) idempotency key.
    assert tool_server.executions == {("echo", ""): 1}
    assert tool_server.headers[0]["x-api-key"] == "k1"
    assert tool_server.headers[0]["idempotency-key"] == f"{chat_id}:1"

    # What the role services received: the tools without endpoints, typed history, the thought.
    first_plan, second_plan = fake_roles.requests["planner"]
    assert first_plan["tools"] == [{k: v for k, v in t.items() if k != "endpoint"} for t in tools]
    assert first_plan["history"] == [{"role": "user", "content": "Weather in Oslo?"}]
    (caller_request,) = fake_roles.requests["caller"]
    assert caller_request["thought"] == planner["turn"] == "I need a tool.\n Next: caller."
    assert caller_request["history"] == first_plan["history"] + [{"role": "planner", "content": planner["turn"]}]
    assert [t["role"] for t in second_plan["history"]] == ["user", "planner", "caller", "observation"]
    assert second_plan["history"][2]["content"] == caller["turn"]
    assert second_plan["history"][3]["content"] == observation["content"]
    (summarize_request,) = fake_roles.requests["summarizer"]
    assert "tools" not in summarize_request
    assert [t["role"] for t in summarize_request["history"]] == ["user", "planner", "caller", "observation", "planner"]

    # The stored chat is the same document.
    stored = orch.client.get(f"/chat/{chat_id}").json()
    assert stored["steps"] == doc["steps"] and stored["status"] == "completed" and stored["answer"] == doc["answer"]


def test_a_get_tool_receives_the_arguments_as_query_parameters(orch, fake_roles, tool_server) -> None:
    fake_roles.caller = lambda req: call("lookup", {"key": "abc", "n": 3, "flag": True})
    doc = orch.chat(query="q", tools=[tool("lookup", tool_server.url + "/echo", method="GET")]).json()
    echoed = json.loads(doc["steps"][2]["content"])
    assert echoed == {"echo": {"key": "abc", "n": "3", "flag": "true"}, "method": "GET"}


def _error_case(orch, fake_roles, tool_server, caller_reply: Any, endpoint: str, **extra: Any) -> dict:
    fake_roles.caller = lambda req: caller_reply
    tools = [tool("t", tool_server.url + endpoint, **extra)]
    doc = orch.chat(query="q", tools=tools).json()
    assert doc["status"] == "completed", doc
    assert roles_of(doc) == ["planner", "caller", "observation", "planner", "summarizer"]
    return doc


def test_an_unknown_tool_name_is_an_error_observation_and_a_hallucinated_turn(orch, fake_roles, tool_server) -> None:
    doc = _error_case(orch, fake_roles, tool_server, call("no_such_tool", {"q": 1}), "/echo")
    caller, observation = doc["steps"][1:3]
    assert caller["name"] == "no_such_tool"
    assert observation["error"] == "unknown_tool"
    assert json.loads(observation["content"]) == {"error": "No such function name: no_such_tool", "response": ""}
    assert tool_server.total() == 0
    history = fake_roles.requests["planner"][1]["history"]
    assert history[2] == {"role": "caller", "content": f'Action: {HALLUCINATED_NAME}\nAction Input: {{"q": 1}}'}


def test_invalid_json_arguments_are_an_error_observation(orch, fake_roles, tool_server) -> None:
    doc = _error_case(orch, fake_roles, tool_server, call("t", '{"q": '), "/echo")
    caller, observation = doc["steps"][1:3]
    assert caller["arguments"] == '{"q": '
    assert observation["error"] == "invalid_arguments"
    assert json.loads(observation["content"])["error"].startswith("Tool input parse error")
    assert tool_server.total() == 0


def test_a_non_2xx_answer_is_an_error_observation(orch, fake_roles, tool_server) -> None:
    doc = _error_case(orch, fake_roles, tool_server, call("t", {"q": "x"}), "/fail")
    observation = doc["steps"][2]
    assert observation["error"] == "http_status"
    assert json.loads(observation["content"]) == {"error": "HTTP 500", "response": "backend down"}


def test_a_tool_timeout_is_an_error_observation(orch, fake_roles, tool_server) -> None:
    doc = _error_case(orch, fake_roles, tool_server, call("t", {"sleep": 1}), "/slow", timeout_s=0.2)
    observation = doc["steps"][2]
    assert observation["error"] == "timeout"
    assert "Timeout error" in json.loads(observation["content"])["error"]


def test_observations_are_cut_to_the_configured_length(make_orch, fake_roles, tool_server) -> None:
    orch = make_orch(observation_max_chars=100)
    doc = orch.chat(query="q", tools=[tool("big", tool_server.url + "/big")]).json()
    assert doc["steps"][2]["content"] == "x" * 100 + "..."
    assert fake_roles.requests["planner"][1]["history"][3]["content"] == "x" * 100 + "..."


def test_give_up_settles_gave_up_with_the_planners_reason_as_the_answer(orch, fake_roles) -> None:
    fake_roles.planner = lambda req: plan("No tool can book flights.", "give_up")
    doc = orch.chat(query="Book me a flight", tools=[tool("t")]).json()
    assert doc["status"] == "gave_up"
    assert doc["answer"] == "No tool can book flights."
    assert roles_of(doc) == ["planner"] and doc["steps"][0]["next"] == "give_up"
    assert fake_roles.count("summarizer") == 0 and fake_roles.count("caller") == 0
    assert orch.client.get(f"/chat/{doc['chat_id']}").json()["answer"] == "No tool can book flights."


def test_max_steps_bounds_the_planner_turns(orch, fake_roles, tool_server) -> None:
    fake_roles.planner = lambda req: plan("Again.", "caller")
    doc = orch.chat(query="q", tools=[tool("t", tool_server.url + "/echo")], max_steps=2).json()
    assert doc["status"] == "max_steps"
    assert doc["answer"] is None
    assert roles_of(doc) == ["planner", "caller", "observation"] * 2
    assert fake_roles.count("planner") == 2 and fake_roles.count("summarizer") == 0
    assert tool_server.total() == 2


def test_the_same_chat_id_twice_returns_the_existing_chat_and_runs_it_once(orch, fake_roles, tool_server) -> None:
    body = {"query": "q", "tools": [tool("t", tool_server.url + "/echo")], "chat_id": "order-42"}
    first = orch.chat(**body)
    second = orch.chat(**body)
    assert first.status_code == second.status_code == 200
    assert second.json()["chat_id"] == "order-42"
    assert second.json()["steps"] == first.json()["steps"]
    assert fake_roles.count("planner") == 2 and tool_server.total() == 1
    conflict = orch.chat(**{**body, "query": "another question"})
    assert conflict.status_code == 409 and conflict.json()["error"]["field"] == "chat_id"


def test_delete_removes_the_chat(orch) -> None:
    doc = orch.chat(query="q").json()
    assert orch.client.delete(f"/chat/{doc['chat_id']}").status_code == 204
    assert orch.client.get(f"/chat/{doc['chat_id']}").status_code == 404
    assert orch.client.delete(f"/chat/{doc['chat_id']}").status_code == 404


def test_single_model_mode_uses_the_backbone_for_every_role(make_orch, fake_roles, tool_server) -> None:
    orch = make_orch(backbone_url=fake_roles.url)

    def backbone(req: Any) -> BackboneResponse:
        meta = {"model": ModelInfo(name="bb", version="backbone-v1"), "usage": Usage(prompt_tokens=5), "latency_ms": 1}
        if any(t.role == "observation" for t in req.history):
            return BackboneResponse(text="t", thought="Got it.", next="conclusion", answer="It is 3 degrees.", **meta)
        thought_call = call("t", {"q": "Oslo"})
        return BackboneResponse(text="t", thought="Look it up.", next="caller", call=thought_call, **meta)

    fake_roles.backbone = backbone
    doc = orch.chat(query="Weather?", tools=[tool("t", tool_server.url + "/echo")]).json()
    assert doc["status"] == "completed" and doc["answer"] == "It is 3 degrees."
    assert roles_of(doc) == ["planner", "caller", "observation", "planner", "summarizer"]
    assert doc["models"] == {"backbone": "backbone-v1"}
    assert doc["usage"]["role_calls"] == 2
    assert fake_roles.count("planner") == fake_roles.count("caller") == fake_roles.count("summarizer") == 0
    second = fake_roles.requests["backbone"][1]["history"]
    assert second[1] == {"role": "planner", "content": 'Look it up.\nAction: t\nAction Input: {"q": "Oslo"}'}
    assert second[2]["role"] == "observation"
    assert tool_server.total() == 1

