"""The runner of one chat: planner -> caller -> tool -> observation -> planner ... -> summarizer.

``ChatLoop.run`` asks ``next_action`` (``orchestrator.state``) what to do, asks the role service
for it through the ``RoleClient``, runs server tools with the ``ToolRunner`` and writes every
transition with a ``StepWriter`` (``orchestrator.writer``): one atomic store write carries the
step(s) and the status change that goes with them. In single-model mode (``UMI_BACKBONE_URL``) one
backbone answer becomes a planner step plus a caller or summarizer step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Protocol

from orchestrator import tracing
from orchestrator.events import EventHub
from orchestrator.logs import bind
from orchestrator.metrics import Metrics
from orchestrator.models import ChatDoc, ChatError, PendingToolCall, Step, Usage
from orchestrator.roles import RoleClient, RoleError, RoleRequest, TokenSink
from orchestrator.settings import Settings
from orchestrator.state import (
    RESULT_LOST,
    ChatState,
    give_up_answer,
    idempotency_key,
    next_action,
    observation_step,
    tool_call_id,
)
from orchestrator.store import ChatStore, ChatUpdate
from orchestrator.tools import ToolRunner
from orchestrator.writer import Detached, StepWriter
from umi.format.observations import error_observation, invalid_arguments_observation, unknown_tool_observation
from umi.format.tools import HALLUCINATED_NAME
from umi.format.turns import caller_turn_content
from umi.roleapi import CallResponse, ModelInfo, PromptFit
from umi.roleapi import Usage as RoleUsage
from umi.tracing import record_error as trace_error

log = logging.getLogger("umi.orchestrator")


class _Answered(Protocol):
    """What every role response carries (umi.roleapi)."""

    model: ModelInfo
    usage: RoleUsage
    fit: PromptFit | None


class ChatLoop:
    """Advances chats: each ``run`` drives one chat until it settles or this process must stop."""

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
        writer = self._writer(state, token)
        bind(chat_id=state.chat_id)
        try:
            with tracing.run(state):
                await self._advance(writer)
        except Detached as exc:
            log.warning("chat detached from this process: %s", exc)
            raise
        except Exception:
            # A crash: what was done is written before the chat restarts (a tool's observation
            # written behind must not be lost, or an idempotent tool would run again).
            with contextlib.suppress(Exception):
                await writer.flush()
            raise
        finally:
            writer.cancel()
        return state.doc()

    async def _advance(self, writer: StepWriter) -> None:
        state = writer.state
        while state.status == "running":
            bind(step=state.next_index)
            action = next_action(state)
            with tracing.step(state, action, self.settings.single_model) as span:
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
                        await writer.write([], ChatUpdate(status="max_steps"))
                except RoleError as exc:
                    log.warning("role service failed: %s", exc, extra={"role": exc.role})
                    trace_error(span, "role_service", exc.message, exc)
                    error = ChatError(type="role_service", message=exc.message, role=exc.role, status_code=exc.status_code)
                    state.error = error
                    await writer.write([], ChatUpdate(status="failed", error=error))

    def _writer(self, state: ChatState, token: int | asyncio.Future[int]) -> StepWriter:
        return StepWriter(
            state, self.store, self.owner, token, hub=self.hub, metrics=self.metrics,
            write_retry_s=self.settings.write_retry_s, single_model=self.settings.single_model,
        )  # fmt: skip

    async def fail(self, state: ChatState, token: int, error: ChatError) -> None:
        """End a running chat ``failed`` with ``error``, nothing else run (raises Detached if refused)."""
        writer = self._writer(state, token)
        state.error = error
        await writer.write([], ChatUpdate(status="failed", error=error))

    # ------------------------------------------------------------ role calls

    def _token_sink(self, state: ChatState, role: str) -> TokenSink | None:
        if not self.hub.has_subscribers(state.chat_id):
            return None
        index = state.next_index

        async def sink(text: str, attempt: int) -> None:
            self.hub.publish(state.chat_id, "token", {"role": role, "step": index, "text": text, "attempt": attempt})

        return sink

    def _request(self, state: ChatState, role: str, thought: str | None = None) -> RoleRequest:
        return RoleRequest(
            history=state.history, tools_json=None if role == "summarizer" else state.tools_json, thought=thought,
            sampling_json=state.sampling_json[role], chat_id=state.chat_id,
        )  # fmt: skip

    @staticmethod
    def _role_step(index: int, role: str, response: _Answered, started_at: float, latency_ms: float, **fields: object) -> Step:
        return Step(
            index=index, role=role, model_version=response.model.version,
            usage=Usage(prompt_tokens=response.usage.prompt_tokens, completion_tokens=response.usage.completion_tokens),
            fit=response.fit, started_at=started_at, latency_ms=latency_ms, **fields,  # type: ignore[arg-type]
        )  # fmt: skip

    async def _plan(self, writer: StepWriter) -> None:
        state = writer.state
        started_at, t0 = time.time(), time.perf_counter()
        plan = await self.roles.plan(self._request(state, "planner"), self._token_sink(state, "planner"))
        latency = (time.perf_counter() - t0) * 1000
        step = self._role_step(
            state.next_index, "planner", plan, started_at, latency, thought=plan.thought, next=plan.next, turn=plan.turn
        )
        if plan.next == "give_up":
            state.answer = give_up_answer(plan.thought)
            await writer.write([step], ChatUpdate(status="gave_up", answer=state.answer))
        else:
            await writer.write([step], behind=True)

    async def _call(self, writer: StepWriter) -> None:
        state = writer.state
        started_at, t0 = time.time(), time.perf_counter()
        call = await self.roles.call(self._request(state, "caller", thought=state.steps[-1].turn or ""))
        latency = (time.perf_counter() - t0) * 1000
        await self._dispatch_call(writer, call, started_at, latency, before=[])

    async def _summarize(self, writer: StepWriter) -> None:
        state = writer.state
        started_at, t0 = time.time(), time.perf_counter()
        summary = await self.roles.summarize(self._request(state, "summarizer"), self._token_sink(state, "summarizer"))
        latency = (time.perf_counter() - t0) * 1000
        step = self._role_step(
            state.next_index, "summarizer", summary, started_at, latency, answer=summary.answer, turn=summary.answer
        )
        state.answer = summary.answer
        await writer.write([step], ChatUpdate(status="completed", answer=summary.answer))

    async def _backbone_step(self, writer: StepWriter) -> None:
        """Single-model mode: one answer is the planner step and the call or the conclusion."""
        state = writer.state
        started_at, t0 = time.time(), time.perf_counter()
        out = await self.roles.step(self._request(state, "backbone"), self._token_sink(state, "backbone"))
        latency = (time.perf_counter() - t0) * 1000
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
            await writer.write([plan, summary], ChatUpdate(status="completed", answer=answer))
            return
        plan = self._role_step(index, "planner", out, started_at, latency, thought=out.thought, next="give_up")
        state.answer = give_up_answer(out.thought)
        await writer.write([plan], ChatUpdate(status="gave_up", answer=state.answer))

    # ------------------------------------------------------------ tool calls

    async def _dispatch_call(
        self, writer: StepWriter, call: CallResponse, started_at: float, latency: float, before: list[Step],
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
            "fit": None if version else call.fit,  # single-model mode: the planner step has the prompt's fit
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
            await writer.write([*before, caller], ChatUpdate(status="requires_action", pending=state.pending))
            return
        # Writing the caller step records the call as started (idempotency key: chat, step).
        await writer.write([*before, caller], ChatUpdate(tool_calls={index: "started"}))
        await self.finish_call(writer, caller, resumed=False)

    def _error_observation(self, caller: Step, observation: str, kind: str) -> Step:
        self.metrics.tool_errors.labels(self.metrics.tool_label(caller.name or ""), kind).inc()
        return observation_step(caller, observation, kind)

    async def finish_call(self, writer: StepWriter, caller: Step, resumed: bool) -> None:
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
            await writer.write([observation], ChatUpdate(tool_calls={caller.index: "lost"}), behind=True)
            return
        if resumed:
            log.info("re-executing the interrupted call of step %d (endpoint marked idempotent)", caller.index)
        with tracing.tool_call(state, tool, caller) as span:
            result = await self.tools.run(tool, caller.arguments, idempotency_key(state.chat_id, caller.index))
            if result.error is not None:
                trace_error(span, result.error)
        latency = (time.perf_counter() - t0) * 1000
        observation = observation_step(caller, result.content, result.error, started_at, latency)
        await writer.write([observation], ChatUpdate(tool_calls={caller.index: "finished"}), behind=True)
