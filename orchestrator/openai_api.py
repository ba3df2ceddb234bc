"""The agent behind OpenAI's API: ``GET /v1/models`` and ``POST /v1/chat/completions`` (JSON, or
SSE with ``"stream": true``) on the chats of ``POST /chat`` (docs/openai-api.md has the mapping).

A completion is one stretch of a chat: from its start, or from the client's tool results, to the
next point where the chat waits or ends. The agent loop runs server-side; what it settles on is
the answer:

    requires_action  assistant ``tool_calls`` (one call: the agent calls one tool per step),
                     ``finish_reason: "tool_calls"``
    completed        the summarizer's answer as ``content``, ``finish_reason: "stop"``
    gave_up          the planner's reason as ``content``, ``finish_reason: "stop"``
    max_steps        no content, ``finish_reason: "length"``
    failed           an error (502 ``server_error``; an ``error`` chunk when streamed)

The planner's thoughts of the stretch are ``reasoning_content`` (the field of vLLM's reasoning
parsers and of DeepSeek's API), joined by a blank line. Each completion carries the extension
``umi: {"chat_id", "status"}``. ``usage`` sums the role calls of the stretch.

Tool-call ids: a call this orchestrator issues has the id ``<tool_call_id>_<chat_id>`` (the
chat's own ``call_`` + 24 hex id, then the chat). A conversation whose last message answers
such an id resumes that chat (``POST /chat/{id}/tool_outputs``): its thoughts come from the
store, byte-exact, whatever the client kept of ``reasoning_content``; the messages before the
first issued call must render to the chat's query and each issued call must be the stored one
(409 ``conflict`` otherwise). Any other conversation starts a new chat whose query is rendered
from the messages alone (``render_query``).

Errors on ``/v1/*`` are OpenAI's body ``{"error": {"message", "type", "param", "code"}}``
(``umi.http_errors.openai_error_response``); a parameter the agent cannot honour is a 400 naming it.
"""

from __future__ import annotations

import json
import re
import time
from functools import partial
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import ValidationError

from orchestrator.chats import Principal
from orchestrator.models import ChatDoc, ChatRequest, ChatSampling, McpServer, Step, Tool, ToolOutput, ToolOutputsRequest
from orchestrator.openai_models import REFUSED_CHAT, ChatCompletionRequest, Message
from orchestrator.settings import Settings
from orchestrator.store import StoredChat
from umi.http_errors import OPENAI_ERROR_RESPONSES, HttpError, field_path

if TYPE_CHECKING:
    from orchestrator.api import Orchestrator
    from orchestrator.events import Out, Subscription

ISSUED_ID = re.compile(r"^(call_[0-9a-f]{24})_([A-Za-z0-9][A-Za-z0-9_-]{0,127})$")
"""A tool-call id this orchestrator issued: the chat's tool_call_id, ``_``, the chat id."""
_TEXT_PARTS = ("text", "input_text", "output_text")
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
FINISH = {"requires_action": "tool_calls", "completed": "stop", "gave_up": "stop", "max_steps": "length"}
"""The chat's status -> ``finish_reason``."""


def issued_id(chat_id: str, tool_call_id: str) -> str:
    """The id a client sees for the chat's tool call ``tool_call_id`` (``ISSUED_ID``)."""
    return f"{tool_call_id}_{chat_id}"


def bad(message: str, param: str | None, status: int = 400, code: str = "invalid_request") -> HttpError:
    return HttpError(status, code, message, param)


def text_of(content: str | list[dict[str, Any]] | None, param: str) -> str:
    """A message's text: the string, or its text parts joined (400 naming ``param`` for other parts)."""
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for i, part in enumerate(content):
        if part.get("type") not in _TEXT_PARTS or not isinstance(part.get("text"), str):
            raise bad(f"content part of type {part.get('type')!r} is not supported: the agent reads text", f"{param}[{i}]")
        texts.append(part["text"])
    return "".join(texts)


def render_query(messages: list[Message], first: int = 0) -> str:
    """The chat's query from OpenAI messages alone (``first``: the index of ``messages[0]``).

    System and developer messages are paragraphs before the rest. One user message is the query
    as it is (so a one-message conversation is byte for byte ``POST /chat`` with that query);
    any longer conversation is a transcript, one paragraph a message: ``User: ...``,
    ``Assistant: ...``, ``Assistant called NAME with ARGS``, ``Tool NAME answered: ...``.
    Raises HttpError 400 without a user message."""
    system = [text_of(m.content, f"messages[{first + i}].content") for i, m in enumerate(messages) if m.role in ("system", "developer")]
    rest = [(first + i, m) for i, m in enumerate(messages) if m.role not in ("system", "developer")]
    if not any(m.role == "user" for _, m in rest):
        raise bad("the conversation has no user message", "messages")
    if len(rest) == 1:
        return "\n\n".join([*system, text_of(rest[0][1].content, f"messages[{rest[0][0]}].content")])
    names: dict[str, str] = {}
    lines = list(system)
    for i, m in rest:
        text = text_of(m.content, f"messages[{i}].content")
        if m.role == "user":
            lines.append(f"User: {text}")
        elif m.role == "assistant":
            if text:
                lines.append(f"Assistant: {text}")
            for call in m.tool_calls or []:
                names[call.id] = call.function.name
                lines.append(f"Assistant called {call.function.name} with {call.function.arguments}")
        else:
            lines.append(f"Tool {names.get(m.tool_call_id or '', m.name or 'tool')} answered: {text}")
    return "\n\n".join(lines)


def function_tools(
    tools: list[dict[str, Any]] | None, tool_choice: str | dict[str, Any] | None, flat: bool
) -> list[Tool | McpServer]:
    """OpenAI function tools as the chat's client tools, narrowed by ``tool_choice``; MCP tool
    sources (``{"type": "mcp", ...}``, ``orchestrator.models.McpServer``) as they are.

    ``flat``: the Responses API's shape (``{"type": "function", "name", "parameters", ...}``)
    instead of chat completions' (``{"type": "function", "function": {...}}``). ``tool_choice``
    ``"none"`` offers no tool; a named function only that one; ``"required"`` is refused (the
    planner decides whether a step calls a tool)."""
    out: list[Tool | McpServer] = []
    for i, raw in enumerate(tools or []):
        if raw.get("type") == "mcp":
            try:
                out.append(McpServer.model_validate(raw))
            except ValidationError as exc:
                param = field_path(("tools", i, *exc.errors()[0]["loc"]))
                raise bad(f"{param}: {exc.errors()[0]['msg']}", param) from None
            continue
        if raw.get("type") != "function":
            raise bad(f"tool type {raw.get('type')!r} is not supported: give function tools", f"tools[{i}].type")
        spec = {k: v for k, v in raw.items() if k != "type"} if flat else raw.get("function")
        try:
            out.append(Tool.model_validate({"type": "function", "function": spec}))
        except ValidationError as exc:
            first = exc.errors()[0]  # its loc starts at ("function", ...): the flat shape has no "function" key
            param = field_path(("tools", i, *(first["loc"][1:] if flat else first["loc"])))
            raise bad(f"{param}: {first['msg']}", param) from None
    if tool_choice is None or tool_choice == "auto":
        return out
    if tool_choice == "none":
        return []
    if tool_choice == "required":
        raise bad("tool_choice 'required' cannot be honoured: the agent's planner decides whether a step calls a tool", "tool_choice")
    name = tool_choice.get("name") or (tool_choice.get("function") or {}).get("name") if isinstance(tool_choice, dict) else None
    chosen = [t for t in out if isinstance(t, Tool) and t.function.name == name]
    if not chosen:
        raise bad(f"tool_choice names no given function tool: {tool_choice!r}", "tool_choice")
    return chosen


def refuse_unsupported(body: ChatCompletionRequest) -> None:
    """400 naming the first parameter the agent cannot honour (docs/openai-api.md)."""
    if body.n not in (None, 1):
        raise bad("n must be 1: the agent gives one answer", "n")
    if body.logprobs:
        raise bad("logprobs are not available: the answer is several models' work", "logprobs")
    if body.top_logprobs:
        raise bad("logprobs are not available: the answer is several models' work", "top_logprobs")
    extra = body.model_extra or {}
    modalities = extra.get("modalities")
    if modalities and set(modalities) - {"text"}:
        raise bad("only the text modality is produced", "modalities")
    response_format = extra.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type", "text") != "text":
        raise bad("structured outputs are not supported: the summarizer writes text", "response_format")
    for name, why in REFUSED_CHAT.items():
        if extra.get(name) is not None:
            raise bad(why, name)


def sampling_of(body: Any) -> ChatSampling | None:
    """The chat's sampling from a Chat Completions or Responses body: ``temperature``, ``top_p``
    and ``seed`` for every role; ``max_completion_tokens`` / ``max_tokens`` / ``max_output_tokens``
    bound the summarizer's answer. Out-of-range values are 400s naming the parameter."""
    limit = next((getattr(body, n, None) for n in ("max_completion_tokens", "max_tokens", "max_output_tokens")
                  if getattr(body, n, None) is not None), None)  # fmt: skip
    values = {"temperature": body.temperature, "top_p": body.top_p, "seed": getattr(body, "seed", None), "max_answer_tokens": limit}
    if all(v is None for v in values.values()):
        return None
    try:
        return ChatSampling(**values)
    except ValidationError as exc:
        field = str(exc.errors()[0]["loc"][0])
        param = {"max_answer_tokens": "max_completion_tokens"}.get(field, field)
        raise bad(f"{param}: {exc.errors()[0]['msg']}", param) from None


def usage_of(steps: list[Step]) -> dict[str, int]:
    prompt = sum(s.usage.prompt_tokens for s in steps if s.usage is not None)
    completion = sum(s.usage.completion_tokens for s in steps if s.usage is not None)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def thoughts_of(steps: list[Step]) -> str | None:
    thoughts = [s.thought for s in steps if s.role == "planner" and s.thought]
    return "\n\n".join(thoughts) if thoughts else None


def tool_calls_of(doc: ChatDoc) -> list[dict[str, Any]]:
    return [
        {"id": issued_id(doc.chat_id, p.tool_call_id), "type": "function",
         "function": {"name": p.name, "arguments": json.dumps(p.arguments)}}
        for p in doc.pending_tool_calls
    ]  # fmt: skip


def settled_or_error(doc: ChatDoc) -> None:
    """Raise the HttpError of a chat that did not settle on an answer (failed, or still running)."""
    if doc.status == "failed":
        message = doc.error.message if doc.error else "the chat failed"
        raise bad(f"the agent failed: {message}", None, 502, doc.error.type if doc.error else "failed")
    if doc.status == "running":
        raise bad(f"chat {doc.chat_id} is still running; it goes on, but this answer could not wait longer", None, 504, "timeout")


class Completion:
    """One completion under way: its chat, the first step index it covers and its names."""

    def __init__(self, chat_id: str, start: int, model: str):
        self.chat_id = chat_id
        self.start = start
        self.model = model
        self.id = f"chatcmpl-{chat_id}-{start}"
        self.created = int(time.time())

    def body(self, doc: ChatDoc) -> dict[str, Any]:
        settled_or_error(doc)
        steps = doc.steps[self.start :]
        calls = tool_calls_of(doc) if doc.status == "requires_action" else []
        message: dict[str, Any] = {
            "role": "assistant", "content": None if calls or doc.status == "max_steps" else (doc.answer or ""),
            "reasoning_content": thoughts_of(steps), "refusal": None,
        }  # fmt: skip
        if calls:
            message["tool_calls"] = calls
        return {
            "id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": FINISH[doc.status], "logprobs": None}],
            "usage": usage_of(steps), "umi": {"chat_id": doc.chat_id, "status": doc.status},
        }  # fmt: skip

    def chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        data = {
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra,
        }  # fmt: skip
        return sse_data(data)

    async def chunks(self, events: AsyncIterator[Out], include_usage: bool) -> AsyncIterator[bytes]:
        """The completion as ``chat.completion.chunk`` events, then ``data: [DONE]``.

        Reasoning comes one planner turn at a time (its thought, from the step); the answer
        as the summarizer's tokens; tool calls as the id and name, then the arguments."""
        yield self.chunk({"role": "assistant"})
        reasoned, content = False, ""
        async for out in events:
            if out.event == "keepalive":
                yield b": keepalive\n\n"
            elif out.event == "token" and out.data.get("role") == "summarizer" and out.data.get("step", 0) >= self.start:
                content += out.data["text"]
                yield self.chunk({"content": out.data["text"]})
            elif out.event == "step" and isinstance(out.data, Step) and out.data.role == "planner" and out.data.thought:
                yield self.chunk({"reasoning_content": ("\n\n" if reasoned else "") + out.data.thought})
                reasoned = True
            elif out.event == "error":
                yield sse_data({"error": {"message": "the chat is gone", "type": "server_error", "param": None, "code": "not_found"}})
                return
            elif out.event == "done":
                doc: ChatDoc = out.data
                try:
                    settled_or_error(doc)
                except HttpError as err:
                    yield sse_data({"error": {"message": err.message, "type": "server_error", "param": None, "code": err.type}})
                    return
                if doc.status == "requires_action":
                    for i, call in enumerate(tool_calls_of(doc)):
                        head = {"index": i, "id": call["id"], "type": "function", "function": {"name": call["function"]["name"], "arguments": ""}}
                        yield self.chunk({"tool_calls": [head]})
                        yield self.chunk({"tool_calls": [{"index": i, "function": {"arguments": call["function"]["arguments"]}}]})
                elif doc.status != "max_steps" and doc.answer and doc.answer != content:
                    yield self.chunk({"content": doc.answer[len(content) :] if doc.answer.startswith(content) else doc.answer})
                yield self.chunk({}, FINISH[doc.status], umi={"chat_id": doc.chat_id, "status": doc.status})
                if include_usage:
                    data = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                            "choices": [], "usage": usage_of(doc.steps[self.start :])}  # fmt: skip
                    yield sse_data(data)
                yield b"data: [DONE]\n\n"
                return


def sse_data(data: dict[str, Any]) -> bytes:
    """One unnamed SSE event (OpenAI's streams carry ``data:`` lines only)."""
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def served_model(settings: Settings) -> str:
    return settings.openai_single_model if settings.single_model else settings.openai_model


def check_model(settings: Settings, model: str) -> None:
    if model != served_model(settings):
        raise bad(f"the model {model!r} does not exist; this orchestrator serves {served_model(settings)!r}", "model", 404, "model_not_found")


def outputs_for(chat: StoredChat, messages: list[Message], first_issued: int) -> list[ToolOutput]:
    """The client's results for the chat's pending calls, after checking that the messages agree
    with the stored chat (409 ``conflict`` naming the message otherwise)."""
    if render_query(messages[:first_issued]) != chat.request.query:
        raise bad(f"the messages before the first tool call do not match chat {chat.chat_id}'s query", "messages", 409, "conflict")
    callers = {s.tool_call_id: s for s in chat.steps if s.role == "caller"}
    pending = {p.tool_call_id for p in chat.pending}
    given: dict[str, str] = {}
    for i, m in enumerate(messages[first_issued:], start=first_issued):
        for j, call in enumerate(m.tool_calls or []):
            match = ISSUED_ID.match(call.id)
            step = callers.get(match.group(1)) if match and match.group(2) == chat.chat_id else None
            if step is None:
                raise bad(f"tool call {call.id!r} is not a call of chat {chat.chat_id}", f"messages[{i}].tool_calls[{j}].id", 409, "conflict")
            try:
                arguments = json.loads(call.function.arguments)
            except ValueError:
                arguments = call.function.arguments
            if call.function.name != step.name or arguments != step.arguments:
                raise bad(
                    f"tool call {call.id!r} differs from the stored call {step.name}({json.dumps(step.arguments)})",
                    f"messages[{i}].tool_calls[{j}].function", 409, "conflict",
                )  # fmt: skip
        match = ISSUED_ID.match(m.tool_call_id or "") if m.role == "tool" else None
        if match and match.group(1) in pending:
            given[match.group(1)] = text_of(m.content, f"messages[{i}].content")
    if chat.status != "requires_action":
        raise bad(f"chat {chat.chat_id} is {chat.status}, not waiting for these tool results", "messages", 409, "conflict")
    missing = [issued_id(chat.chat_id, p) for p in pending if p not in given]
    if missing:
        raise bad(f"the messages lack the results of the tool calls {missing}", "messages")
    return [ToolOutput(tool_call_id=call_id, output=given[call_id]) for call_id in pending]


def resumed_chat(messages: list[Message]) -> tuple[str, int] | None:
    """(chat id, index of its first issued assistant message) when the last message answers a
    tool call this orchestrator issued, else None."""
    match = ISSUED_ID.match(messages[-1].tool_call_id or "") if messages[-1].role == "tool" else None
    if match is None:
        return None
    chat_id = match.group(2)
    for i, m in enumerate(messages):
        if m.role == "assistant" and any((ISSUED_ID.match(c.id) or [None, None, None])[2] == chat_id for c in m.tool_calls or []):
            return chat_id, i
    raise bad(f"tool message answers {messages[-1].tool_call_id!r}, which no assistant message called", f"messages[{len(messages) - 1}].tool_call_id")


async def start_stretch(
    o: Orchestrator, who: Principal, messages: list[Message], tools: Callable[[], list[Tool | McpServer]],
    metadata: dict[str, str] | None, stream: bool, sampling: ChatSampling | None = None,
) -> tuple[str, int, Subscription | None]:  # fmt: skip
    """Resume the chat the messages answer (``resumed_chat``), or create one from them: (chat id,
    the index of the stretch's first step, the subscription of a streamed answer). ``tools`` makes
    the new chat's tools and ``sampling`` its sampling (a resumed chat keeps its own)."""
    resumed = resumed_chat(messages)
    if resumed is not None:
        chat_id, first_issued = resumed
        chat = await o.chats.load_visible(chat_id, who)
        outputs = outputs_for(chat, messages, first_issued)
        sub = await o.chats.submit_tool_outputs(chat_id, ToolOutputsRequest(outputs=outputs, stream=stream), who)
        return chat_id, chat.next_index, sub
    request = ChatRequest(
        query=render_query(messages), tools=tools(), metadata=dict(metadata or {}), stream=stream, sampling=sampling
    )
    chat_id, sub = await o.chats.create(request, who)
    return chat_id, 0, sub


def openai_router(settings: Settings, orch: Callable[[Request], Orchestrator], principal: Callable[[Request], Principal]) -> APIRouter:
    """The ``/v1/*`` routes; ``orch`` and ``principal`` are the app's (``orchestrator.api``)."""
    router = APIRouter(prefix="/v1", tags=["openai"])

    @router.get("/models", responses=OPENAI_ERROR_RESPONSES)
    async def models(request: Request) -> dict[str, Any]:
        principal(request)
        return {"object": "list", "data": [{"id": served_model(settings), "object": "model", "created": 0, "owned_by": "umi-serve"}]}

    @router.post("/chat/completions", responses={200: {"content": {"text/event-stream": {}}}, **OPENAI_ERROR_RESPONSES})
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
        who = principal(request)
        check_model(settings, body.model)
        refuse_unsupported(body)
        o = orch(request)
        tools = partial(function_tools, body.tools, body.tool_choice, flat=False)
        chat_id, start, sub = await start_stretch(o, who, body.messages, tools, body.metadata, body.stream, sampling_of(body))
        completion = Completion(chat_id, start, body.model)
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            events = o.chats.follow(chat_id, after=start - 1, sub=sub)
            return StreamingResponse(completion.chunks(events, include_usage), media_type="text/event-stream", headers=SSE_HEADERS)
        doc = await o.chats.wait(chat_id)
        return Response(json.dumps(completion.body(doc)), media_type="application/json")

    return router
