"""Error answers: always ``{"error": {"type", "message", "field"}}`` (``umi.roleapi.ErrorBody``).

An engine that cannot take a request answers 503 with ``Retry-After``; validation errors (422)
name the offending field (``history[0].role``, ``sampling.max_tokens``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from umi.engines import EngineRequestError, EngineUnavailable
from umi.roleapi import ErrorBody, ErrorDetail
from umi.service.metrics import ServiceMetrics

log = logging.getLogger("umi.service")


class ServiceError(Exception):
    """An error answer with its status, type and (when a request field is at fault) field."""

    def __init__(
        self, status: int, error_type: str, message: str, field: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = error_type
        self.message = message
        self.field = field
        self.headers = headers or {}


def error_body(error_type: str, message: str, field: str | None = None) -> dict:
    return ErrorBody(error=ErrorDetail(type=error_type, message=message, field=field)).model_dump()


def field_path(loc: Sequence[int | str]) -> str:
    """``("body", "history", 0, "role")`` -> ``history[0].role``."""
    parts = list(loc[1:]) if loc and loc[0] in ("body", "query", "path", "header") else list(loc)
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def as_service_error(exc: Exception) -> ServiceError:
    """The answer for an exception from the engine layer (or a ServiceError itself)."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, EngineUnavailable):
        return ServiceError(503, "engine_unavailable", str(exc), headers={"Retry-After": str(exc.retry_after_s)})
    if isinstance(exc, EngineRequestError):
        return ServiceError(502, "engine_error", str(exc))
    return ServiceError(500, "internal_error", f"{type(exc).__name__}: {exc}")


def install_error_handlers(app: FastAPI, metrics: ServiceMetrics) -> None:
    def answer(request: Request, err: ServiceError) -> JSONResponse:
        metrics.count_error(request.url.path, err.type)
        return JSONResponse(error_body(err.type, err.message, err.field), status_code=err.status, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
        field = field_path(first["loc"])
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return answer(request, ServiceError(422, "invalid_request", f"{field}: {first['msg']}{more}", field))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        err = ServiceError(exc.status_code, "http_error", str(exc.detail), headers=dict(exc.headers or {}))
        return answer(request, err)

    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError) -> JSONResponse:
        return answer(request, exc)

    @app.exception_handler(EngineUnavailable)
    async def _unavailable(request: Request, exc: EngineUnavailable) -> JSONResponse:
        return answer(request, as_service_error(exc))

    @app.exception_handler(EngineRequestError)
    async def _engine(request: Request, exc: EngineRequestError) -> JSONResponse:
        return answer(request, as_service_error(exc))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return answer(request, as_service_error(exc))
