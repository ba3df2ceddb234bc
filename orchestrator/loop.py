"""The agent state machine: planner -> caller -> tool -> observation -> planner ... -> summarizer.

The next action is a function of the steps written so far (``next_action``), so a chat resumed
by another process continues exactly where the last written step left it:

    no step yet, or an observation      -> planner (or ``max_steps`` once max_steps planner turns were taken)
    planner "caller"                     -> caller
    planner "conclusion"                 -> summarizer
    caller of a server tool, no result   -> the tool call was started: see ``ChatLoop.finish_call``

Each transition is one atomic write (``ChatStore.append``) that carries the step(s) and the
status change that goes with them: a give-up planner turn and ``gave_up``; a caller turn and
``requires_action`` for a client tool; a summary and ``completed``. In single-model mode
(``UMI_BACKBONE_URL``) one backbone answer becomes a planner step plus a caller or summarizer step.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from orchestrator.events import EventHub
from orchestrator.logs import bind
from orchestrator.metrics import Metrics
from orchestrator.models import (
    SETTLED,
    ChatDoc,
    ChatError,
    ChatRequest,
    PendingToolCall,
    Step,
    Tool,
    Usage,
    chat_usage,
)
from orchestrator.roles import RoleClient, RoleError, TokenSink, encode_body
from orchestrator.settings import Settings
from orchestrator.store import ChatStore, StoreError, StoredChat, StoreUnavailable
from orchestrator.tools import ToolRunner
from umi.format.observations import error_observation, invalid_arguments_observation, unknown_tool_observation
from umi.format.tools import HALLUCINATED_NAME
from umi.format.turns import caller_turn_content
from umi.roleapi import BackboneResponse, CallResponse, PlanResponse, SummarizeResponse

log = logging.getLogger("umi.orchestrator")

Action = Literal["plan", "call", "summarize", "finish_call", "max_steps"]

RESULT_LOST = (
    "The result of this tool call was lost: the orchestrator stopped while the call was running, "
    "and the call was not executed again so that it does not run twice."
)


class Detached(Exception):
    """This process stops advancing the chat (lease taken, chat deleted, Redis gone too long)."""


def tool_call_id(chat_id: str, index: int) -> str:
    """Deterministic: the same (chat, step) always has the same id, in every process."""
    return "call_" + hashlib.sha256(f"{chat_id}:{index}".encode()).hexdigest()[:24]


def idempotency_key(chat_id: str, index: int) -> str:
    return f"{chat_id}:{index}"


def history_turn(step: Step) -> dict[str, str] | None:
    """The typed turn a step adds to the history the role services read."""
    if step.role == "observation":
        return {"role": "observation", "content": step.content or ""}
    if step.role == "summarizer":
        return {"role": "conclusion", "content": step.answer or ""}
    if step.turn is None:  # single-model mode: the call is part of the planner's merged turn
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

    def __post_init__(self) -> None:
        self.tools_json = json.dumps([t.role_dict() for t in self.request.tools], separators=(",", ":"))
        self.tools_by_model_name: dict[str, Tool] = {}
        for tool in self.request.tools:
            self.tools_by_model_name.setdefault(tool.model_name, tool)
        self.tools_by_name = {t.function.name: t for t in self.request.tools}
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
        doc = chat.to_doc()
        return cls(
            chat_id=chat.chat_id,
            request=ChatRequest.model_validate_json(chat.fields["request"]),
            steps=doc.steps,
            status=doc.status,
            answer=doc.answer,
            error=doc.error,
            pending=doc.pending_tool_calls,
            models=doc.models,
            created_at=doc.created_at,
            updated_at=doc.updated_at,
        )

    @property
    def next_index(self) -> int:
        return len(self.steps)

    def planner_turns(self) -> int:
        return sum(1 for s in self.steps if s.role == "planner")

    def doc(self) -> ChatDoc:
        return ChatDoc(
            chat_id=self.chat_id,
            status=self.status,
            answer=self.answer,
            steps=list(self.steps),
            pending_tool_calls=self.pending,
            models=dict(self.models),
            usage=chat_usage(self.steps),
            error=self.error,
            metadata=self.request.metadata,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


def next_action(state: ChatState) -> Action:
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


def give_up_answer(thought: str) -> str | None:
    """On give-up the answer is the planner's stated reason (its thought), or null when empty."""
    return thought.strip() or None


class Writer:
    """Writes one chat's steps under a fencing token, in order, retrying while Redis is unavailable.

    ``behind=True`` takes the write off the critical path: the steps join the chat's state at
    once (so the next role request can go out) and the write completes in the background. The
    next write waits for it first, so writes stay in order and a failed one stops the chat
    before anything else is written or executed. Writes that must be durable before what
    follows (a caller step before its tool runs, a status the client is answered with) are
    awaited.
    """

    def __init__(self, loop: "ChatLoop", state: ChatState, token: int | asyncio.Future[int]):
        self.loop = loop
        self.state = state
        self.token = token  # a future while the chat is being created: the first write waits for it
        self.pending: asyncio.Task[None] | None = None
        self.run_task = asyncio.current_task()

    async def flush(self) -> None:
        """Wait for the write in the background, if any (raises Detached if it failed)."""
        pending, self.pending = self.pending, None
        if pending is not None:
            await pending

    def cancel(self) -> None:
        if self.pending is not None:
            self.pending.cancel()

    async def write(
        self, steps: list[Step], fields: Mapping[str, Any] | None = None, *, status: str | None = None,
        behind: bool = False,
    ) -> None:  # fmt: skip
        await self.flush()
        fields = dict(fields or {})
        if status is not None:
            fields["status"] = status
        for step in steps:
            if step.model_version is not None:
                role = "backbone" if self.loop.settings.single_model else step.role
                fields[f"model:{role}"] = step.model_version
        expected_index = self.state.next_index
        self.state.add(steps)
        store = self._store(expected_index, steps, fields, status)
        if behind and status is None:
            self.pending = asyncio.get_running_loop().create_task(store)
            self.pending.add_done_callback(self._stop_run_if_failed)
        else:
            await store

    def _stop_run_if_failed(self, task: asyncio.Task[None]) -> None:
        """A refused background write stops the chat's run at once, not after its next role call."""
        if not task.cancelled() and task.exception() is not None and self.run_task is not None:
            log.warning("background step write failed: %s", task.exception())
            self.run_task.cancel()

    async def _store(self, expected_index: int, steps: list[Step], fields: dict[str, Any], status: str | None) -> None:
        loop, state = self.loop, self.state
        if not isinstance(self.token, int):
            self.token = await self.token
        release = status is not None and status != "running"
        write_id = uuid.uuid4().hex
        deadline = time.monotonic() + loop.settings.write_retry_s
        delay = 0.05
        while True:
            try:
                _, at = await loop.store.append(
                    state.chat_id, loop.owner, self.token, expected_index, steps, fields,
                    release=release, write_id=write_id,
                )  # fmt: skip
                break
            except StoreUnavailable as exc:
                if time.monotonic() + delay > deadline:
                    raise Detached(f"Redis unavailable for {loop.settings.write_retry_s:g} s: {exc}") from exc
                log.warning("step write failed, retrying: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            except StoreError as exc:  # fenced, deleted, or raced: this process stops here
                raise Detached(f"step write refused: {exc}") from exc
        state.updated_at = at
        for step in steps:
            loop.metrics.steps.labels(step.role).inc()
            log.debug("%s step written", step.role, extra={"step": step.index, "latency_ms": round(step.latency_ms, 3)})
            loop.hub.publish(state.chat_id, "step", step)
        for key, value in fields.items():
            if key.startswith("model:"):
                state.models[key.removeprefix("model:")] = value
        if status is not None:
            state.status = status
            if status in SETTLED:
                loop.metrics.chats.labels(status).inc()
                log.info("chat %s", status, extra={"status": status})
                if loop.hub.has_subscribers(state.chat_id):
                    loop.hub.publish(state.chat_id, "settled", state.doc())


class ChatLoop:
    def __init__(
        self, settings: Settings, store: ChatStore, roles: RoleClient, tools: ToolRunner, hub: EventHub,
        metrics: Metrics, owner: str,
    ):  # fmt: skip
        self.settings = settings
        self.store = store
        self.roles = roles
        self.tools = tools
        self.hub = hub
        self.metrics = metrics
        self.owner = owner

    async def run(self, state: ChatState, token: int | asyncio.Future[int]) -> ChatDoc:
        """Advance the chat until it settles. Raises Detached when this process must stop.

        ``token`` may still be a future (the chat is being created): the first role request
        goes out meanwhile, and nothing is written before the token is known."""
        writer = Writer(self, state, token)
        bind(chat_id=state.chat_id)
        try:
            while state.status == "running":
                bind(step=state.next_index)
                action = next_action(state)
                try:
                    if action == "plan":
                        await (self._backbone_step(writer) if self.settings.single_model else self._plan(writer))
                    elif action == "call":
                        await self._call(writer)
                    elif action == "summarize":
                        await self._summarize(writer)
                    elif action == "finish_call":
                        await self.finish_call(writer, state.steps[-1], resumed=True)
                    else:
                        await writer.write([], status="max_steps")
                except RoleError as exc:
                    log.warning("role service failed: %s", exc, extra={"role": exc.role})
                    error = ChatError(type="role_service", message=exc.message, role=exc.role, status_code=exc.status_code)
                    state.error = error
                    await writer.write([], {"error": error.model_dump_json()}, status="failed")
        except Detached as exc:
            log.warning("chat detached from this process: %s", exc)
            raise
        finally:
            writer.cancel()
        return state.doc()

    # ------------------------------------------------------------ role calls

    def _token_sink(self, state: ChatState, role: str) -> TokenSink | None:
        if not self.hub.has_subscribers(state.chat_id):
            return None
        index = state.next_index

        async def sink(text: str, attempt: int) -> None:
            self.hub.publish(state.chat_id, "token", {"role": role, "step": index, "text": text, "attempt": attempt})

        return sink

    async def _ask(self, state: ChatState, role: str, thought: str | None = None, tokens: bool = False) -> tuple[Any, float, float]:
        """One role request; returns (response, started_at, latency_ms)."""
        sink = self._token_sink(state, role) if tokens else None
        tools_json = None if role == "summarizer" else state.tools_json
        body = encode_body(tools_json, state.history, thought, sink is not None)
        started_at, t0 = time.time(), time.perf_counter()
        response = await self.roles.request(role, body, sink)
        return response, started_at, (time.perf_counter() - t0) * 1000

    @staticmethod
    def _role_step(index: int, role: str, response: Any, started_at: float, latency_ms: float, **fields: Any) -> Step:
        return Step(
            index=index, role=role, model_version=response.model.version,
            usage=Usage(prompt_tokens=response.usage.prompt_tokens, completion_tokens=response.usage.completion_tokens),
            started_at=started_at, latency_ms=latency_ms, **fields,
        )  # fmt: skip

    async def _plan(self, writer: Writer) -> None:
        state = writer.state
        plan: PlanResponse
        plan, started_at, latency = await self._ask(state, "planner", tokens=True)
        step = self._role_step(
            state.next_index, "planner", plan, started_at, latency, thought=plan.thought, next=plan.next, turn=plan.turn
        )
        if plan.next == "give_up":
            state.answer = give_up_answer(plan.thought)
            await writer.write([step], {"answer": state.answer or ""}, status="gave_up")
        else:
            await writer.write([step], behind=True)

    async def _call(self, writer: Writer) -> None:
        state = writer.state
        thought = state.steps[-1].turn or ""
        call: CallResponse
        call, started_at, latency = await self._ask(state, "caller", thought=thought)
        await self._dispatch_call(writer, call, started_at, latency, before=[])

    async def _summarize(self, writer: Writer) -> None:
        state = writer.state
        summary: SummarizeResponse
        summary, started_at, latency = await self._ask(state, "summarizer", tokens=True)
        step = self._role_step(
            state.next_index, "summarizer", summary, started_at, latency, answer=summary.answer, turn=summary.answer
        )
        state.answer = summary.answer
        await writer.write([step], {"answer": summary.answer}, status="completed")

    async def _backbone_step(self, writer: Writer) -> None:
        """Single-model mode: one answer is the planner step and the call or the conclusion."""
        state = writer.state
        out: BackboneResponse
        out, started_at, latency = await self._ask(state, "backbone", tokens=True)
        index = state.next_index
        if out.next == "caller" and out.call is not None:
            merged = (out.thought + "\n" if out.thought else "") + out.call.turn
            plan = self._role_step(index, "planner", out, started_at, latency, thought=out.thought, next="caller", turn=merged)
            await self._dispatch_call(writer, out.call, started_at, 0.0, before=[plan], version=out.model.version)
            return
        if out.next == "conclusion":
            plan = self._role_step(index, "planner", out, started_at, latency, thought=out.thought, next="conclusion")
            answer = out.answer or ""
            summary = Step(
                index=index + 1, role="summarizer", answer=answer, turn=answer, model_version=out.model.version,
                started_at=started_at, latency_ms=0.0,
            )  # fmt: skip
            state.answer = answer
            await writer.write([plan, summary], {"answer": answer}, status="completed")
            return
        plan = self._role_step(index, "planner", out, started_at, latency, thought=out.thought, next="give_up")
        state.answer = give_up_answer(out.thought)
        await writer.write([plan], {"answer": state.answer or ""}, status="gave_up")

    # ------------------------------------------------------------ tool calls

    async def _dispatch_call(
        self, writer: Writer, call: CallResponse, started_at: float, latency: float, before: list[Step],
        version: str | None = None,
    ) -> None:  # fmt: skip
        """Write the caller step; then an error observation, a pending client call, or the server call."""
        state = writer.state
        index = state.next_index + len(before)
        call_id = tool_call_id(state.chat_id, index)
        tool = state.tools_by_model_name.get(call.name)
        common = {
            "index": index, "role": "caller", "tool_call_id": call_id, "started_at": started_at, "latency_ms": latency,
            "model_version": version or call.model.version,
            "usage": None if version else Usage(prompt_tokens=call.usage.prompt_tokens, completion_tokens=call.usage.completion_tokens),
        }  # fmt: skip
        arguments = call.arguments if call.arguments is not None else call.arguments_raw
        merged = version is not None  # single-model mode: the planner turn holds the call
        if tool is None:
            turn = None if merged else caller_turn_content(HALLUCINATED_NAME, call.arguments_raw)
            caller = Step(name=call.name, arguments=arguments, turn=turn, **common)
            observation = unknown_tool_observation(call.name)
            await writer.write([*before, caller, self._error_observation(caller, observation, "unknown_tool")], behind=True)
            return
        caller = Step(name=tool.function.name, arguments=arguments, turn=None if merged else call.turn, **common)
        if call.arguments is None:
            observation = invalid_arguments_observation(call.error)
            await writer.write([*before, caller, self._error_observation(caller, observation, "invalid_arguments")], behind=True)
            return
        if tool.endpoint is None:
            state.pending = [PendingToolCall(tool_call_id=call_id, name=tool.function.name, arguments=call.arguments)]
            pending = json.dumps([p.model_dump() for p in state.pending])
            await writer.write([*before, caller], {"pending": pending}, status="requires_action")
            return
        # Writing the caller step records the call as started (idempotency key: chat, step).
        await writer.write([*before, caller], {f"tool:{index}": "started"})
        await self.finish_call(writer, caller, resumed=False)

    def _error_observation(self, caller: Step, observation: str, kind: str) -> Step:
        self.metrics.tool_errors.labels(self.metrics.tool_label(caller.name or ""), kind).inc()
        return observation_step(caller, observation, kind)

    async def finish_call(self, writer: Writer, caller: Step, resumed: bool) -> None:
        """Execute a started server call and write its observation.

        Resumed (the process that started the call is gone, and no observation was written):
        a tool whose endpoint is marked ``idempotent`` is executed again with the same
        Idempotency-Key; any other gets an observation saying its result was lost. A tool is
        never executed a second time silently.
        """
        state = writer.state
        tool = state.tools_by_name.get(caller.name or "")
        if tool is None or tool.endpoint is None or not isinstance(caller.arguments, dict):
            raise ValueError(f"step {caller.index} of chat {state.chat_id} is not a started server tool call")
        started_at, t0 = time.time(), time.perf_counter()
        if resumed and not tool.endpoint.idempotent:
            self.metrics.tool_errors.labels(self.metrics.tool_label(tool.function.name), "result_lost").inc()
            log.warning("tool call of step %d was interrupted; its result is recorded as lost", caller.index)
            observation = observation_step(caller, error_observation(RESULT_LOST), "result_lost")
            await writer.write([observation], {f"tool:{caller.index}": "lost"}, behind=True)
            return
        if resumed:
            log.info("re-executing the interrupted call of step %d (endpoint marked idempotent)", caller.index)
        result = await self.tools.run(tool, caller.arguments, idempotency_key(state.chat_id, caller.index))
        latency = (time.perf_counter() - t0) * 1000
        observation = observation_step(caller, result.content, result.error, started_at, latency)
        await writer.write([observation], {f"tool:{caller.index}": "finished"}, behind=True)
