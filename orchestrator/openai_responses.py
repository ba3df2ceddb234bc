"""OpenAI's Responses API on the same stored chats: ``POST /v1/responses`` (JSON, or SSE with
``"stream": true``) and ``GET /v1/responses/{response_id}`` (docs/openai-api.md).

A response is one stretch of a chat, as a chat completion is (``orchestrator.openai_api``): its
id is ``resp_<chat_id>_<first step index>``, so ``GET`` rebuilds it from the store and
``previous_response_id`` names the chat to continue. Its ``output`` items, in step order:

    reasoning       one per planner turn: the thought as ``summary[0].text``
    function_call   the client tool call the chat waits for (``call_id``: the issued id)
    message         the answer (``output_text``): the summary, or the planner's reason on give-up

``status``: ``completed`` (an answer or a function call), ``incomplete`` (max steps:
``incomplete_details.reason`` is ``max_steps``), ``failed`` (``error``), ``in_progress`` (still
running when the wait ended). ``usage`` sums the role calls of the stretch.

Input: a string (one user message) or items: messages (``role`` system, developer, user,
assistant; text content), ``function_call`` and ``function_call_output``; ``instructions`` is a
system message first. With ``previous_response_id`` the input continues that chat: the
``function_call_output`` items answer its pending calls; a new user message after a settled chat
starts a chat whose query is the conversation so far (``openai_api.render_query``).

Streaming: ``response.created``, ``response.in_progress``, then per item
``response.output_item.added`` / ``.done`` (a message's text as ``response.content_part.added``,
``response.output_text.delta`` from the summarizer's tokens, ``response.output_text.done``,
``response.content_part.done``; a function call's ``response.function_call_arguments.delta`` and
``.done``), then ``response.completed`` (or ``response.incomplete`` / ``response.failed``);
every event has a ``sequence_number``; a lost chat is an ``error`` event.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import ValidationError

from orchestrator.chats import Principal
from orchestrator.models import ChatDoc, Step
from orchestrator.openai_api import (
    SSE_HEADERS,
    bad,
    check_model,
    function_tools,
    issued_id,
    sampling_of,
    served_model,
    start_stretch,
    usage_of,
)
from orchestrator.openai_models import REFUSED_RESPONSES, Message, ResponsesRequest
from orchestrator.settings import Settings
from umi.http_errors import OPENAI_ERROR_RESPONSES, field_path
from umi.sse import encode_event

if TYPE_CHECKING:
    from orchestrator.api import Orchestrator
    from orchestrator.events import Out

RESPONSE_ID = re.compile(r"^resp_([A-Za-z0-9][A-Za-z0-9_-]{0,127})_([0-9]{1,9})$")


def response_id(chat_id: str, start: int) -> str:
    return f"resp_{chat_id}_{start}"


def parse_response_id(value: str, param: str) -> tuple[str, int]:
    match = RESPONSE_ID.match(value)
    if match is None:
        raise bad(f"{value!r} is not a response of this orchestrator", param, 404, "not_found")
    return match.group(1), int(match.group(2))


def input_messages(body: ResponsesRequest) -> list[Message]:
    """The request's ``instructions`` and ``input`` as chat-completions messages (400 naming the
    item, also for an item whose fields are not a message's)."""
    where = ["instructions"]  # the part being read, for the error's param
    try:
        messages = _input_messages(body, where)
    except ValidationError as exc:
        first = exc.errors()[0]
        # the message's own fields only: not the union members pydantic tried (``content.str``)
        loc = [part for part in first["loc"] if isinstance(part, int) or part in Message.model_fields][:1]
        param = field_path((where[0], *loc)) if where[0] not in ("input", "instructions") else where[0]
        raise bad(f"{param}: {first['msg']}", param) from None
    if not messages or messages[-1].role == "system":
        raise bad("the input has no message to answer", "input")
    return messages


def _input_messages(body: ResponsesRequest, where: list[str]) -> list[Message]:
    messages = [Message(role="system", content=body.instructions)] if body.instructions else []
    if isinstance(body.input, str):
        where[0] = "input"
        return [*messages, Message(role="user", content=body.input)]
    for i, item in enumerate(body.input):
        where[0] = f"input[{i}]"
        kind = item.get("type", "message")
        if kind == "message" and item.get("role") in ("system", "developer", "user", "assistant"):
            messages.append(Message(role=item["role"], content=item.get("content")))
        elif kind == "function_call":
            call = {"id": item.get("call_id", ""), "function": {"name": item.get("name", ""), "arguments": item.get("arguments", "")}}
            messages.append(Message(role="assistant", tool_calls=[call]))  # type: ignore[list-item]
        elif kind == "function_call_output":
            output = item.get("output")
            messages.append(Message(role="tool", tool_call_id=item.get("call_id"), content=output))
        elif kind == "reasoning":
            continue  # the thoughts of an issued call come from the store
        else:
            raise bad(f"input item of type {kind!r} is not supported", f"input[{i}]")
    return messages


def output_items(doc: ChatDoc, start: int, tool_names: set[str]) -> tuple[list[dict[str, Any]], str]:
    """The output items of the stretch from ``start`` and the response's status.

    The stretch ends at the first client tool call after ``start`` (the response that asked for
    it), else where the chat is now."""
    items: list[dict[str, Any]] = []
    for step in doc.steps[start:]:
        if step.role == "planner" and step.thought:
            items.append(reasoning_item(doc.chat_id, step))
        elif step.role == "caller" and step.name in tool_names and isinstance(step.arguments, dict):
            items.append(function_call_item(doc.chat_id, step))
            return items, "completed"
    if doc.status in ("completed", "gave_up") and doc.answer is not None:
        items.append(message_item(doc.chat_id, len(doc.steps) - 1, doc.answer))
    status = {"running": "in_progress", "max_steps": "incomplete", "failed": "failed"}.get(doc.status, "completed")
    return items, status


def reasoning_item(chat_id: str, step: Step) -> dict[str, Any]:
    return {"type": "reasoning", "id": f"rs_{chat_id}_{step.index}", "summary": [{"type": "summary_text", "text": step.thought}]}


def function_call_item(chat_id: str, step: Step, arguments: str | None = None) -> dict[str, Any]:
    return {
        "type": "function_call", "id": f"fc_{chat_id}_{step.index}", "call_id": issued_id(chat_id, step.tool_call_id or ""),
        "name": step.name, "arguments": json.dumps(step.arguments) if arguments is None else arguments, "status": "completed",
    }  # fmt: skip


def message_item(chat_id: str, index: int, text: str, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "message", "id": f"msg_{chat_id}_{index}", "role": "assistant", "status": status,
        "content": [{"type": "output_text", "text": text, "annotations": []}] if status == "completed" else [],
    }  # fmt: skip


class Stretch:
    """One response: its chat, first step index and request echo fields."""

    def __init__(self, chat_id: str, start: int, model: str, body: ResponsesRequest | None, tool_names: set[str]):
        self.chat_id = chat_id
        self.start = start
        self.model = model
        self.id = response_id(chat_id, start)
        self.created_at = int(time.time())
        self.body = body
        self.tool_names = tool_names
        self.sequence = 0

    def response(self, doc: ChatDoc | None, output: list[dict[str, Any]] | None = None, status: str | None = None) -> dict[str, Any]:
        if doc is not None and output is None:
            output, status = output_items(doc, self.start, self.tool_names)
        steps = doc.steps[self.start :] if doc is not None else []
        usage = usage_of(steps)
        error = None
        if doc is not None and status == "failed":
            error = {"code": "server_error", "message": doc.error.message if doc.error else "the agent failed"}
        body = self.body
        return {
            "id": self.id, "object": "response", "created_at": self.created_at, "model": self.model,
            "status": status or "in_progress", "output": output or [], "error": error,
            "incomplete_details": {"reason": "max_steps"} if status == "incomplete" else None,
            "instructions": body.instructions if body else None, "metadata": (body.metadata if body else None) or {},
            "parallel_tool_calls": False, "tool_choice": (body.tool_choice if body else None) or "auto",
            "tools": (body.tools if body else None) or [], "temperature": body.temperature if body else None,
            "top_p": body.top_p if body else None, "previous_response_id": body.previous_response_id if body else None,
            "store": True,
            "usage": {
                "input_tokens": usage["prompt_tokens"], "output_tokens": usage["completion_tokens"],
                "total_tokens": usage["total_tokens"], "input_tokens_details": {"cached_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0},
            },
            "umi": {"chat_id": self.chat_id, "status": doc.status if doc else "running"},
        }  # fmt: skip

    def event(self, kind: str, **data: Any) -> bytes:
        frame = encode_event(kind, {"type": kind, "sequence_number": self.sequence, **data})
        self.sequence += 1
        return frame

    async def events(self, events: AsyncIterator[Out]) -> AsyncIterator[bytes]:
        """The response as the Responses API's semantic events (this module's docstring)."""
        yield self.event("response.created", response=self.response(None))
        yield self.event("response.in_progress", response=self.response(None))
        output: list[dict[str, Any]] = []
        text: str | None = None  # the message being streamed, once its first token came

        def added(item: dict[str, Any]) -> bytes:
            output.append(item)
            return self.event("response.output_item.added", output_index=len(output) - 1, item=item)

        def done(item: dict[str, Any]) -> bytes:
            return self.event("response.output_item.done", output_index=output.index(item), item=item)

        async for out in events:
            if out.event == "keepalive":
                yield b": keepalive\n\n"
            elif out.event == "step" and isinstance(out.data, Step) and out.data.role == "planner" and out.data.thought:
                item = reasoning_item(self.chat_id, out.data)
                yield added(item)
                yield done(item)
            elif out.event == "token" and out.data.get("role") == "summarizer" and out.data.get("step", 0) >= self.start:
                if text is None:
                    text = ""
                    message = message_item(self.chat_id, out.data["step"], "", status="in_progress")
                    yield added(message)
                    part = {"type": "output_text", "text": "", "annotations": []}
                    yield self.event("response.content_part.added", item_id=message["id"], output_index=len(output) - 1, content_index=0, part=part)
                text += out.data["text"]
                yield self.event(
                    "response.output_text.delta", item_id=output[-1]["id"], output_index=len(output) - 1, content_index=0,
                    delta=out.data["text"], logprobs=[],
                )  # fmt: skip
            elif out.event == "error":
                yield self.event("error", code="not_found", message=f"chat {self.chat_id} is gone", param=None)
                return
            elif out.event == "done":
                async for frame in self._settle(out.data, output, text):
                    yield frame
                return

    async def _settle(self, doc: ChatDoc, output: list[dict[str, Any]], text: str | None) -> AsyncIterator[bytes]:
        final, status = output_items(doc, self.start, self.tool_names)
        last = final[-1] if final else None
        if last is not None and last["type"] == "function_call":
            item = {**last, "arguments": "", "status": "in_progress"}
            output.append(item)
            index = len(output) - 1
            yield self.event("response.output_item.added", output_index=index, item=item)
            yield self.event("response.function_call_arguments.delta", item_id=item["id"], output_index=index, delta=last["arguments"])
            yield self.event("response.function_call_arguments.done", item_id=item["id"], output_index=index, arguments=last["arguments"])
            output[index] = last
            yield self.event("response.output_item.done", output_index=index, item=last)
        elif last is not None and last["type"] == "message":
            answer = last["content"][0]["text"]
            if text is None:  # not streamed token by token (a give-up's reason): the whole text at once
                output.append({**last, "status": "in_progress", "content": []})
                index = len(output) - 1
                yield self.event("response.output_item.added", output_index=index, item=output[index])
                part = {"type": "output_text", "text": "", "annotations": []}
                yield self.event("response.content_part.added", item_id=last["id"], output_index=index, content_index=0, part=part)
                yield self.event("response.output_text.delta", item_id=last["id"], output_index=index, content_index=0, delta=answer, logprobs=[])
            index = len(output) - 1
            item_id = output[index]["id"]
            last = {**last, "id": item_id}
            output[index] = last
            yield self.event("response.output_text.done", item_id=item_id, output_index=index, content_index=0, text=answer, logprobs=[])
            yield self.event("response.content_part.done", item_id=item_id, output_index=index, content_index=0, part=last["content"][0])
            yield self.event("response.output_item.done", output_index=index, item=last)
        kind = {"failed": "response.failed", "incomplete": "response.incomplete"}.get(status, "response.completed")
        yield self.event(kind, response=self.response(doc, output, status))


def responses_router(settings: Settings, orch: Callable[[Request], Orchestrator], principal: Callable[[Request], Principal]) -> APIRouter:
    """``POST /v1/responses`` and ``GET /v1/responses/{response_id}`` (``orch``, ``principal``: the app's)."""
    router = APIRouter(prefix="/v1", tags=["openai"])

    @router.post("/responses", responses={200: {"content": {"text/event-stream": {}}}, **OPENAI_ERROR_RESPONSES})
    async def create_response(body: ResponsesRequest, request: Request) -> Response:
        who = principal(request)
        check_model(settings, body.model)
        for name, why in REFUSED_RESPONSES.items():
            if (body.model_extra or {}).get(name) is not None:
                raise bad(why, name)
        o = orch(request)
        messages = input_messages(body)
        if body.previous_response_id is not None:
            chat_id, _ = parse_response_id(body.previous_response_id, "previous_response_id")
            chat = await o.chats.load_visible(chat_id, who)
            history = [Message(role="user", content=chat.request.query)]
            for step in chat.steps:
                if step.role == "caller" and step.tool_call_id is not None:
                    call = {"id": issued_id(chat_id, step.tool_call_id), "function": {"name": step.name or "", "arguments": json.dumps(step.arguments)}}
                    history.append(Message(role="assistant", tool_calls=[call]))  # type: ignore[list-item]
                elif step.role == "observation" and step.tool_call_id is not None:
                    history.append(Message(role="tool", tool_call_id=issued_id(chat_id, step.tool_call_id), content=step.content))
            if chat.answer is not None:
                history.append(Message(role="assistant", content=chat.answer))
            messages = history + [m for m in messages if m.role != "system"]
        tools = partial(function_tools, body.tools, body.tool_choice, flat=True)
        chat_id, start, sub = await start_stretch(o, who, messages, tools, body.metadata, body.stream, sampling_of(body))
        chat = await o.chats.load_visible(chat_id, who)
        stretch = Stretch(chat_id, start, body.model, body, {t.function.name for t in chat.request.tools if t.endpoint is None})
        if body.stream:
            events = o.chats.follow(chat_id, after=start - 1, sub=sub)
            return StreamingResponse(stretch.events(events), media_type="text/event-stream", headers=SSE_HEADERS)
        doc = await o.chats.wait(chat_id)
        return Response(json.dumps(stretch.response(doc)), media_type="application/json")

    @router.get("/responses/{response_id}", responses=OPENAI_ERROR_RESPONSES)
    async def get_response(request: Request, response_id: str = Path(max_length=160)) -> Response:
        who = principal(request)
        chat_id, start = parse_response_id(response_id, "response_id")
        chat = await orch(request).chats.load_visible(chat_id, who)
        if start > len(chat.steps):
            raise bad(f"response {response_id} does not exist", "response_id", 404, "not_found")
        stretch = Stretch(chat_id, start, served_model(settings), None, {t.function.name for t in chat.request.tools if t.endpoint is None})
        return Response(json.dumps(stretch.response(chat.to_doc())), media_type="application/json")

    return router

