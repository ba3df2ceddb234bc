"""/v1/responses driven by the official ``openai`` SDK against an orchestrator on loopback
(scripted role services pick the tools; the OpenAI side is real)."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.support.orchestrator_fakes import plan

pytestmark = pytest.mark.redis

WEATHER = {
    "type": "function", "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
}  # fmt: skip
QUERY = "What is the weather in Paris?"


def sdk(orch: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=orch.url + "/v1", api_key="unused", max_retries=0)


def test_a_responses_loop_continues_with_previous_response_id_and_function_call_output(orch, fake_roles):
    client = sdk(orch)
    first = client.responses.create(model="alpha-umi", input=QUERY, tools=[WEATHER])
    assert [item.type for item in first.output] == ["reasoning", "function_call"]
    assert first.output[0].summary[0].text == "I need a tool."
    call = first.output[1]
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"q": QUERY})
    assert first.usage.input_tokens == 20

    second = client.responses.create(
        model="alpha-umi", previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
    )  # fmt: skip
    assert second.status == "completed"
    assert [item.type for item in second.output] == ["reasoning", "message"]
    assert second.output_text == "answer: sunny"
    assert fake_roles.requests["planner"][-1]["history"][-1] == {"role": "observation", "content": "sunny"}

    # Each response is rebuilt from the stored chat.
    assert client.responses.retrieve(first.id).output == first.output
    assert client.responses.retrieve(second.id).output_text == "answer: sunny"


def test_a_streamed_response_sends_the_semantic_events_and_completes_with_the_same_output(orch, fake_roles):
    client = sdk(orch)
    plain = client.responses.create(model="alpha-umi", input=QUERY, tools=[WEATHER])
    events = list(client.responses.create(model="alpha-umi", input=QUERY, tools=[WEATHER], stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert "response.function_call_arguments.delta" in kinds and kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    done = events[-1].response
    assert [(i.type, getattr(i, "name", None), getattr(i, "arguments", None)) for i in done.output] == [
        (i.type, getattr(i, "name", None), getattr(i, "arguments", None)) for i in plain.output
    ]
    call = done.output[-1]
    answer = client.responses.create(
        model="alpha-umi", previous_response_id=done.id, stream=True,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
    )  # fmt: skip
    text = "".join(e.delta for e in answer if e.type == "response.output_text.delta")
    assert text == "answer: sunny"


def test_a_give_up_is_a_message_with_the_planners_reason(orch, fake_roles):
    fake_roles.planner = lambda req: plan("No tool can tell.", "give_up")
    response = sdk(orch).responses.create(model="alpha-umi", input=QUERY, tools=[WEATHER])
    assert response.output_text == "No tool can tell."
    assert response.model_extra["umi"]["status"] == "gave_up"


def test_unknown_responses_and_refused_parameters_are_openai_errors(orch):
    client = sdk(orch)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_nosuchchat_0")
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="alpha-umi", input=QUERY, background=True)
    assert refused.value.param == "background"  # type: ignore[attr-defined]


def test_bad_input_is_a_400_naming_it_streamed_or_not(orch):
    for stream in (False, True):
        for body, param in (({"input": []}, "input"), ({"input": [{"role": "user", "content": 5}]}, "input[0].content"),
                            ({"input": "hi", "instructions": 5}, "instructions")):  # fmt: skip
            answer = orch.client.post("/v1/responses", json={"model": "alpha-umi", "stream": stream, **body})
            assert (answer.status_code, answer.json()["error"]["param"]) == (400, param), (stream, body)
