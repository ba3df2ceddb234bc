"""The orchestrator's HTTP API (FastAPI; OpenAPI at /docs).

    POST   /chat                          create and run a chat (JSON, or SSE with "stream": true)
    GET    /chat/{chat_id}                the chat document
    POST   /chat/{chat_id}/tool_outputs   the client's results for a chat in requires_action
    GET    /chat/{chat_id}/events         SSE of the chat's steps; resumable with Last-Event-ID
    DELETE /chat/{chat_id}
    GET    /health  /ready  /metrics
    GET    /v1/models   POST /v1/chat/completions   the agent behind OpenAI's API (orchestrator.openai_api)
    POST   /v1/responses   GET /v1/responses/{id}   OpenAI's Responses API (orchestrator.openai_responses)
    GET    /ui ...                        the trajectory viewer and its data (orchestrator.ui)

Every non-2xx answer is ``{"error": {"type", "message", "field"}}`` (on ``/v1/*``: OpenAI's
``{"error": {"message", "type", "param", "code"}}``) (``umi.http_errors``; field
paths like ``tools[0].function.name``); OpenAPI declares each route's error statuses. A chat id
in a path has the alphabet and length of ``orchestrator.models.CHAT_ID_PATTERN`` (422 naming
``chat_id`` otherwise).

A streamed answer (``"stream": true``, and ``/events``) names its chat at once: the
``X-Chat-Id`` response header, and a first ``chat`` event ``{"chat_id": ...}`` before any
``token``, ``step`` or ``done``, so a client that disconnects can resume with ``/events``.

Loop guard: a request that carries ``X-Umi-Tool-Call`` (the header of every tool call the
orchestrator makes, ``orchestrator.tools.LOOP_GUARD_HEADER``) is refused with 403
``loop_detected`` on every route. Every address and port a request reached the API on joins the
endpoints no tool call may reach (``orchestrator.tools.StackEndpoints``).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Header, Path, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from orchestrator.chats import Chats, Principal
from orchestrator.events import FOLLOW_POLL_S, EventHub, Out
from orchestrator.logs import configure, install_context_filter
from orchestrator.loop import ChatLoop
from orchestrator.metrics import Metrics
from orchestrator.models import CHAT_ID_PATTERN, ChatDoc, ChatRequest, ToolOutputsRequest
from orchestrator.roles import HttpRoleClient, RoleClient
from orchestrator.settings import Settings
from orchestrator.store import ChatStore, RedisChatStore, StoreUnavailable, connect
from orchestrator.supervisor import Supervisor, process_owner
from orchestrator.tools import LOOP_GUARD_HEADER, StackEndpoints, ToolRunner, stack_urls
from orchestrator.openai_api import openai_router
from orchestrator.openai_responses import responses_router
from orchestrator.ui import ui_router
from umi.http_errors import PROMETHEUS_TEXT, ASGIApp, BodyLimit, HttpError, error_body, error_responses, install_error_handlers
from umi.http_errors import openai_error_response
from umi.sse import EVENT_SCHEMA, MEDIA_TYPE, encode_event
from umi.tracing import configure_tracing

log = logging.getLogger("umi.orchestrator")
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_KEEPALIVE = b": keepalive\n\n"
_OPENAI_SHAPES = {"/v1/": openai_error_response}  # /v1/* (orchestrator.openai_api) answers OpenAI's error body
_CHAT_ERRORS = error_responses(401, 403, 404, 422, 500, 503)  # a chat's routes: key, loop guard, chat, Redis
_LOOP_GUARD = LOOP_GUARD_HEADER.lower().encode()
_STREAMED = {"content": {MEDIA_TYPE: {"schema": {**EVENT_SCHEMA, "description": "SSE: chat, token, step, done, error"}}}}
CHAT_ID_HEADER = "X-Chat-Id"
"""The response header of a streamed answer that names its chat."""
ChatIdPath = Path(pattern=CHAT_ID_PATTERN, max_length=128, description="1-128 of A-Z a-z 0-9 _ -, first a letter or digit")


StoreFactory = Callable[[Settings, Metrics], ChatStore]
"""Builds the chat store of one orchestrator process (inside its event loop)."""
RoleClientFactory = Callable[[Settings, Metrics], RoleClient]
"""Builds the role client of one orchestrator process (inside its event loop)."""


def redis_store(settings: Settings, metrics: Metrics) -> RedisChatStore:
    """The production chat store: Redis at ``UMI_REDIS_URL``, with a second pool for SSE followers."""
    redis = connect(settings.redis_url, settings.redis_timeout_s, settings.redis_max_connections)
    blocking = connect(settings.redis_url, settings.redis_timeout_s + FOLLOW_POLL_S, settings.redis_max_connections)
    return RedisChatStore(
        redis, settings.key_prefix, settings.chat_ttl_s, settings.lease_ttl_s, metrics, blocking=blocking,
        wait_replicas=settings.redis_wait_replicas, wait_timeout_ms=settings.redis_wait_timeout_ms,
    )  # fmt: skip


class Orchestrator:
    """Everything one process holds, built at startup and closed at shutdown.

    ``store`` and ``roles`` build the chat store and the role client (default: Redis and HTTP);
    tests pass in-process ones."""

    def __init__(
        self, settings: Settings, store: StoreFactory = redis_store, roles: RoleClientFactory = HttpRoleClient,
        stack: StackEndpoints | None = None,
    ):  # fmt: skip
        self.settings = settings
        self.metrics = Metrics()
        self.hub = EventHub()
        self.owner = process_owner()
        self.store = store(settings, self.metrics)
        self.roles = roles(settings, self.metrics)
        self.tools = ToolRunner(settings, self.metrics, stack=stack)
        self.loop = ChatLoop(settings, self.store, self.roles, self.tools, self.hub, self.metrics, self.owner)
        self.supervisor = Supervisor(settings, self.store, self.loop, self.hub, self.metrics)
        self.chats = Chats(settings, self.store, self.supervisor, self.hub, self.metrics, mcp=self.tools.mcp)

    async def close(self) -> None:
        await self.supervisor.stop()
        await self.roles.aclose()
        await self.tools.aclose()
        await self.store.close()


class LoopGuard:
    """ASGI middleware: 403 ``loop_detected`` for a request that carries the tool-call header;
    records every address and port the API is reached on in ``stack``."""

    def __init__(self, app: ASGIApp, stack: StackEndpoints) -> None:
        self.app = app
        self.stack = stack

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            if scope.get("server"):
                host, port = scope["server"][0], scope["server"][1]
                if host and port:
                    self.stack.listening(str(host), int(port))
            if any(name == _LOOP_GUARD for name, _ in scope.get("headers", [])):
                message = f"a request from a tool call (it carries {LOOP_GUARD_HEADER}) may not reach the orchestrator"
                return await HttpError(403, "loop_detected", message, LOOP_GUARD_HEADER).response()(scope, receive, send)
        await self.app(scope, receive, send)


def _bearer(authorization: str | None) -> str | None:
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None


def create_app(
    settings: Settings | None = None, *, store: StoreFactory = redis_store, roles: RoleClientFactory = HttpRoleClient
) -> FastAPI:
    """The orchestrator's app. ``store`` and ``roles`` choose the chat store and the role client
    (built in the app's lifespan); the defaults are the production ones."""
    settings = settings or Settings()
    install_context_filter()
    stack = StackEndpoints(stack_urls(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        orch = Orchestrator(settings, store=store, roles=roles, stack=stack)
        app.state.orch = orch
        orch.supervisor.start_background()
        try:
            yield
        finally:
            await orch.close()

    app = FastAPI(title="umi-serve orchestrator", version="0.1.0", lifespan=lifespan)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, shapes=_OPENAI_SHAPES)
    app.add_middleware(LoopGuard, stack=stack)

    def store_down(exc: StoreUnavailable) -> HttpError:
        log.warning("answering 503: %s", exc)
        headers = {"Retry-After": str(settings.retry_after_s)}
        return HttpError(503, "unavailable", "the chat store (Redis) is unavailable; retry", None, headers)

    install_error_handlers(app, translate={StoreUnavailable: store_down}, shapes=_OPENAI_SHAPES)

    def orch(request: Request) -> Orchestrator:
        return request.app.state.orch

    def principal(request: Request) -> Principal:
        # Read here rather than through Depends(): FastAPI's dependency solving costs on every request.
        return Principal.from_bearer(settings, _bearer(request.headers.get("authorization")))

    app.include_router(openai_router(settings, orch, principal))
    app.include_router(responses_router(settings, orch, principal))

    def sse(chat_id: str, events: AsyncIterator[Out]) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield encode_event("chat", json.dumps({"chat_id": chat_id}))
            async for out in events:
                if out.event == "keepalive":
                    yield _KEEPALIVE
                else:
                    data = out.data.model_dump_json() if isinstance(out.data, BaseModel) else out.data
                    yield encode_event(out.event, data, out.id)

        return StreamingResponse(body(), media_type=MEDIA_TYPE, headers={**_SSE_HEADERS, CHAT_ID_HEADER: chat_id})

    @app.post("/chat", response_model=ChatDoc, responses={200: _STREAMED, **error_responses(401, 403, 409, 413, 422, 500, 503)})
    async def create_chat(body: ChatRequest, request: Request) -> Response:
        o = orch(request)
        chat_id, sub = await o.chats.create(body, principal(request))
        if body.stream:
            return sse(chat_id, o.chats.follow(chat_id, after=-1, sub=sub))
        doc = await o.chats.wait(chat_id)
        return Response(doc.model_dump_json(), media_type="application/json")

    @app.get("/chat/{chat_id}", response_model=ChatDoc, responses=_CHAT_ERRORS)
    async def get_chat(request: Request, chat_id: str = ChatIdPath) -> Response:
        doc = await orch(request).chats.get(chat_id, principal(request))
        return Response(doc.model_dump_json(), media_type="application/json")

    @app.post(
        "/chat/{chat_id}/tool_outputs", response_model=ChatDoc,
        responses={200: _STREAMED, **error_responses(401, 403, 404, 409, 413, 422, 500, 503)},
    )  # fmt: skip
    async def tool_outputs(body: ToolOutputsRequest, request: Request, chat_id: str = ChatIdPath) -> Response:
        o = orch(request)
        sub = await o.chats.submit_tool_outputs(chat_id, body, principal(request))
        if body.stream:
            return sse(chat_id, o.chats.follow(chat_id, after=-1, sub=sub))
        doc = await o.chats.wait(chat_id)
        return Response(doc.model_dump_json(), media_type="application/json")

    @app.get("/chat/{chat_id}/events", responses={200: _STREAMED, **_CHAT_ERRORS})
    async def chat_events(
        request: Request, chat_id: str = ChatIdPath, last_event_id: str | None = Header(default=None)
    ) -> StreamingResponse:
        o = orch(request)
        await o.chats.load_visible(chat_id, principal(request))
        after = -1
        if last_event_id is not None:
            if not re.fullmatch(r"-?[0-9]{1,18}", last_event_id.strip()):
                raise HttpError(422, "invalid_request", "Last-Event-ID must be a step index", "Last-Event-ID")
            after = int(last_event_id)
        return sse(chat_id, o.chats.follow(chat_id, after=after))

    @app.delete("/chat/{chat_id}", status_code=204, responses=_CHAT_ERRORS)
    async def delete_chat(request: Request, chat_id: str = ChatIdPath) -> Response:
        await orch(request).chats.delete(chat_id, principal(request))
        return Response(status_code=204)

    @app.get("/health", responses=error_responses(403, 500))
    async def health() -> dict[str, Any]:
        return {"status": "ok", "pid": os.getpid()}

    @app.get("/ready", responses=error_responses(403, 500, 503, descriptions={503: "Redis is unavailable: error, status, redis"}))
    async def ready(request: Request) -> JSONResponse:
        o = orch(request)
        try:
            await o.store.ping()
        except StoreUnavailable as exc:
            return JSONResponse(
                {**error_body("unavailable", f"the chat store (Redis) is unavailable: {exc}"),
                 "status": "unavailable", "redis": str(exc)}, status_code=503,
                headers={"Retry-After": str(settings.retry_after_s)},
            )  # fmt: skip
        mode = "single-model" if settings.single_model else "multi-llm"
        return JSONResponse({"status": "ready", "redis": "ok", "mode": mode, "roles": o.roles.urls_in_use()})

    @app.get("/metrics", responses={200: PROMETHEUS_TEXT, **error_responses(401, 403, 500)})
    async def metrics(request: Request) -> Response:
        if settings.admin_token and not principal(request).admin:
            raise HttpError(401, "unauthorized", "GET /metrics needs the admin token (UMI_ADMIN_TOKEN)")
        return Response(generate_latest(orch(request).metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(ui_router(orch, principal))  # the trajectory viewer, /ui (orchestrator.ui)
    return app



def create_worker_app() -> FastAPI:
    """The app of one worker process of ``umi serve orchestrator --workers N``."""
    settings = Settings()
    configure(settings.log_level)
    configure_tracing("umi-orchestrator")
    return create_app(settings)
