"""A chat's state and the pure rules of the agent loop: what to do next, the history the role
services read, and the ids and steps the loop makes. Nothing here does I/O.

``next_action`` is a function of the steps written so far, so a chat resumed by another process
continues exactly where the last written step left it:

    no step yet, or an observation      -> plan (or ``max_steps`` once max_steps planner turns were taken)
    planner "caller"                     -> call
    planner "conclusion"                 -> summarize
    caller of a server tool, no result   -> finish_call (the tool call was started: ``ChatLoop.finish_call``)

In single-model mode (``UMI_BACKBONE_URL``) "plan" asks the backbone, whose one answer becomes a
planner step plus a caller or summarizer step; the rules above are the same.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from orchestrator.models import ChatDoc, ChatError, ChatRequest, PendingToolCall, Step, Tool, chat_usage
from orchestrator.store import StoredChat
from umi.format.tools import model_names

Action = Literal["plan", "call", "summarize", "finish_call", "max_steps"]

RESULT_LOST = (
    "The result of this tool call was lost: the orchestrator stopped while the call was running, "
    "and the call was not executed again so that it does not run twice."
)


def tool_call_id(chat_id: str, index: int) -> str:
    """Deterministic: the same (chat, step) always has the same id, in every process."""
    return "call_" + hashlib.sha256(f"{chat_id}:{index}".encode()).hexdigest()[:24]


def idempotency_key(chat_id: str, index: int) -> str:
    """The ``Idempotency-Key`` header of the server tool call of step ``index``."""
    return f"{chat_id}:{index}"


def give_up_answer(thought: str) -> str | None:
    """On give-up the answer is the planner's stated reason (its thought), or None when empty."""
    return thought.strip() or None


def history_turn(step: Step) -> dict[str, str] | None:
    """The typed turn a step adds to the history the role services read (``umi.roleapi.Turn``),
    or None for a single-model caller step (its call is part of the planner's merged turn)."""
    if step.role == "observation":
        return {"role": "observation", "content": step.content or ""}
    if step.role == "summarizer":
        return {"role": "conclusion", "content": step.answer or ""}
    if step.turn is None:
        return None
    return {"role": step.role, "content": step.turn}


def observation_step(
    caller: Step, content: str, error: str | None = None, started_at: float | None = None, latency_ms: float = 0.0,
    index: int | None = None,
) -> Step:  # fmt: skip
    """The observation that answers a caller step (by default right after it)."""
    return Step(
        index=caller.index + 1 if index is None else index, role="observation", name=caller.name,
        tool_call_id=caller.tool_call_id, content=content, error=error,
        started_at=time.time() if started_at is None else started_at, latency_ms=latency_ms,
    )  # fmt: skip


@dataclass
class ChatState:
    """One chat as the loop advances it: its request, the steps written so far and its record."""

    chat_id: str
    request: ChatRequest
    steps: list[Step] = field(default_factory=list)
    status: str = "running"
    answer: str | None = None
    error: ChatError | None = None
    pending: list[PendingToolCall] = field(default_factory=list)
    models: dict[str, str] = field(default_factory=dict)
    created_at: float | None = None
    updated_at: float | None = None
    trace: str = ""
    """The chat's trace context (W3C traceparent, stored with the chat; "" without tracing)."""
    resumed: str | None = None
    """Why this run resumes a chat another run left (its span event says so); None for a new chat."""
    span: Any = field(default=None, repr=False, compare=False)
    """The run span ``orchestrator.tracing.begin_chat`` opened for the first run, until it starts."""

    def __post_init__(self) -> None:
        self.tools_json = json.dumps([t.role_dict() for t in self.request.tools], separators=(",", ":"))
        """The tools as role requests carry them, serialised once per chat."""
        names = model_names([t.function.name for t in self.request.tools])
        self.tools_by_model_name: dict[str, Tool] = dict(zip(names, self.request.tools, strict=True))
        """The name the caller writes -> the tool (the names the role services give the tools)."""
        self.tools_by_name = {t.function.name: t for t in self.request.tools}
        sampling = self.request.sampling
        self.sampling_json: dict[str, str | None] = {
            role: None if sampling is None else sampling.for_role(role) for role in ("planner", "caller", "summarizer", "backbone")
        }
        """role -> the ``sampling`` object of its requests as JSON (None: the role's defaults), serialised once per chat."""
        self.history: list[dict[str, str]] = [{"role": "user", "content": self.request.query}]
        for step in self.steps:
            self._add_turn(step)

    def _add_turn(self, step: Step) -> None:
        turn = history_turn(step)
        if turn is not None:
            self.history.append(turn)

    def add(self, steps: list[Step]) -> None:
        self.steps.extend(steps)
        for step in steps:
            self._add_turn(step)

    @classmethod
    def from_stored(cls, chat: StoredChat) -> "ChatState":
        """The state of a stored chat whose steps were all loaded."""
        return cls(
            chat_id=chat.chat_id, request=chat.request, steps=list(chat.steps), status=chat.status,
            answer=chat.answer, error=chat.error, pending=list(chat.pending), models=dict(chat.models),
            created_at=chat.created_at, updated_at=chat.updated_at, trace=chat.trace,
        )  # fmt: skip

    @property
    def next_index(self) -> int:
        return len(self.steps)

    def planner_turns(self) -> int:
        return sum(1 for s in self.steps if s.role == "planner")

    def doc(self) -> ChatDoc:
        return ChatDoc(
            chat_id=self.chat_id, status=self.status, answer=self.answer, steps=list(self.steps),
            pending_tool_calls=self.pending, models=dict(self.models), usage=chat_usage(self.steps), error=self.error,
            metadata=self.request.metadata, created_at=self.created_at, updated_at=self.updated_at,
        )  # fmt: skip


def next_action(state: ChatState) -> Action:
    """What the loop does next (the table in this module's docstring).

    Raises ValueError for a running chat whose last step cannot be followed (an observation-less
    summarizer step, which only a settled chat has)."""
    last = state.steps[-1] if state.steps else None
    if last is None or last.role == "observation":
        return "max_steps" if state.planner_turns() >= state.request.max_steps else "plan"
    if last.role == "planner" and last.next == "conclusion":
        return "summarize"
    if last.role == "planner":
        return "call"
    if last.role == "caller":
        return "finish_call"
    raise ValueError(f"chat {state.chat_id} is running but its last step is a {last.role} step")
