"""The OpenAI Agents SDK (``openai-agents``) runs an Agent with a function tool against the
orchestrator, through the Responses API and through Chat Completions (scripted role services pick
the tool; the Agents SDK runs it and sends its result back)."""

from __future__ import annotations

import pytest
from agents import Agent, OpenAIChatCompletionsModel, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI

from tests.support.orchestrator_fakes import call

pytestmark = pytest.mark.redis
calls: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    calls.append(city)
    return f"sunny in {city}"


@pytest.mark.parametrize("api", [OpenAIResponsesModel, OpenAIChatCompletionsModel], ids=["responses", "chat_completions"])
def test_an_agents_sdk_agent_runs_its_function_tool_through_the_orchestrator(orch, fake_roles, api):
    set_tracing_disabled(True)
    calls.clear()
    fake_roles.caller = lambda req: call("get_weather", {"city": "Paris"})
    client = AsyncOpenAI(base_url=orch.url + "/v1", api_key="unused", max_retries=0)
    agent = Agent(name="weather", instructions="Answer with the tools.", tools=[get_weather],
                  model=api(model="alpha-umi", openai_client=client))  # fmt: skip
    result = Runner.run_sync(agent, "What is the weather in Paris?")
    assert calls == ["Paris"]
    assert result.final_output == "answer: sunny in Paris"
