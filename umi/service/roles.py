"""What a role service is made of: the part that differs between planner, caller, summarizer and
backbone (``services/<role>/``) is one :class:`RoleSpec`; everything else is shared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from umi.format import ToolDoc, Turn
from umi.format.templates import PromptRole
from umi.roleapi import CallRequest, ModelInfo, PromptFit, Usage

# The conversation a warm-up generation renders: the service's own after an engine starts
# (umi.service.generation) and a fleet swap's warm-up request (umi.fleet_swap).
WARM_UP_TOOLS = [ToolDoc(Name="get_weather", function="Weather by city", input={"city": "string, City name"})]
WARM_UP_HISTORY = [
    Turn(role="user", content="What is the weather in Oslo?"),
    Turn(role="planner", content="I should look it up.\n Next: caller."),
]


@dataclass(frozen=True)
class SamplingDefaults:
    """A role's generation defaults; the reference: temperature 0.5, 512 new tokens, stop at ``</s>``."""

    temperature: float = 0.5
    max_tokens: int = 512
    stop: tuple[str, ...] = ("</s>",)


REFERENCE_SAMPLING = SamplingDefaults()


@dataclass(frozen=True)
class ResponseMeta:
    """The fields every role response carries besides what the parser found."""

    text: str
    model: ModelInfo
    usage: Usage
    latency_ms: float
    fit: PromptFit | None = None

    def fields(self) -> dict[str, Any]:
        return {"text": self.text, "model": self.model, "usage": self.usage, "latency_ms": self.latency_ms, "fit": self.fit}


# (generated text, the request, the common fields) -> the role's response body
ResponseBuilder = Callable[[str, Any, ResponseMeta], BaseModel]


@dataclass(frozen=True)
class RoleSpec:
    role: PromptRole  # which template and cue
    path: str  # the generating endpoint, e.g. /v1/plan
    request_model: type[BaseModel]
    response_model: type[BaseModel]
    build_response: ResponseBuilder  # the parser, applied
    sampling: SamplingDefaults = REFERENCE_SAMPLING
    summary: str = ""


def prompt_inputs(request: BaseModel) -> tuple[list[ToolDoc], str]:
    """The tools and the thought a request brings to the template (none for the summarizer)."""
    tooldocs = getattr(request, "tooldocs", None)
    tools = tooldocs() if callable(tooldocs) else []
    thought = request.thought if isinstance(request, CallRequest) else ""
    return tools, thought
