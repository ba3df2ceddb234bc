"""Error answers of every umi-serve HTTP API: the orchestrator and the role services.

Every non-2xx answer is JSON :class:`ErrorBody`::

    {"error": {"type": str, "message": str, "field": str | null}}

``type`` is a stable, machine-readable name (``invalid_request``, ``limit``, ``not_found``,
``conflict``, ``unauthorized``, ``unavailable``, ``engine_unavailable``, ...); ``message`` is for
people; ``field`` names the part of the request at fault, or is ``null`` when none is (an
unknown route, a body that is not JSON, an engine that is down). A ``/ready`` probe that answers
503 adds its own readiness fields next to ``error``.

Field paths (both APIs): the request field in the JSONPath style without the leading ``$.``:
object keys joined with ``.``, list indexes in brackets: ``tools[0].function.name``,
``history[2].role``, ``sampling.max_tokens``; ``body`` for the body as a whole; a header by its
name (``Last-Event-ID``); a query parameter by its name.

Answers every app gets from :func:`install_error_handlers` and :class:`BodyLimit`:

    400  invalid_request     the body could not be read
    404  not_found           no such route
    405  method_not_allowed  the route exists with other methods (``Allow`` header)
    413  limit               the body is over the app's limit (``field: "body"``)
    422  invalid_request     the first validation error (``field`` its path; ``(and N more)``), or a
                             body that is not valid JSON (``field: null``; the message says where
                             the JSON broke: ``line 1 column 27 (char 26)``)
    500  internal_error      an unexpected exception (its class only; the log has the traceback)

An app raises :class:`HttpError` for its own answers, and maps its own exception families
(Redis, engines) onto it with ``translate``. A second body shape may be given to the routes under
a path prefix (``shapes``): the orchestrator answers its OpenAI-compatible ``/v1/*`` routes with
OpenAI's error body (:func:`openai_error_response`), the same errors in another shape. Each route declares what it may answer with
:func:`error_responses` so that ``app.openapi()`` lists every status with ``ErrorBody``.
"""

from __future__ import annotations

import json
import re
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("umi.http")

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]], Callable[[dict[str, Any]], Awaitable[None]]], Awaitable[None]]
_SOURCES = ("body", "query", "path", "header", "cookie")
# Starlette's own HTTP errors (routing, body parsing) by status; any other status is "http_error".
_HTTP_TYPES = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed"}
_DESCRIPTIONS = {
    400: "the request could not be read",
    401: "a bearer token is needed (missing or wrong)",
    403: "not allowed here",
    404: "no such resource",
    405: "the route exists with other methods",
    409: "the request conflicts with the resource's state",
    413: "the request body is over the limit",
    422: "a request field is invalid (field names it), or the body is not valid JSON",
    500: "an unexpected error",
    502: "the engine answered with an error",
    503: "unavailable now: retry after Retry-After seconds",
}


PROMETHEUS_TEXT: dict[str, Any] = {
    "description": "Prometheus metrics (text exposition format)",
    "content": {"text/plain": {"schema": {"type": "string"}}},
}
"""The 200 answer of a ``/metrics`` route in ``responses=`` (so that OpenAPI names its media type)."""


class ErrorDetail(BaseModel):
    type: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    """The body of every non-2xx answer."""

    error: ErrorDetail


class HttpError(Exception):
    """An error answer: its status, type, message, the field at fault (a path) and headers."""

    def __init__(
        self, status: int, type: str, message: str, field: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.message = message
        self.field = field
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return error_body(self.type, self.message, self.field)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers or None)


def error_body(type: str, message: str, field: str | None = None) -> dict[str, Any]:
    """``{"error": {"type", "message", "field"}}`` as a dict (for JSON and SSE ``error`` events)."""
    return {"error": {"type": type, "message": message, "field": field}}


def field_path(loc: Sequence[int | str], body: Any = None) -> str:
    """A validation location as a field path: ``("body", "tools", 0, "function", "name")`` ->
    ``tools[0].function.name``; ``("body",)`` -> ``body``.

    With the request ``body``, the steps pydantic adds that are not in it are left out: the
    member of a union it tried (``tools[0].OpenAITool.function`` -> ``tools[0].function``). A
    bad dict key is named by the key itself (``headers.Bad Name``, not ``headers.Bad Name.[key]``).
    """
    parts = list(loc[1:]) if loc and loc[0] in _SOURCES else list(loc)
    if parts and parts[-1] == "[key]":
        parts.pop()
    out, node = "", body
    for i, part in enumerate(parts):
        if body is not None and i < len(parts) - 1:
            if isinstance(node, dict) and isinstance(part, str) and part not in node:
                continue  # not a key of the body: a union member's name
            node = node[part] if _has(node, part) else None
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or (str(loc[0]) if loc else "body")


def _has(node: Any, part: int | str) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def validation_error(exc: RequestValidationError) -> HttpError:
    """422 for the first error of ``exc``: a field path, or ``field: null`` for malformed JSON."""
    errors = exc.errors()
    if not errors:
        return HttpError(422, "invalid_request", "invalid request", "body")
    first = errors[0]
    if first.get("type") == "json_invalid":
        loc = first.get("loc", ())
        where = loc[-1] if loc and isinstance(loc[-1], int) else 0
        reason = (first.get("ctx") or {}).get("error", "invalid JSON")
        doc = exc.body if isinstance(exc.body, str) else ""
        return HttpError(422, "invalid_request", f"the body is not valid JSON: {json.JSONDecodeError(reason, doc, where)}")
    field = field_path(first["loc"], exc.body if first["loc"][:1] == ("body",) else None)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return HttpError(422, "invalid_request", f"{field}: {first['msg']}{more}", field)


def http_exception_error(request: Request, exc: StarletteHTTPException) -> HttpError:
    """Starlette's routing and body errors (404, 405, 400, ...) as error answers."""
    message = f"{request.method} {request.url.path}: {exc.detail}"
    return HttpError(exc.status_code, _HTTP_TYPES.get(exc.status_code, "http_error"), message, headers=exc.headers)


Translate = Callable[[Any], HttpError]
OnError = Callable[[Request, HttpError], None]
Shape = Callable[[HttpError], JSONResponse]
"""Another body shape for the same error (``install_error_handlers``' ``shapes``)."""

_OPENAI_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    409: "invalid_request_error", 413: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error",
}  # fmt: skip


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorBody(BaseModel):
    """The body of every non-2xx answer of the OpenAI-compatible routes (:func:`openai_error_response`)."""

    error: OpenAIErrorDetail


OPENAI_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": OpenAIErrorBody, "description": "a client error: 400 invalid (param names it), 401, 403, 404, 409, 413"},
    "5XX": {"model": OpenAIErrorBody, "description": "a server error: 500, 502 (the agent failed), 503, 504"},
}
"""The ``responses=`` of an OpenAI-compatible route: OpenAI's error body for every 4xx and 5xx."""


def openai_error_response(err: HttpError) -> JSONResponse:
    """``err`` in OpenAI's error body ``{"error": {"message", "type", "param", "code"}}``: ``type``
    is OpenAI's class of the status (``invalid_request_error``, ``authentication_error``, ...,
    ``server_error`` for 5xx), ``param`` the field path, ``code`` our stable type name. A 422 is
    answered 400, as OpenAI answers an invalid request (source: the OpenAI API reference, "Error
    codes", and the ``openai`` SDK, which picks its exception class by the status)."""
    status = 400 if err.status == 422 else err.status
    kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    body = {"error": {"message": err.message, "type": kind, "param": err.field, "code": err.type}}
    return JSONResponse(body, status_code=status, headers=err.headers or None)


def install_error_handlers(
    app: FastAPI, translate: Mapping[type[Exception], Translate] | None = None, on_error: OnError | None = None,
    shapes: Mapping[str, Shape] | None = None,
) -> None:  # fmt: skip
    """Answer every error of ``app`` with :class:`ErrorBody`.

    ``translate`` maps an app's own exception classes (and their subclasses) to the answer;
    ``on_error`` sees every answer (metrics). Unexpected exceptions answer 500 and are logged.
    ``shapes``: path prefix -> the body shape of the errors of the routes under it.
    """

    def answer(request: Request, err: HttpError) -> JSONResponse:
        if on_error is not None:
            on_error(request, err)
        return shaped(shapes, request.url.path, err)

    async def _validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        err = validation_error(exc)
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if err.field == "body" and media != "application/json":
            err.message += f" (send the body as JSON with Content-Type: application/json; this one was {media or 'not given'!r})"
        return answer(request, err)

    async def _http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return answer(request, http_exception_error(request, exc))

    async def _own(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HttpError)
        return answer(request, exc)

    def _translated(convert: Translate) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
        async def handler(request: Request, exc: Exception) -> JSONResponse:
            return answer(request, convert(exc))

        return handler

    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return answer(request, HttpError(500, "internal_error", f"unexpected {type(exc).__name__}; the server log has the details"))

    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(HttpError, _own)
    for exc_class, convert in (translate or {}).items():
        app.add_exception_handler(exc_class, _translated(convert))
    app.add_exception_handler(Exception, _internal)


def shaped(shapes: Mapping[str, Shape] | None, path: str, err: HttpError) -> JSONResponse:
    """``err`` in the shape of the first prefix of ``shapes`` that ``path`` starts with, else :class:`ErrorBody`."""
    for prefix, shape in (shapes or {}).items():
        if path.startswith(prefix):
            return shape(err)
    return err.response()


def error_responses(*statuses: int, descriptions: Mapping[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route that may answer ``statuses``, each with :class:`ErrorBody`.

    ``descriptions`` overrides the generic description of a status (``{503: "Redis is down"}``).
    """
    described = {**_DESCRIPTIONS, **(descriptions or {})}
    return {status: {"model": ErrorBody, "description": described.get(status, "error")} for status in statuses}


_JSON_ESCAPE = re.compile(rb"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)


def lone_surrogate_at(body: bytes) -> int | None:
    """The byte offset of the first ``\\uD800``-``\\uDFFF`` escape in JSON text that is not half of
    a surrogate pair, or None. Python's JSON parser takes such an escape (RFC 8259 allows the
    syntax) and yields a string that is not Unicode, which breaks later (validation, encoding,
    Redis) instead of at the request: the body is refused up front."""
    if b"\\u" not in body and b"\\U" not in body:
        return None
    pending: int | None = None  # the offset of a high surrogate waiting for its low half
    for m in _JSON_ESCAPE.finditer(body):
        escape = m.group(1)
        code = int(escape[1:], 16) if len(escape) == 5 else None
        if pending is not None and (code is None or not 0xDC00 <= code <= 0xDFFF or m.start() != pending + 6):
            return pending
        if code is not None and 0xD800 <= code <= 0xDBFF:
            pending = m.start()
        elif code is not None and 0xDC00 <= code <= 0xDFFF and pending is None:
            return m.start()
        else:
            pending = None
    return pending


class BodyLimit:
    """ASGI middleware: 413 (``limit``, ``field: "body"``) for a request body over ``max_bytes``,
    by Content-Length or while it streams in; 422 (``invalid_request``, ``field: null``) for a
    JSON body with a lone surrogate escape (``lone_surrogate_at``).

    A streamed body over the limit gets the 413 at once; the app then sees the client gone and
    whatever it still sends is dropped.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, shapes: Mapping[str, Shape] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.shapes = shapes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                return await self._refuse(scope, receive, send)
        seen, refused = 0, False
        parts: list[bytes] = []

        async def limited_receive() -> dict[str, Any]:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                refused = True
                await self._refuse(scope, receive, send)
                return {"type": "http.disconnect"}
            if message.get("type") == "http.request":
                parts.append(chunk)
                if not message.get("more_body", False):
                    at = lone_surrogate_at(parts[0] if len(parts) == 1 else b"".join(parts))
                    if at is not None:
                        refused = True
                        message_text = f"the body is not valid Unicode: a lone surrogate escape at byte {at}"
                        await shaped(self.shapes, scope.get("path", ""), HttpError(422, "invalid_request", message_text))(
                            scope, receive, send
                        )
                        return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            if not refused:
                await send(message)

        await self.app(scope, limited_receive, guarded_send)

    async def _refuse(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        err = HttpError(413, "limit", f"the request body is over {self.max_bytes} bytes", "body")
        await shaped(self.shapes, scope.get("path", ""), err)(scope, receive, send)
