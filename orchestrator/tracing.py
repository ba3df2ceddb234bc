"""The orchestrator's spans (``umi.tracing``): one trace per chat, one span per step.

    invoke_agent umi                    a run of the chat (root of the chat's trace on its first run)
      chat planner|summarizer|backbone  a role call: the role service continues it (traceparent)
      chat caller                       the caller's call, and then
        execute_tool {tool}             the server tool call (the tool receives the traceparent)
      execute_tool {tool}               a started tool call a resumed run finishes

A chat's trace context (the ``traceparent`` of its first run's span) is stored with the chat
(``NewChat.trace``). A chat resumed by another process after a crash, or resumed with a client's
tool outputs, runs in a new ``invoke_agent`` span of the same trace, a child of the first one,
with a ``resumed`` event whose ``reason`` says why. Attributes follow the GenAI semantic
conventions; step spans also carry ``umi.chat.id`` and ``umi.step.index``, the run span
``umi.chat.status`` once the run ends. A role-service error marks its step span failed with
``error.type`` = ``role_service``; a tool error marks the tool span with the observation's
error kind (``http_error``, ``timeout``, ...).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind

from orchestrator.models import Step, Tool
from orchestrator.state import ChatState
from umi import tracing as t

AGENT_NAME = "umi"
"""``gen_ai.agent.name`` of a chat's run span."""

_ROLE_OF_ACTION = {"plan": "planner", "call": "caller", "summarize": "summarizer"}


def begin_chat(state: ChatState) -> None:
    """Open the first run span of a new chat: the root of its own trace (linked to the request's
    span, if any: a client's traceparent does not merge chats into one trace). Sets ``state.trace`` (stored
    with the chat; "" while tracing is off) and ``state.span`` (taken by the first run)."""
    request = trace.get_current_span().get_span_context()  # POST /chat's span, when FastAPI traces requests
    span = t.tracer().start_span(
        f"invoke_agent {AGENT_NAME}", context=Context(), kind=SpanKind.INTERNAL,
        attributes={t.OPERATION: "invoke_agent", t.AGENT: AGENT_NAME, t.CONVERSATION: state.chat_id, t.CHAT_ID: state.chat_id},
        links=[Link(request)] if request.is_valid else None,
    )  # fmt: skip
    state.trace = t.traceparent(span)
    state.span = span


def run_span(state: ChatState) -> Span:
    """The span of this run of the chat: the one ``begin_chat`` opened, or (resumed: the chat's
    stored trace context, ``state.resumed`` the reason) a new one in the chat's trace."""
    if state.span is not None:
        span, state.span = state.span, None
        return span
    span = t.tracer().start_span(
        f"invoke_agent {AGENT_NAME}", context=t.context_of(state.trace),
        attributes={t.OPERATION: "invoke_agent", t.AGENT: AGENT_NAME, t.CONVERSATION: state.chat_id, t.CHAT_ID: state.chat_id},
    )  # fmt: skip
    if span.is_recording():
        span.add_event("resumed", {"reason": state.resumed or "unknown", "next_step": state.next_index})
    return span


@contextmanager
def run(state: ChatState) -> Iterator[Span]:
    """The run span made current for the duration of the run; its status attribute set at the end."""
    span = run_span(state)
    with trace.use_span(span, end_on_exit=True):
        try:
            yield span
        finally:
            t.set_attributes(span, {t.CHAT_STATUS: state.status})


@contextmanager
def step(state: ChatState, action: str, single_model: bool) -> Iterator[Span]:
    """The span of one action of the loop (``next_action``): a role call, or a resumed tool call
    (``finish_call``: its ``execute_tool`` span is the whole step). The attributes of the steps
    the action wrote are set when it ends."""
    role = "backbone" if single_model and action == "plan" else _ROLE_OF_ACTION.get(action)
    if role is None:
        yield trace.get_current_span()
        return
    first = state.next_index
    attributes = {t.OPERATION: "chat", t.AGENT: role, t.REQUEST_MODEL: role, t.CHAT_ID: state.chat_id, t.STEP_INDEX: first}
    with t.tracer().start_as_current_span(f"chat {role}", kind=SpanKind.CLIENT, attributes=attributes) as span:
        try:
            yield span
        finally:
            if span.is_recording():
                _describe(span, state.steps[first:])


def _describe(span: Span, steps: list[Step]) -> None:
    for s in steps:
        if s.role == "observation":
            continue
        t.set_attributes(span, {t.RESPONSE_MODEL: s.model_version})
        if s.usage is not None:
            span.set_attributes({t.INPUT_TOKENS: s.usage.prompt_tokens, t.OUTPUT_TOKENS: s.usage.completion_tokens})
        if s.role == "caller":
            t.set_attributes(span, {t.TOOL_NAME: s.name, t.TOOL_CALL_ID: s.tool_call_id})
        if s.role == "planner" and s.next is not None:
            span.set_attribute("umi.planner.next", s.next)


@contextmanager
def tool_call(state: ChatState, tool: Tool, caller: Step) -> Iterator[Span]:
    """The ``execute_tool`` span of a server tool call (current while the request goes out)."""
    attributes = {
        t.OPERATION: "execute_tool", t.TOOL_NAME: tool.function.name, t.TOOL_CALL_ID: caller.tool_call_id,
        t.TOOL_TYPE: "function", t.CHAT_ID: state.chat_id, t.STEP_INDEX: caller.index + 1,
    }  # fmt: skip
    with t.tracer().start_as_current_span(f"execute_tool {tool.function.name}", kind=SpanKind.CLIENT, attributes=attributes) as span:  # fmt: skip
        yield span
