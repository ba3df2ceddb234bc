"""The orchestrator's HTTP API (FastAPI; OpenAPI at /docs).

    POST   /chat                          create and run a chat (JSON, or SSE with "stream": true)
    GET    /chat/{chat_id}                the chat document
    POST   /chat/{chat_id}/tool_outputs   the client's results for a chat in requires_action
    GET    /chat/{chat_id}/events         SSE of the chat's steps; resumable with Last-Event-ID
    DELETE /chat/{chat_id}
    GET    /health  /ready  /metrics
    GET    /ui ...                        the trajectory viewer and its data (orchestrator.ui)

Every non-2xx answer is ``{"error": {"type", "message", "field"}}`` (``umi.http_errors``; field
paths like ``tools[0].function.name``); OpenAPI declares each route's error statuses.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from orchestrator.chats import Chats, Principal
from orchestrator.events import FOLLOW_POLL_S, EventHub, Out
from orchestrator.logs import configure, install_context_filter
from orchestrator.loop import ChatLoop
from orchestrator.metrics import Metrics
from orchestrator.models import ChatDoc, ChatRequest, ToolOutputsRequest
from orchestrator.roles import HttpRoleClient, RoleClient
from orchestrator.settings import Settings
from orchestrator.store import ChatStore, RedisChatStore, StoreUnavailable, connect
from orchestrator.supervisor import Supervisor, process_owner
from orchestrator.tools import ToolRunner
from orchestrator.ui import ui_router
from umi.http_errors import BodyLimit, HttpError, error_body, error_responses, install_error_handlers
from umi.sse import MEDIA_TYPE, encode_event
from umi.tracing import configure_tracing

log = logging.getLogger("umi.orchestrator")
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_KEEPALIVE = b": keepalive\n\n"
_CHAT_ERRORS = error_responses(401, 404, 422, 500, 503)  # a chat's routes: key, chat, Redis


StoreFactory = Callable[[Settings, Metrics], ChatStore]
"""Builds the chat store of one orchestrator process (inside its event loop)."""
RoleClientFactory = Callable[[Settings, Metrics], RoleClient]
"""Builds the role client of one orchestrator process (inside its event loop)."""


def redis_store(settings: Settings, metrics: Metrics) -> RedisChatStore:
    """The production chat store: Redis at ``UMI_REDIS_URL``, with a second pool for SSE followers."""
    redis = connect(settings.redis_url, settings.redis_timeout_s, settings.redis_max_connections)
    blocking = connect(settings.redis_url, settings.redis_timeout_s + FOLLOW_POLL_S, settings.redis_max_connections)
    return RedisChatStore(redis, settings.key_prefix, settings.chat_ttl_s, settings.lease_ttl_s, metrics, blocking=blocking)


class Orchestrator:
    """Everything one process holds, built at startup and closed at shutdown.

    ``store`` and ``roles`` build the chat store and the role client (default: Redis and HTTP);
    tests pass in-process ones."""

    def __init__(
        self, settings: Settings, store: StoreFactory = redis_store, roles: RoleClientFactory = HttpRoleClient
    ):
        self.settings = settings
        self.metrics = Metrics()
        self.hub = EventHub()
        self.owner = process_owner()
        self.store = store(settings, self.metrics)
        self.roles = roles(settings, self.metrics)
        self.tools = ToolRunner(settings, self.metrics)
        self.loop = ChatLoop(settings, self.store, self.roles, self.tools, self.hub, self.metrics, self.owner)
        self.supervisor = Supervisor(settings, self.store, self.loop, self.hub, self.metrics)
        self.chats = Chats(settings, self.store, self.supervisor, self.hub, self.metrics)

    async def close(self) -> None:
        await self.supervisor.stop()
        await self.roles.aclose()
        await self.tools.aclose()
        await self.store.close()


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

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        orch = Orchestrator(settings, store=store, roles=roles)
        app.state.orch = orch
        orch.supervisor.start_background()
        try:
            yield
        finally:
            await orch.close()

    app = FastAPI(title="umi-serve orchestrator", version="0.1.0", lifespan=lifespan)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)

    def store_down(exc: StoreUnavailable) -> HttpError:
        log.warning("answering 503: %s", exc)
        headers = {"Retry-After": str(settings.retry_after_s)}
        return HttpError(503, "unavailable", "the chat store (Redis) is unavailable; retry", None, headers)

    install_error_handlers(app, translate={StoreUnavailable: store_down})

    def orch(request: Request) -> Orchestrator:
        return request.app.state.orch

    def principal(request: Request) -> Principal:
        # Read here rather than through Depends(): FastAPI's dependency solving costs on every request.
        return Principal.from_bearer(settings, _bearer(request.headers.get("authorization")))

    def sse(events: AsyncIterator[Out]) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            async for out in events:
                if out.event == "keepalive":
                    yield _KEEPALIVE
                else:
                    data = out.data.model_dump_json() if isinstance(out.data, BaseModel) else out.data
                    yield encode_event(out.event, data, out.id)

        return StreamingResponse(body(), media_type=MEDIA_TYPE, headers=_SSE_HEADERS)

    @app.post("/chat", response_model=ChatDoc, responses=error_responses(401, 409, 413, 422, 500, 503))
    async def create_chat(body: ChatRequest, request: Request) -> Response:
        o = orch(request)
        chat_id, sub = await o.chats.create(body, principal(request))
        if body.stream:
            return sse(o.chats.follow(chat_id, after=-1, sub=sub))
        doc = await o.chats.wait(chat_id)
        return Response(doc.model_dump_json(), media_type="application/json")

    @app.get("/chat/{chat_id}", response_model=ChatDoc, responses=_CHAT_ERRORS)
    async def get_chat(chat_id: str, request: Request) -> Response:
        doc = await orch(request).chats.get(chat_id, principal(request))
        return Response(doc.model_dump_json(), media_type="application/json")

    @app.post(
        "/chat/{chat_id}/tool_outputs", response_model=ChatDoc, responses=error_responses(401, 404, 409, 413, 422, 500, 503)
    )
    async def tool_outputs(
        chat_id: str, body: ToolOutputsRequest, request: Request
    ) -> Response:
        o = orch(request)
        sub = await o.chats.submit_tool_outputs(chat_id, body, principal(request))
        if body.stream:
            return sse(o.chats.follow(chat_id, after=-1, sub=sub))
        doc = await o.chats.wait(chat_id)
        return Response(doc.model_dump_json(), media_type="application/json")

    @app.get("/chat/{chat_id}/events", responses=_CHAT_ERRORS)
    async def chat_events(
        chat_id: str, request: Request, last_event_id: str | None = Header(default=None)
    ) -> StreamingResponse:
        o = orch(request)
        await o.chats.load_visible(chat_id, principal(request))
        after = -1
        if last_event_id is not None:
            if not last_event_id.strip().lstrip("-").isdigit():
                raise HttpError(422, "invalid_request", "Last-Event-ID must be a step index", "Last-Event-ID")
            after = int(last_event_id)
        return sse(o.chats.follow(chat_id, after=after))

    @app.delete("/chat/{chat_id}", status_code=204, responses=_CHAT_ERRORS)
    async def delete_chat(chat_id: str, request: Request) -> Response:
        await orch(request).chats.delete(chat_id, principal(request))
        return Response(status_code=204)

    @app.get("/health", responses=error_responses(500))
    async def health() -> dict[str, Any]:
        return {"status": "ok", "pid": os.getpid()}

    @app.get("/ready", responses=error_responses(500, 503, descriptions={503: "Redis is unavailable: error, status, redis"}))
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

    @app.get("/metrics", responses=error_responses(401, 500))
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
