"""The orchestrator's API bodies (OpenAPI at /docs). Clients depend on these names.

Request bodies take the documented JSON types strictly: ``"stream": "yes"``, ``"max_steps": "3"``
or ``"idempotent": 1`` is a 422 naming the field, never coerced. Chat ids are 1 to 128
characters of ``A-Z a-z 0-9 _ -``, starting with a letter or digit (``CHAT_ID_PATTERN``): an id
can never name another chat's keys or sub-keys in any store. Tool endpoints must be sendable as
given: an absolute http(s) URL, header names that are HTTP tokens and header values without
control characters (CR, LF, NUL, ...); anything else is a 422 naming the field
(``tools[0].endpoint.headers.X-Trace``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from typing import Annotated

import yarl
from pydantic import BaseModel, ConfigDict, Discriminator, Field, StrictBool, StrictFloat, StrictInt, StrictStr, Tag, field_validator

from umi.format.parsers import Decision
from umi.format.tools import OpenAITool, model_name
from umi.roleapi import SEED_MAX, SEED_MIN, PromptFit

ChatStatus = Literal["running", "completed", "gave_up", "requires_action", "max_steps", "failed"]
SETTLED: frozenset[str] = frozenset({"completed", "gave_up", "requires_action", "max_steps", "failed"})
"""Every status but ``running``: the chat does not advance on its own."""

StepRole = Literal["planner", "caller", "observation", "summarizer"]
CHAT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"
"""A chat id: 1-128 characters of letters, digits, ``_`` and ``-``, the first a letter or digit."""
ChatId = Annotated[StrictStr, Field(pattern=CHAT_ID_PATTERN, description="1-128 of A-Z a-z 0-9 _ -, first a letter or digit")]

HEADER_NAME_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$"
"""An HTTP header name: a token (RFC 9110, section 5.1)."""
HEADER_VALUE_PATTERN = r"^[^\x00-\x08\x0a-\x1f\x7f]{0,8192}$"
"""An HTTP header value: no control character but tab (RFC 9110, section 5.5: CR, LF and NUL are never valid)."""
HeaderName = Annotated[StrictStr, Field(pattern=HEADER_NAME_PATTERN)]
HeaderValue = Annotated[StrictStr, Field(pattern=HEADER_VALUE_PATTERN)]


class Endpoint(BaseModel):
    """Where the orchestrator executes a tool. A tool without one is executed by the client."""

    model_config = ConfigDict(extra="forbid")
    url: StrictStr = Field(min_length=1, max_length=2048, description="an absolute http or https URL")
    method: Literal["POST", "GET"] = "POST"
    headers: dict[HeaderName, HeaderValue] = Field(
        default_factory=dict, description="sent with each call: names are HTTP tokens, values have no control characters"
    )
    timeout_s: StrictFloat | None = Field(default=None, gt=0, le=600)
    idempotent: StrictBool = Field(
        default=False,
        description="safe to run again: a call interrupted by a restart is re-executed instead of reported lost",
    )
    protocol: Literal["http", "mcp"] = Field(
        default="http", description="http: the arguments as JSON (or a query); mcp: tools/call on the MCP server at url"
    )

    @field_validator("url")
    @classmethod
    def _absolute_http_url(cls, url: str) -> str:
        try:
            parsed = yarl.URL(url)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not a URL: {exc}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError("must be an absolute http or https URL (http://host[:port]/path)")
        return url


class Tool(OpenAITool):
    """An OpenAI function tool plus an optional endpoint. Other keys are refused: a misspelt
    ``endpoint`` would otherwise turn a tool the orchestrator runs into one the client must run."""

    model_config = ConfigDict(extra="forbid")
    endpoint: Endpoint | None = None

    def role_dict(self) -> dict[str, Any]:
        """The tool as the role services receive it: the OpenAI tool without the endpoint."""
        return {"type": self.type, "function": self.function.model_dump(exclude_none=True)}

    @property
    def model_name(self) -> str:
        """The name the role models see alone (``umi.format.tools.model_name``: the last 64
        characters, stripped); among a chat's tools ``ChatState`` makes the names distinct."""
        return model_name(self.function.name)


class McpServer(BaseModel):
    """A tool source: the tools of an MCP server over Streamable HTTP (OpenAI's Responses API
    shape), replaced by those tools when the chat is created (``orchestrator.mcp``)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["mcp"]
    server_label: StrictStr = Field(min_length=1, max_length=128)
    server_url: StrictStr = Field(min_length=1, max_length=2048, description="an absolute http or https URL")
    allowed_tools: list[StrictStr] | None = Field(default=None, description="only these tools (default: all)")
    headers: dict[HeaderName, HeaderValue] = Field(default_factory=dict)
    require_approval: Literal["never"] | None = Field(default=None, description="only never: calls are not approved one by one")

    _absolute_http_url = field_validator("server_url")(Endpoint._absolute_http_url.__func__)  # type: ignore[attr-defined]


def _tool_kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return "mcp_server" if kind == "mcp" else "function_tool"


ToolSource = Annotated[Annotated[Tool, Tag("function_tool")] | Annotated[McpServer, Tag("mcp_server")], Discriminator(_tool_kind)]
"""A function tool, or an MCP server whose tools join the chat."""


class ChatSampling(BaseModel):
    """Per-chat sampling for the role services (``umi.roleapi.SamplingParams``); None keeps the
    role's default (the reference's: temperature 0.5). ``temperature``, ``top_p`` and ``seed`` go
    to every role request of the chat; ``max_answer_tokens`` bounds the summarizer's answer only
    (the planner and the caller keep their own budgets, which the format needs)."""

    model_config = ConfigDict(extra="forbid")
    temperature: StrictFloat | None = Field(default=None, ge=0.0, le=5.0)
    top_p: StrictFloat | None = Field(default=None, gt=0.0, le=1.0)
    seed: StrictInt | None = Field(default=None, ge=SEED_MIN, le=SEED_MAX, description="an int64 (vLLM's range)")
    max_answer_tokens: StrictInt | None = Field(default=None, ge=1, le=32768, description="the summarizer's max_tokens")

    def for_role(self, role: str) -> str | None:
        """The ``sampling`` object of one role request as JSON, or None when nothing is set."""
        values = {"temperature": self.temperature, "top_p": self.top_p, "seed": self.seed}
        if role == "summarizer":
            values["max_tokens"] = self.max_answer_tokens
        values = {k: v for k, v in values.items() if v is not None}
        return json.dumps(values, separators=(",", ":")) if values else None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: StrictStr = Field(min_length=1)
    tools: list[ToolSource] = Field(
        default_factory=list, description="function tools and MCP servers (a stored chat holds the MCP servers' tools instead)"
    )
    max_steps: StrictInt = Field(default=10, ge=1, description="the most planner turns the chat may take")
    stream: StrictBool = False
    chat_id: ChatId | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    sampling: ChatSampling | None = Field(default=None, description="sampling for the role services (not part of the fingerprint)")

    def fingerprint(self) -> str:
        """What makes two creates with the same chat_id the same request."""
        body = {"query": self.query, "tools": [t.model_dump(mode="json") for t in self.tools], "max_steps": self.max_steps}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Step(BaseModel):
    """One step of a chat. Fields that do not belong to the step's role are null."""

    index: int
    role: StepRole
    # planner
    thought: str | None = None
    next: Decision | None = None
    # caller (and observation: which call it answers)
    name: str | None = None
    arguments: dict[str, Any] | str | None = Field(
        default=None, description="the parsed JSON object, or the raw text when it is not one"
    )
    tool_call_id: str | None = None
    # observation
    content: str | None = None
    error: str | None = Field(default=None, description="observation: the kind of error it reports, if any")
    # summarizer
    answer: str | None = None
    # every step
    turn: str | None = Field(default=None, description="the turn as the role models see it in the history")
    fit: PromptFit | None = Field(
        default=None, description="role steps: how the prompt was made to fit the context (null when it fit whole)"
    )
    model_version: str | None = None
    usage: Usage | None = None
    started_at: float = Field(description="seconds since the epoch")
    latency_ms: float


class PendingToolCall(BaseModel):
    tool_call_id: str
    name: str
    arguments: dict[str, Any]


class ChatUsage(Usage):
    role_calls: int = Field(default=0, description="role-service calls that produced a step")
    observations: int = 0


class ChatError(BaseModel):
    type: str
    message: str
    role: str | None = None
    status_code: int | None = None


class ChatDoc(BaseModel):
    """The response of POST /chat and GET /chat/{chat_id}, and the data of the ``done`` event."""

    chat_id: str
    status: ChatStatus
    answer: str | None = None
    steps: list[Step] = Field(default_factory=list)
    pending_tool_calls: list[PendingToolCall] = Field(default_factory=list)
    models: dict[str, str] = Field(default_factory=dict, description="role -> model version")
    usage: ChatUsage = Field(default_factory=ChatUsage)
    error: ChatError | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: float | None = None
    updated_at: float | None = None


class ToolOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tool_call_id: StrictStr = Field(min_length=1)
    output: StrictStr


class ToolOutputsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outputs: list[ToolOutput] = Field(min_length=1)
    stream: StrictBool = False


def chat_usage(steps: list[Step]) -> ChatUsage:
    usage = ChatUsage()
    for step in steps:
        if step.usage is not None:
            usage.prompt_tokens += step.usage.prompt_tokens
            usage.completion_tokens += step.usage.completion_tokens
            usage.role_calls += 1
        if step.role == "observation":
            usage.observations += 1
    return usage
