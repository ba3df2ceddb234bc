"""Client-executed tools: requires_action -> POST tool_outputs -> the chat goes on."""

from __future__ import annotations

import pytest

from tests.support.orchestrator_fakes import call, plan, tool
from umi.roleapi import PromptFit


@pytest.fixture(params=["integration", "in_process"])
def orch_backend(request: pytest.FixtureRequest) -> str:
    """Both orchestrator builds: Redis and HTTP role services, or in-memory and in-process."""
    return request.param


def test_a_client_tool_round_trip(orch, fake_roles) -> None:
    fake_roles.caller = lambda req: call("get_time", {"tz": "UTC"})
    doc = orch.chat(query="What time is it?", tools=[tool("get_time")]).json()

    assert doc["status"] == "requires_action"
    assert [s["role"] for s in doc["steps"]] == ["planner", "caller"]
    (pending,) = doc["pending_tool_calls"]
    assert pending == {"tool_call_id": doc["steps"][1]["tool_call_id"], "name": "get_time", "arguments": {"tz": "UTC"}}
    assert orch.client.get(f"/chat/{doc['chat_id']}").json()["pending_tool_calls"] == [pending]

    response = orch.client.post(
        f"/chat/{doc['chat_id']}/tool_outputs", json={"outputs": [{"tool_call_id": pending["tool_call_id"], "output": "12:00"}]}
    )
    assert response.status_code == 200
    done = response.json()
    assert done["status"] == "completed" and done["pending_tool_calls"] == []
    assert [s["role"] for s in done["steps"]] == ["planner", "caller", "observation", "planner", "summarizer"]
    observation = done["steps"][2]
    assert (observation["content"], observation["tool_call_id"]) == ("12:00", pending["tool_call_id"])
    assert done["answer"] == "answer: 12:00"
    assert fake_roles.requests["planner"][1]["history"][3] == {"role": "observation", "content": "12:00"}

    again = orch.client.post(
        f"/chat/{doc['chat_id']}/tool_outputs", json={"outputs": [{"tool_call_id": pending["tool_call_id"], "output": "x"}]}
    )
    assert again.status_code == 409 and again.json()["error"]["field"] == "status"
    assert fake_roles.count("planner") == 2


def test_a_long_tool_name_is_mapped_back_from_the_64_characters_the_models_see(orch, fake_roles) -> None:
    long_name = "get_current_weather_for_a_city_by_name_" + "x" * 40
    seen = long_name[-64:]
    fake_roles.caller = lambda req: call(req.tooldocs()[0].Name, {})
    doc = orch.chat(query="q", tools=[tool(long_name)]).json()
    assert fake_roles.requests["caller"][0]["tools"][0]["function"]["name"] == long_name
    assert doc["pending_tool_calls"][0]["name"] == long_name != seen
    assert doc["steps"][1]["name"] == long_name


def test_tool_outputs_must_answer_the_pending_calls(orch, fake_roles) -> None:
    fake_roles.caller = lambda req: call("t", {})
    doc = orch.chat(query="q", tools=[tool("t")]).json()
    url = f"/chat/{doc['chat_id']}/tool_outputs"

    unknown = orch.client.post(url, json={"outputs": [{"tool_call_id": "call_nope", "output": "x"}]})
    assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "outputs[0].tool_call_id"
    empty = orch.client.post(url, json={"outputs": []})
    assert empty.status_code == 422 and empty.json()["error"]["field"] == "outputs"
    missing_chat = orch.client.post("/chat/nope/tool_outputs", json={"outputs": [{"tool_call_id": "a", "output": "x"}]})
    assert missing_chat.status_code == 404
    assert orch.client.get(f"/chat/{doc['chat_id']}").json()["status"] == "requires_action"


def test_observations_from_the_client_are_cut_too(make_orch, fake_roles) -> None:
    orch = make_orch(observation_max_chars=5)
    fake_roles.caller = lambda req: call("t", {})
    doc = orch.chat(query="q", tools=[tool("t")]).json()
    call_id = doc["pending_tool_calls"][0]["tool_call_id"]
    done = orch.client.post(
        f"/chat/{doc['chat_id']}/tool_outputs", json={"outputs": [{"tool_call_id": call_id, "output": "0123456789"}]}
    ).json()
    assert done["steps"][2]["content"] == "01234..."


def test_names_the_same_after_the_cut_map_each_call_to_its_own_tool(orch, fake_roles) -> None:
    tail = " the opening hours which a visitor asked for of one museum in a town"  # the cut begins with a space
    first, second = "Look up" + tail, "Find out" + tail
    fake_roles.caller = lambda req: call(req.tooldocs()[1].Name, {})
    doc = orch.chat(query="q", tools=[tool(first), tool(second)]).json()
    seen = [d["Name"] for d in doc_names(fake_roles)]
    assert seen[0] == tail[-64:].strip() and seen[1].endswith("_2") and seen[0] != seen[1]
    assert doc["status"] == "requires_action"
    assert doc["pending_tool_calls"][0]["name"] == second == doc["steps"][1]["name"]


def doc_names(fake_roles) -> list[dict]:
    """The ToolDocs the caller service made of the chat's tools (as the real one does)."""
    from umi.roleapi import CallRequest

    return [d.doc_dict() for d in CallRequest.model_validate(fake_roles.requests["caller"][0]).tooldocs()]


def test_identical_tools_are_sent_once(orch, fake_roles) -> None:
    fake_roles.caller = lambda req: call("t", {})
    doc = orch.chat(query="q", tools=[tool("t"), tool("t"), tool("u")]).json()
    assert doc["status"] == "requires_action"
    assert [t["function"]["name"] for t in fake_roles.requests["planner"][0]["tools"]] == ["t", "u"]


def test_how_each_prompt_was_fitted_is_recorded_in_its_step(orch, fake_roles) -> None:
    fit = PromptFit(policy="fit", actions=["select_tools"], budget_tokens=3568, tokens_before=9000, tokens_after=3500,
                    tools_total=120, tools_kept=40, kept_tools=["t"])  # fmt: skip
    fake_roles.planner = lambda req: plan("I need a tool.").model_copy(update={"fit": fit})
    fake_roles.caller = lambda req: call("t", {})
    doc = orch.chat(query="q", tools=[tool("t")]).json()
    assert doc["steps"][0]["fit"] == fit.model_dump(mode="json")
    assert doc["steps"][1]["fit"] is None  # the caller's prompt fit whole
    assert orch.client.get(f"/chat/{doc['chat_id']}").json()["steps"][0]["fit"] == fit.model_dump(mode="json")


def test_a_chats_sampling_goes_to_its_role_requests(orch, fake_roles) -> None:
    fake_roles.caller = lambda req: call("get_time", {"tz": "UTC"})
    sampling = {"temperature": 0, "seed": 3, "max_answer_tokens": 32}
    doc = orch.chat(query="What time is it?", tools=[tool("get_time")], sampling=sampling).json()
    assert fake_roles.requests["planner"][0]["sampling"] == {"temperature": 0, "seed": 3}
    assert fake_roles.requests["caller"][0]["sampling"] == {"temperature": 0, "seed": 3}
    orch.client.post(f"/chat/{doc['chat_id']}/tool_outputs",
                     json={"outputs": [{"tool_call_id": doc["pending_tool_calls"][0]["tool_call_id"], "output": "12:00"}]})  # fmt: skip
    assert fake_roles.requests["summarizer"][0]["sampling"] == {"temperature": 0, "seed": 3, "max_tokens": 32}
    refused = orch.chat(query="q", sampling={"temperature": "hot"})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "sampling.temperature"
