"""/v1/chat/completions and /v1/models driven by clients no one here wrote: the official ``openai``
SDK and ``langchain-openai``'s ChatOpenAI, against an orchestrator on loopback (scripted role
services pick the tools; the OpenAI side is real)."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool as lc_tool
from langchain_openai import ChatOpenAI

from tests.support.orchestrator_fakes import call, plan, summary, tool

pytestmark = pytest.mark.redis

WEATHER = tool("get_weather")
QUERY = "What is the weather in Paris?"


def sdk(orch: Any, **options: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=orch.url + "/v1", api_key=options.pop("api_key", "unused"), max_retries=0, **options)


def first_turn(client: openai.OpenAI, **extra: Any) -> Any:
    return client.chat.completions.create(
        model="alpha-umi", messages=[{"role": "user", "content": QUERY}], tools=[WEATHER], **extra
    )


def assistant_echo(message: Any) -> dict[str, Any]:
    """The assistant message as a client sends it back, without reasoning_content."""
    return {"role": "assistant", "content": message.content, "tool_calls": [c.model_dump() for c in message.tool_calls]}


def test_models_lists_the_agent_this_orchestrator_serves(orch):
    assert [m.id for m in sdk(orch).models.list()] == ["alpha-umi"]


def test_a_client_tool_loop_runs_to_the_summarizers_answer_with_the_planners_thoughts(orch, fake_roles):
    client = sdk(orch)
    first = first_turn(client)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    [tool_call] = choice.message.tool_calls
    assert tool_call.function.name == "get_weather"
    assert json.loads(tool_call.function.arguments) == {"q": QUERY}
    assert choice.message.model_extra["reasoning_content"] == "I need a tool."
    assert first.usage.prompt_tokens == 20  # planner and caller, 10 each in the fake
    assert first.model_extra["umi"]["status"] == "requires_action"

    messages = [
        {"role": "user", "content": QUERY}, assistant_echo(choice.message),
        {"role": "tool", "tool_call_id": tool_call.id, "content": "sunny"},
    ]  # fmt: skip
    second = client.chat.completions.create(model="alpha-umi", messages=messages, tools=[WEATHER])
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "answer: sunny"
    assert second.choices[0].message.model_extra["reasoning_content"] == "I know enough."
    # The planner's second request holds its first turn as stored, though the client dropped it.
    history = fake_roles.requests["planner"][-1]["history"]
    assert history[1] == {"role": "planner", "content": plan("I need a tool.").turn}
    assert history[-1] == {"role": "observation", "content": "sunny"}


def test_a_streamed_completion_reassembles_into_the_same_message(orch):
    client = sdk(orch)
    plain = first_turn(client).choices[0]
    chunks = list(first_turn(client, stream=True, stream_options={"include_usage": True}))
    reasoning = "".join(c.choices[0].delta.model_extra.get("reasoning_content") or "" for c in chunks if c.choices)
    calls: dict[int, dict[str, str]] = {}
    for c in chunks:
        for d in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            entry = calls.setdefault(d.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += d.id or ""
            entry["name"] += d.function.name or ""
            entry["arguments"] += d.function.arguments or ""
    assert reasoning == plain.message.model_extra["reasoning_content"]
    assert [(c["name"], c["arguments"]) for c in calls.values()] == [
        (t.function.name, t.function.arguments) for t in plain.message.tool_calls
    ]
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    assert chunks[-1].usage.prompt_tokens == 20

    messages = [
        {"role": "user", "content": QUERY},
        {"role": "assistant", "tool_calls": [{"id": calls[0]["id"], "type": "function", "function": {"name": calls[0]["name"], "arguments": calls[0]["arguments"]}}]},
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": "sunny"},
    ]  # fmt: skip
    stream = client.chat.completions.create(model="alpha-umi", messages=messages, tools=[WEATHER], stream=True)
    content = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert content == "answer: sunny"


def test_errors_are_openai_bodies_that_the_sdk_raises_as_its_own_exceptions(orch):
    client = sdk(orch)
    with pytest.raises(openai.BadRequestError) as refused:
        first_turn(client, n=2)
    assert refused.value.param == "n"  # type: ignore[attr-defined]
    assert refused.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as bad_tool:
        client.chat.completions.create(model="alpha-umi", messages=[{"role": "user", "content": "hi"}], tools=[{"type": "custom", "custom": {}}])
    assert bad_tool.value.param == "tools[0].type"  # type: ignore[attr-defined]
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert unknown.value.code == "model_not_found"  # type: ignore[attr-defined]


def test_results_for_a_call_that_differs_from_the_stored_one_are_a_conflict(orch):
    client = sdk(orch)
    message = first_turn(client).choices[0].message
    [tool_call] = message.tool_calls
    echoed = assistant_echo(message)
    echoed["tool_calls"][0]["function"]["arguments"] = json.dumps({"q": "somewhere else"})
    messages = [{"role": "user", "content": QUERY}, echoed, {"role": "tool", "tool_call_id": tool_call.id, "content": "x"}]
    with pytest.raises(openai.ConflictError) as conflict:
        client.chat.completions.create(model="alpha-umi", messages=messages)
    assert conflict.value.param == "messages[1].tool_calls[0].function"  # type: ignore[attr-defined]


def test_api_keys_guard_v1_with_openais_authentication_error(make_orch):
    orch = make_orch(api_keys="k1")
    with pytest.raises(openai.AuthenticationError):
        sdk(orch, api_key="wrong").models.list()
    assert [m.id for m in sdk(orch, api_key="k1").models.list()] == ["alpha-umi"]


def test_a_chat_completions_conversation_sends_the_role_services_the_prompts_of_post_chat(orch, fake_roles):
    client = sdk(orch)
    message = first_turn(client).choices[0].message
    messages = [
        {"role": "user", "content": QUERY}, assistant_echo(message),
        {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "sunny"},
    ]  # fmt: skip
    client.chat.completions.create(model="alpha-umi", messages=messages)
    via_openai = {role: list(bodies) for role, bodies in fake_roles.requests.items()}
    fake_roles.requests.clear()

    created = orch.chat(query=QUERY, tools=[WEATHER]).json()
    call_id = created["pending_tool_calls"][0]["tool_call_id"]
    orch.client.post(f"/chat/{created['chat_id']}/tool_outputs", json={"outputs": [{"tool_call_id": call_id, "output": "sunny"}]})
    assert set(via_openai) == {"planner", "caller", "summarizer"}
    for role, bodies in via_openai.items():
        assert bodies == fake_roles.requests[role], role


# ------------------------------------------------------------------ LangChain


@lc_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


@lc_tool
def get_time(city: str) -> str:
    """The local time in a city."""
    return f"14:00 in {city}"


def test_langchain_chat_openai_with_bound_tools_drives_a_two_tool_conversation(orch, fake_roles):
    def planner(req):
        done = sum(t.role == "observation" for t in req.history)
        return plan("I have both.", "conclusion") if done >= 2 else plan(f"Step {done + 1}.", "caller")

    def caller(req):
        done = sum(t.role == "observation" for t in req.history)
        return call(["get_weather", "get_time"][done], {"city": "Paris"})

    fake_roles.planner, fake_roles.caller = planner, caller
    fake_roles.summarizer = lambda req: summary(" / ".join(t.content for t in req.history if t.role == "observation"))
    tools = {"get_weather": get_weather, "get_time": get_time}
    llm = ChatOpenAI(base_url=orch.url + "/v1", api_key="unused", model="alpha-umi", max_retries=0).bind_tools(list(tools.values()))
    messages: list[Any] = [HumanMessage("Weather and time in Paris?")]
    names = []
    for _ in range(4):
        reply = llm.invoke(messages)
        messages.append(reply)
        if not reply.tool_calls:
            break
        for tc in reply.tool_calls:
            names.append(tc["name"])
            messages.append(ToolMessage(tools[tc["name"]].invoke(tc["args"]), tool_call_id=tc["id"]))
    assert names == ["get_weather", "get_time"]
    assert messages[-1].content == "sunny in Paris / 14:00 in Paris"


def test_v1_answers_invalid_and_oversized_bodies_in_openais_shape_and_chat_keeps_its_own(make_orch):
    orch = make_orch(max_body_bytes=2048)
    invalid = orch.client.post("/v1/chat/completions", json={"model": "alpha-umi", "messages": []})
    assert invalid.status_code == 400
    assert invalid.json()["error"] == {
        "message": invalid.json()["error"]["message"], "type": "invalid_request_error", "param": "messages",
        "code": "invalid_request",
    }  # fmt: skip
    for body, param in ((
        {"model": "alpha-umi", "stream": "yes", "messages": [{"role": "user", "content": "hi"}]}, "stream"), (
        {"model": "alpha-umi", "n": "2", "messages": [{"role": "user", "content": "hi"}]}, "n")):  # fmt: skip
        loose = orch.client.post("/v1/chat/completions", json=body)
        assert (loose.status_code, loose.json()["error"]["param"]) == (400, param)
    big = orch.client.post("/v1/chat/completions", content=b"x" * 4096, headers={"content-type": "application/json"})
    assert (big.status_code, big.json()["error"]["param"], big.json()["error"]["code"]) == (413, "body", "limit")
    native = orch.client.post("/chat", json={"query": ""})
    assert native.status_code == 422 and native.json()["error"]["field"] == "query"


def test_sampling_parameters_reach_every_role_and_max_tokens_bounds_only_the_answer(orch, fake_roles):
    client = sdk(orch)
    first = first_turn(client, temperature=0.2, top_p=0.9, seed=7, max_completion_tokens=64)
    [tool_call] = first.choices[0].message.tool_calls
    messages = [
        {"role": "user", "content": QUERY}, assistant_echo(first.choices[0].message),
        {"role": "tool", "tool_call_id": tool_call.id, "content": "sunny"},
    ]  # fmt: skip
    client.chat.completions.create(model="alpha-umi", messages=messages, tools=[WEATHER])  # the chat keeps its sampling
    shared = {"temperature": 0.2, "top_p": 0.9, "seed": 7}
    assert [r["sampling"] for r in fake_roles.requests["planner"]] == [shared, shared]
    assert [r["sampling"] for r in fake_roles.requests["caller"]] == [shared]
    assert [r["sampling"] for r in fake_roles.requests["summarizer"]] == [{**shared, "max_tokens": 64}]
    with pytest.raises(openai.BadRequestError) as refused:
        first_turn(client, temperature=9.0)
    assert refused.value.body["param"] == "temperature"  # type: ignore[index]


def test_a_bad_tool_field_is_named_by_its_path_in_both_apis(orch):
    messages = [{"role": "user", "content": "hi"}]
    bad_function = {"type": "function", "function": {"name": "a", "description": 5}}
    answer = orch.client.post("/v1/chat/completions", json={"model": "alpha-umi", "messages": messages, "tools": [bad_function]})
    assert (answer.status_code, answer.json()["error"]["param"]) == (400, "tools[0].function.description")
    flat = {"type": "function", "name": "a", "description": 5}
    answer = orch.client.post("/v1/responses", json={"model": "alpha-umi", "input": "hi", "tools": [flat]})
    assert (answer.status_code, answer.json()["error"]["param"]) == (400, "tools[0].description")
    mcp = {"type": "mcp", "server_label": "x", "server_url": "http://127.0.0.1:9/mcp", "allowed_tools": ["a", 3]}
    answer = orch.client.post("/v1/responses", json={"model": "alpha-umi", "input": "hi", "tools": [mcp]})
    assert (answer.status_code, answer.json()["error"]["param"]) == (400, "tools[0].allowed_tools[1]")
