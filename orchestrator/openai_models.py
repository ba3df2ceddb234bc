"""The bodies of the OpenAI-compatible API (``orchestrator.openai_api``): the request fields we
read, typed; the rest of OpenAI's request is accepted as extra keys and sorted by
``REFUSED`` / ignored (docs/openai-api.md lists each). Source of the shapes: the OpenAI API
reference (Chat Completions "Create chat completion", "The chat completion object", "The chat
completion chunk object"; Responses "Create a model response", "The response object",
"Streaming events") as the official ``openai`` Python SDK types them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Extra = ConfigDict(extra="allow", strict=True)
"""Unknown parameters are kept (and ignored or refused by name); known ones take their JSON
types strictly, as OpenAI's API does (`"stream": "yes"` is a 400 naming `stream`)."""


class FunctionCall(BaseModel):
    model_config = Extra
    name: str
    arguments: str = Field(description="the arguments as a JSON text")


class MessageToolCall(BaseModel):
    model_config = Extra
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(BaseModel):
    """One message of ``messages``; ``content`` is a text or a list of content parts (text only)."""

    model_config = Extra
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[MessageToolCall] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None


class StreamOptions(BaseModel):
    model_config = Extra
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = Extra
    model: str
    messages: list[Message] = Field(min_length=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_completion_tokens: int | None = None
    max_tokens: int | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    n: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None


class ResponsesRequest(BaseModel):
    model_config = Extra
    model: str
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    previous_response_id: str | None = None
    store: bool = True
    stream: bool = False
    metadata: dict[str, str] | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    user: str | None = None


REFUSED_CHAT: dict[str, str] = {
    "audio": "audio output is not produced: the agent's models write text",
    "prediction": "predicted outputs do not apply to an agent's answer",
    "functions": "the legacy functions parameter is not supported: use tools",
    "function_call": "the legacy function_call parameter is not supported: use tool_choice",
    "web_search_options": "no web search: give tools instead",
    "logit_bias": "the role services do not take logit biases",
}
"""Chat-completions parameters refused whenever present (400 naming the param), and why."""

REFUSED_RESPONSES: dict[str, str] = {
    "conversation": "conversations objects are not supported: use previous_response_id",
    "background": "background responses are not supported",
    "prompt": "prompt templates are not supported",
}
"""Responses parameters refused whenever present (400 naming the param), and why."""
