"""The role services' error answers: :mod:`umi.http_errors` plus the engines' errors.

    EngineUnavailable      503 engine_unavailable, with Retry-After (the engine is starting,
                           restarting, unreachable, dead or hung)
    ContextTooLong         422 invalid_request, field ``sampling.max_tokens`` (the engine's context
                           is shorter than the service counted: prompt + max_tokens over it)
    any other EngineError  502 engine_error (the engine answered with an error)

Every answer is counted in ``umi_request_errors_total{endpoint,type}``.
"""

from __future__ import annotations

from fastapi import FastAPI, Request

from umi.engines import ContextTooLong, EngineError, EngineUnavailable
from umi.http_errors import HttpError, install_error_handlers as install_http_error_handlers
from umi.service.metrics import ServiceMetrics


def as_service_error(exc: Exception) -> HttpError:
    """The answer for an exception from the engine layer (or an :class:`HttpError` itself)."""
    if isinstance(exc, HttpError):
        return exc
    if isinstance(exc, EngineUnavailable):
        return HttpError(503, "engine_unavailable", str(exc), headers={"Retry-After": str(exc.retry_after_s)})
    if isinstance(exc, ContextTooLong):
        return HttpError(422, "invalid_request", f"sampling.max_tokens: prompt + max_tokens: {exc}", "sampling.max_tokens")
    if isinstance(exc, EngineError):
        return HttpError(502, "engine_error", str(exc))
    return HttpError(500, "internal_error", f"{type(exc).__name__}: {exc}")


def install_error_handlers(app: FastAPI, metrics: ServiceMetrics) -> None:
    def count(request: Request, err: HttpError) -> None:
        metrics.count_error(request.url.path, err.type)

    install_http_error_handlers(app, translate={EngineError: as_service_error}, on_error=count)
