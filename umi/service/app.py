"""The role-service app factory: one FastAPI app per role, all built the same way.

    POST <spec.path>     generate (``"stream": true`` for server-sent events)
    POST /v1/render      the exact prompt the request would send (no generation)
    GET  /health         the process is up
    GET  /ready          the engine is loaded, warmed and not paused (503 otherwise)
    GET  /metrics        Prometheus
    /admin/weights       see, swap and roll back the weights (bearer token)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from umi.http_errors import PROMETHEUS_TEXT, BodyLimit, error_body, error_responses
from umi.roleapi import RenderResponse
from umi.service.admin import admin_router
from umi.service.engine_factory import EngineFactory
from umi.service.errors import install_error_handlers
from umi.service.generation import RoleRunner, warm_up
from umi.service.metrics import CONTENT_TYPE, RequestMetricsMiddleware, ServiceMetrics
from umi.service.roles import RoleSpec
from umi.service.settings import ServiceSettings
from umi.service.swap import WeightsManager
from umi.service.tracing import render_span
from umi.sse import MEDIA_TYPE

log = logging.getLogger("umi.service")


@dataclass
class RoleService:
    """What an app holds (``app.state.service``): for operators' tools and the tests."""

    spec: RoleSpec
    settings: ServiceSettings
    metrics: ServiceMetrics
    manager: WeightsManager
    runner: RoleRunner


def create_app(spec: RoleSpec, settings: ServiceSettings, factory: EngineFactory | None = None) -> FastAPI:
    metrics = ServiceMetrics(spec.role)
    factory = factory or EngineFactory(settings, spec.role)
    manager = WeightsManager(spec.role, settings, factory, functools.partial(warm_up, spec, settings), metrics)
    runner = RoleRunner(spec, settings, manager, metrics)
    service = RoleService(spec, settings, metrics, manager, runner)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await manager.load_first_tokenizer()  # a tokenizer that does not load stops the start-up
        starting = asyncio.create_task(manager.run(), name=f"{spec.role}-engine-start")
        try:
            yield
        finally:
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starting
            await manager.close()

    app = FastAPI(
        title=f"umi-serve {spec.role}",
        summary=spec.summary or f"The alpha-UMi {spec.role} role service",
        lifespan=lifespan,
    )
    app.state.service = service
    install_error_handlers(app, metrics)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)  # inside the metrics: 413s are counted
    app.add_middleware(
        RequestMetricsMiddleware,
        metrics=metrics,
        endpoints=(spec.path, "/v1/render", "/health", "/ready", "/admin/weights", "/admin/weights/rollback"),
    )
    request_model = spec.request_model

    async def generate(body: request_model, request: Request) -> Response:  # type: ignore[valid-type]
        if getattr(body, "stream", False):
            return StreamingResponse(await runner.open_stream(body, request.headers), media_type=MEDIA_TYPE)
        result = await runner.generate(body, request.headers)
        return JSONResponse(result.model_dump(mode="json"))

    async def render(body: request_model, request: Request) -> RenderResponse:  # type: ignore[valid-type]
        with render_span(spec.role, request.headers):
            return runner.render(body)

    # The body type is the role's: set it as a real class (this module's annotations are strings).
    generate.__annotations__["body"] = request_model
    render.__annotations__["body"] = request_model
    app.post(
        spec.path,
        response_model=spec.response_model,
        responses={
            **error_responses(413, 422, 500, 502, 503),
            200: {"content": {MEDIA_TYPE: {}}, "description": "JSON, or SSE with \"stream\": true"},
        },
        summary=spec.summary or f"{spec.role}: generate",
    )(generate)
    app.post(
        "/v1/render",
        response_model=RenderResponse,
        responses=error_responses(413, 422, 500, 503, descriptions={503: "the tokenizer is loading"}),
        summary="the exact prompt, without generating",
    )(render)

    @app.get("/health", summary="the process is up", responses=error_responses(500))
    async def health() -> dict:
        return {"status": "ok", "role": spec.role}

    @app.get(
        "/ready",
        summary="the engine is loaded and warmed",
        responses=error_responses(500, 503, descriptions={503: "not ready: the error, and ready, state and model"}),
    )
    async def ready() -> JSONResponse:
        state = manager.state()
        current = manager.current
        body = {
            "ready": manager.ready(),
            "state": state,
            "model": current.weights.model_info().model_dump() if current else None,
        }
        if manager.ready():
            return JSONResponse(body)
        not_ready = error_body("engine_unavailable", f"the engine is not ready: {manager.failure or state}")
        return JSONResponse({**not_ready, **body}, status_code=503, headers={"Retry-After": str(manager.retry_after_s())})

    @app.get("/metrics", summary="Prometheus metrics", responses={200: PROMETHEUS_TEXT, **error_responses(500)})
    async def metrics_endpoint() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    app.include_router(admin_router(manager, settings.admin_token_value()))
    return app
