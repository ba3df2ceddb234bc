"""The role API: request and response bodies of the role services.

Shared by the role services (which serve it) and the orchestrator and evaluation (which call it).

    planner     POST /v1/plan       PlanRequest      -> PlanResponse
    caller      POST /v1/call       CallRequest      -> CallResponse
    summarizer  POST /v1/summarize  SummarizeRequest -> SummarizeResponse
    any role    POST /v1/render     (the role's request) -> RenderResponse   (no generation)

With ``"stream": true`` a generating endpoint answers ``text/event-stream``: ``token`` events
``{"text": "<delta>"}`` as they are generated, then one ``result`` event whose data is the
whole response body, or one ``error`` event ``{"error": {...}}``.
Errors are JSON ``{"error": {"type": str, "message": str, "field": str | null}}``
(``umi.http_errors.ErrorBody``); an engine that is not ready answers 503 with ``Retry-After``.
The orchestrator sends the chat's id in ``X-Umi-Chat-Id`` (``CHAT_ID_HEADER``) with every role
request: a load balancer in front of several replicas hashes on it, so that every step of a chat
reaches the same replica and its prefix cache (deploy/haproxy/haproxy.cfg, docs/scaling.md).
Every response (and ``/v1/render``) carries ``fit``: a ``PromptFit`` when the prompt rendered from
the request had to be made to fit the context, null when it fit whole (an optional field: old
clients ignore it).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from umi.format.parsers import Decision
from umi.format.tools import OpenAITool, ToolBenchAPI, ToolDoc, to_tooldocs
from umi.format.turns import Turn

ToolSpec = OpenAITool | ToolDoc | ToolBenchAPI
# vLLM takes a seed that fits in int64 (vllm/entrypoints/openai/protocol.py: torch.iinfo(torch.long)).
SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1
CHAT_ID_HEADER = "X-Umi-Chat-Id"


class SamplingParams(BaseModel):
    """Per-request overrides of the role's default sampling (reference: 0.5, 512 tokens)."""

    model_config = ConfigDict(extra="forbid")
    temperature: float | None = Field(default=None, ge=0.0, le=5.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1, le=32768)
    seed: int | None = Field(default=None, ge=SEED_MIN, le=SEED_MAX, description="an int64: vLLM's range")


class _RoleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    history: list[Turn] = Field(description="the conversation so far, oldest first")
    stream: bool = Field(default=False, description="answer with server-sent events")
    sampling: SamplingParams | None = None


class _ToolsRequest(_RoleRequest):
    tools: list[ToolSpec] = Field(description="OpenAI function tools, ToolDocs or ToolBench API docs")
    _tooldocs: list[ToolDoc] | None = PrivateAttr(default=None)

    def tooldocs(self) -> list[ToolDoc]:
        """The tools as ToolDocs, converted once per request (rendering and parsing both need them)."""
        if self._tooldocs is None:
            self._tooldocs = to_tooldocs(self.tools)
        return self._tooldocs


class PlanRequest(_ToolsRequest):
    pass


class CallRequest(_ToolsRequest):
    thought: str = Field(description="the planner turn before this call, verbatim (ends in ' Next: caller.')")


class SummarizeRequest(_RoleRequest):
    pass


class BackboneRequest(_ToolsRequest):
    """The single-model baseline: one model decides, calls and concludes (POST /v1/step)."""


FitAction = Literal["shorten_observations", "drop_steps", "select_tools", "cut_history", "cut_left"]
ContextPolicy = Literal["fit", "reference"]


class PromptFit(BaseModel):
    """How a prompt that did not fit the context was made to fit (``umi.service.prompt_fit``).

    A response carries one only when the prompt rendered from the request was over the budget
    (``max_model_len`` - max new tokens - margin); token counts include the BOS token.
    """

    policy: ContextPolicy = Field(description="fit: the documented policy; reference: the plain left cut")
    actions: list[FitAction] = Field(description="what was done, in the order it was done")
    budget_tokens: int = Field(description="the most tokens the prompt may have")
    tokens_before: int = Field(description="the prompt rendered whole")
    tokens_after: int = Field(description="the prompt sent")
    observations_shortened: int = Field(default=0, description="older observations cut to their first characters")
    steps_dropped: int = Field(default=0, description="history turns left out (the oldest, never the user's query)")
    tools_total: int = 0
    tools_kept: int = 0
    kept_tools: list[str] | None = Field(default=None, description="the names of the tools kept, when some were left out")
    chars_cut: int = Field(default=0, description="characters cut from the left (of the history, or of the whole prompt)")


class ModelInfo(BaseModel):
    name: str
    version: str


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _RoleResponse(BaseModel):
    text: str = Field(description="the generated text, as the model wrote it")
    model: ModelInfo
    usage: Usage
    latency_ms: float
    fit: PromptFit | None = Field(default=None, description="how the prompt was made to fit the context; null when it fit whole")


class PlanResponse(_RoleResponse):
    thought: str
    next: Decision
    turn: str = Field(description="the planner turn for the history (cut after 'Next: ...')")


class CallResponse(_RoleResponse):
    name: str
    arguments: dict | None
    arguments_raw: str
    valid: bool
    hallucinated: bool
    error: str | None = None
    turn: str = Field(description="the caller turn for the history")


class SummarizeResponse(_RoleResponse):
    answer: str


class BackboneResponse(_RoleResponse):
    thought: str
    next: Decision
    call: CallResponse | None = None
    answer: str | None = None


class RenderResponse(BaseModel):
    prompt: str
    prompt_tokens: int | None = None
    truncated: bool = Field(default=False, description="the prompt is not the whole rendering of the request")
    fit: PromptFit | None = Field(default=None, description="how the prompt was made to fit the context; null when it fit whole")


RoleName = Literal["planner", "caller", "summarizer", "backbone"]
