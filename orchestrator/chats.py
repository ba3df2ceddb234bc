"""What the API handlers do: create (idempotently), read, resume with tool outputs, follow, delete."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from orchestrator.events import EventHub, Out, Subscription, follow
from orchestrator.metrics import Metrics
from orchestrator.mcp import McpTools
from orchestrator.models import ChatDoc, ChatRequest, McpServer, Tool, ToolOutputsRequest
from orchestrator.settings import Settings
from orchestrator.state import ChatState, observation_step
from orchestrator.store import ChatStore, IndexConflict, NewChat, NotInStatus, StoredChat
from orchestrator.supervisor import Supervisor
from orchestrator.tools import EndpointPolicy, Refused
from orchestrator.tracing import begin_chat
from umi.format.observations import cut_observation
from umi.http_errors import HttpError


log = logging.getLogger("umi.orchestrator")

@dataclass(frozen=True)
class Principal:
    """Who calls: the owner fingerprint of their API key ("" without keys), and admin rights."""

    owner: str
    admin: bool = False

    @classmethod
    def from_bearer(cls, settings: Settings, token: str | None) -> "Principal":
        if token and settings.admin_token and hmac.compare_digest(token, settings.admin_token):
            return cls(owner="", admin=True)
        if not settings.api_key_list:
            return cls(owner="")
        if token and any(hmac.compare_digest(token, key) for key in settings.api_key_list):
            return cls(owner=hashlib.sha256(token.encode()).hexdigest()[:16])
        raise HttpError(401, "unauthorized", "a valid API key is required: Authorization: Bearer <key>")

    def may_see(self, chat: StoredChat) -> bool:
        return self.admin or chat.owner == self.owner


def not_found(chat_id: str) -> HttpError:
    return HttpError(404, "not_found", f"chat {chat_id} does not exist")


class Chats:
    def __init__(
        self, settings: Settings, store: ChatStore, supervisor: Supervisor, hub: EventHub, metrics: Metrics,
        mcp: McpTools | None = None,
    ):  # fmt: skip
        self.settings = settings
        self.mcp = mcp
        self.store = store
        self.supervisor = supervisor
        self.hub = hub
        self.metrics = metrics
        self.policy = mcp.policy if mcp is not None else EndpointPolicy(settings.allowlist)
        """The tool runner's policy (through ``mcp``), whose rules without DNS run at create time."""

    def check_endpoints(self, request: ChatRequest) -> None:
        """The tool policy's rules that need no DNS (``EndpointPolicy.check_static``: URL,
        scheme, metadata names, forbidden addresses, the allowlist), on every endpoint and MCP
        source before the chat starts: a host the orchestrator may not call is a 422
        ``tool_refused`` naming the field, not a chat whose calls all fail. What needs DNS or
        the stack's addresses is checked at call time and becomes the observation."""
        for i, tool in enumerate(request.tools):
            url, field = (tool.server_url, f"tools[{i}].server_url") if isinstance(tool, McpServer) else (
                (tool.endpoint.url, f"tools[{i}].endpoint.url") if tool.endpoint is not None else (None, ""))  # fmt: skip
            if url is None:
                continue
            try:
                self.policy.check_static(url)
            except Refused as exc:
                raise HttpError(422, "tool_refused", f"{field}: {exc}", field) from None

    def check_limits(self, request: ChatRequest) -> ChatRequest:
        """The request within the limits, with tools identical to an earlier one left out.

        Raises HttpError 422 naming the field: over a limit, or two different tools with one name
        (a call could not say which one it means). Names that only collide after the models' 64
        character cut are made distinct (``umi.format.tools.model_names``), not refused.
        """
        s = self.settings
        if len(request.query) > s.max_query_chars:
            raise HttpError(422, "limit", f"query is {len(request.query)} characters; the limit is {s.max_query_chars}", "query")
        if request.max_steps > s.max_steps_limit:
            raise HttpError(422, "limit", f"max_steps is {request.max_steps}; the limit is {s.max_steps_limit}", "max_steps")
        tools: list[Tool] = []
        seen: dict[str, tuple[int, Tool]] = {}
        for i, tool in enumerate(request.tools):
            earlier = seen.get(tool.function.name)
            if earlier is None:
                seen[tool.function.name] = (i, tool)
                tools.append(tool)
            elif earlier[1] != tool:
                raise HttpError(
                    422, "invalid_request",
                    f"tools {earlier[0]} and {i} are both named {tool.function.name!r} but differ; "
                    "a call could not say which one it means", f"tools[{i}].function.name",
                )  # fmt: skip
        if len(tools) > s.max_tools:
            raise HttpError(422, "limit", f"{len(tools)} tools; the limit is {s.max_tools}", "tools")
        return request if len(tools) == len(request.tools) else request.model_copy(update={"tools": tools})

    async def create(self, request: ChatRequest, who: Principal) -> tuple[str, Subscription | None]:
        """Create and start the chat, or find the existing one with this chat_id.

        For a streamed request the returned subscription was opened before the chat started,
        so the follower misses no token.
        """
        self.check_endpoints(request)
        request = self.check_limits(await self.with_mcp_tools(request))
        chat_id = request.chat_id or uuid.uuid4().hex
        stored = request.model_copy(update={"chat_id": chat_id, "stream": False})
        fingerprint = request.fingerprint()
        sub = self.hub.open(chat_id) if request.stream else None
        # A chat_id made here is new: the chat starts while Redis creates it, so its first planner
        # request overlaps the create round trip (it writes nothing until the create succeeds).
        # A chat_id from the client may exist: it is created first, and no model is asked twice.
        token: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        state = ChatState(chat_id=chat_id, request=stored)
        begin_chat(state)  # the chat's trace: its context is stored with the chat
        run = self.supervisor.start(state, token) if request.chat_id is None else None
        try:
            created = await self.store.create(
                chat_id, self.supervisor.owner, NewChat(request=stored, fingerprint=fingerprint, owner=who.owner, trace=state.trace)
            )
            if not created.created:
                if created.owner != who.owner and not who.admin:
                    raise HttpError(409, "conflict", f"chat_id {chat_id} is already in use", "chat_id")
                if created.fingerprint != fingerprint:
                    raise HttpError(
                        409, "conflict", f"chat {chat_id} exists with another query, tools or max_steps", "chat_id"
                    )
        except BaseException:
            token.cancel()
            if run is not None:
                run.cancel()
            self._close(sub)
            raise
        if not created.created:  # the existing chat is answered; a speculative run stops
            token.cancel()
            if run is not None:
                run.cancel()
            return chat_id, sub
        state.created_at = state.updated_at = created.at
        token.set_result(created.token)
        if run is None:
            self.supervisor.start(state, created.token)
        return chat_id, sub

    async def with_mcp_tools(self, request: ChatRequest) -> ChatRequest:
        """The request with its MCP tool sources, and those of ``UMI_MCP_SERVERS``, replaced by
        their servers' tools (``orchestrator.mcp``; 502 ``mcp_unavailable`` for a source of the
        request that cannot be listed; a server-wide one is left out and logged)."""
        if self.mcp is None or not (self.settings.mcp_server_list or any(isinstance(t, McpServer) for t in request.tools)):
            return request
        tools = await self.mcp.expand(request.tools)
        for server in self.settings.mcp_server_list:
            try:
                tools += await self.mcp.expand([server], "UMI_MCP_SERVERS")
            except HttpError as exc:
                log.warning("server-wide MCP tools left out: %s", exc.message)
        return request.model_copy(update={"tools": tools})

    @staticmethod
    def _close(sub: Subscription | None) -> None:
        if sub is not None:
            sub.close()

    async def load_visible(self, chat_id: str, who: Principal) -> StoredChat:
        chat = await self.store.load(chat_id)
        if chat is None or not who.may_see(chat):
            raise not_found(chat_id)
        return chat

    async def get(self, chat_id: str, who: Principal) -> ChatDoc:
        return (await self.load_visible(chat_id, who)).to_doc()

    async def wait(self, chat_id: str) -> ChatDoc:
        """The document once the chat settles, or as it is after ``UMI_CHAT_WAIT_S``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.chat_wait_s
        task = self.supervisor.tasks.get(chat_id)
        if task is not None:
            await asyncio.wait({task}, timeout=self.settings.chat_wait_s)  # never cancels the chat
            if task.done() and not task.cancelled() and task.result() is not None:
                return task.result()
        try:
            async with asyncio.timeout_at(deadline):
                async for out in self.follow(chat_id, after=-1):
                    if out.event == "done":
                        return out.data
                    if out.event == "error":
                        raise not_found(chat_id)
        except TimeoutError:
            pass
        chat = await self.store.load(chat_id)
        if chat is None:
            raise not_found(chat_id)
        return chat.to_doc()

    def follow(self, chat_id: str, after: int, sub: Subscription | None = None) -> AsyncIterator[Out]:
        return follow(self.store, self.hub, self.supervisor.is_local, chat_id, after, sub=sub)

    async def submit_tool_outputs(self, chat_id: str, body: ToolOutputsRequest, who: Principal) -> Subscription | None:
        chat = await self.load_visible(chat_id, who)
        if chat.status != "requires_action":
            raise HttpError(409, "conflict", f"chat {chat_id} is {chat.status}, not waiting for tool outputs", "status")
        pending = {p.tool_call_id: p for p in chat.pending}
        given: dict[str, str] = {}
        for i, out in enumerate(body.outputs):
            if out.tool_call_id not in pending:
                raise HttpError(422, "invalid_request", f"no pending tool call {out.tool_call_id!r}", f"outputs[{i}].tool_call_id")
            given[out.tool_call_id] = out.output
        missing = [i for i in pending if i not in given]
        if missing:
            raise HttpError(422, "invalid_request", f"missing outputs for pending tool calls {missing}", "outputs")
        callers = {s.tool_call_id: s for s in chat.steps if s.role == "caller"}
        steps = []
        for n, call_id in enumerate(pending):
            content = cut_observation(given[call_id], self.settings.observation_max_chars)
            steps.append(observation_step(callers[call_id], content, index=chat.next_index + n))
        sub = self.hub.open(chat_id) if body.stream else None
        try:
            token = await self.store.resume_with_outputs(
                chat_id, self.supervisor.owner, chat.next_index, steps, write_id=uuid.uuid4().hex
            )
        except (NotInStatus, IndexConflict) as exc:
            self._close(sub)
            raise HttpError(409, "conflict", f"chat {chat_id} changed meanwhile: {exc}", "status") from None
        except BaseException:
            self._close(sub)
            raise
        for step in steps:
            self.metrics.steps.labels("observation").inc()
            self.hub.publish(chat_id, "step", step)
        state = ChatState.from_stored(chat)
        state.resumed = "the client's tool outputs"
        state.add(steps)
        state.status, state.pending = "running", []
        self.supervisor.start(state, token)
        return sub

    async def delete(self, chat_id: str, who: Principal) -> None:
        await self.load_visible(chat_id, who)
        self.supervisor.cancel(chat_id)
        await self.store.delete(chat_id)

