"""The client of the role services (umi.roleapi): the typed ``RoleClient`` seam the loop uses, and
``HttpRoleClient``, its HTTP implementation: pooled, with bounded retries and streaming.

Retried: connection errors, timeouts, 408, 429 and 5xx (503's ``Retry-After`` is honoured up to
the backoff cap). Not retried: other 4xx (the request is wrong and stays wrong) and a 2xx body
that is not the role API's response, nor anything else that cannot be read (a body or stream
that is not UTF-8 or not JSON: ``bad_response``, never an exception of another kind). Streaming (``"stream": true``) forwards ``token`` deltas
to a callback; a retry after some tokens starts the text again (the callback sees ``attempt``).
Every request carries the chat id in ``X-Umi-Chat-Id`` (``umi.roleapi.CHAT_ID_HEADER``), for
the chat affinity of a load balancer in front of replicas (docs/scaling.md).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from orchestrator.metrics import Metrics
from orchestrator.settings import Settings
from umi.roleapi import CHAT_ID_HEADER, BackboneResponse, CallResponse, PlanResponse, SummarizeResponse
from umi.sse import iter_events
from umi.tracing import with_trace

R = TypeVar("R", bound=BaseModel)
Role = Literal["planner", "caller", "summarizer", "backbone"]
TokenSink = Callable[[str, int], Awaitable[None]]
"""Called with each generated delta and the attempt number (1, 2, ...)."""


@dataclass(frozen=True)
class RoleRequest:
    """One role request (``umi.roleapi``'s PlanRequest, CallRequest, SummarizeRequest, StepRequest)."""

    history: list[dict[str, str]]
    """Typed turns (``{"role", "content"}``), the user's query first."""
    tools_json: str | None = None
    """The chat's tools as a JSON array, serialised once per chat; None for the summarizer."""
    thought: str | None = None
    """The caller only: the planner's turn the call follows."""
    sampling_json: str | None = None
    """The request's ``sampling`` object (``umi.roleapi.SamplingParams``) as JSON; None: the role's defaults."""
    chat_id: str | None = None
    """The chat the request is a step of: sent as ``X-Umi-Chat-Id`` (load-balancer affinity); None: not sent."""


class RoleClient(Protocol):
    """What the agent loop asks of the role services. Each method answers that role's response
    model or raises ``RoleError`` (after the implementation's own retries)."""

    async def plan(self, request: RoleRequest, on_token: TokenSink | None = None) -> PlanResponse: ...

    async def call(self, request: RoleRequest, on_token: TokenSink | None = None) -> CallResponse: ...

    async def summarize(self, request: RoleRequest, on_token: TokenSink | None = None) -> SummarizeResponse: ...

    async def step(self, request: RoleRequest, on_token: TokenSink | None = None) -> BackboneResponse:
        """Single-model mode: the backbone's next step."""
        ...

    def urls_in_use(self) -> dict[str, str]:
        """role -> where its requests go (shown by ``GET /ready``)."""
        ...

    async def aclose(self) -> None: ...

_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_BACKOFF_CAP_S = 10.0
_JSON = {"content-type": "application/json"}
KEEPALIVE_S = 4.0
"""Idle pooled connections close before uvicorn's 5 s (the role services' and vLLM's servers),
so that a request rarely meets a connection the server is closing."""


class RoleError(Exception):
    """A role request failed: ``kind`` is connection, timeout, stream, http_status or bad_response."""

    def __init__(self, role: str, kind: str, message: str, status_code: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.role = role
        self.kind = kind
        self.message = message
        self.status_code = status_code
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.kind in ("connection", "timeout", "stream") or self.status_code in _RETRY_STATUS


def encode_body(
    tools_json: str | None, history: list[dict[str, str]], thought: str | None, stream: bool, sampling_json: str | None = None
) -> bytes:
    """A role request. ``tools_json`` (and ``sampling_json``) are serialised once per chat and spliced in as they are."""
    parts = []
    if tools_json is not None:
        parts.append(f'"tools":{tools_json}')
    parts.append(f'"history":{json.dumps(history, separators=(",", ":"))}')
    if thought is not None:
        parts.append(f'"thought":{json.dumps(thought)}')
    if stream:
        parts.append('"stream":true')
    if sampling_json is not None:
        parts.append(f'"sampling":{sampling_json}')
    return ("{" + ",".join(parts) + "}").encode()


def _error_message(body: bytes) -> str:
    try:
        detail = json.loads(body).get("error", {})
        return str(detail.get("message") or detail)
    except (ValueError, AttributeError):
        return body[:500].decode("utf-8", "replace")


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        return float(headers["Retry-After"])
    except (KeyError, ValueError):
        return None


async def _lines(stream: aiohttp.StreamReader) -> AsyncIterator[str]:
    """Text lines of a response body, of any length."""
    pending = ""
    async for chunk in stream.iter_any():
        pending += chunk.decode("utf-8")
        *lines, pending = pending.split("\n")
        for line in lines:
            yield line
    if pending:
        yield pending


class HttpRoleClient:
    """``RoleClient`` over HTTP to the role services (the URLs of ``Settings``)."""

    PATHS = {"planner": "/v1/plan", "caller": "/v1/call", "summarizer": "/v1/summarize", "backbone": "/v1/step"}

    def __init__(self, settings: Settings, metrics: Metrics):
        """Build inside the running event loop (the pooled session belongs to it)."""
        self.settings = settings
        self.metrics = metrics
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=settings.role_max_connections, limit_per_host=0, ttl_dns_cache=60,
                keepalive_timeout=KEEPALIVE_S,
            ),  # fmt: skip
            timeout=aiohttp.ClientTimeout(total=settings.role_timeout_s, connect=min(10.0, settings.role_timeout_s)),
        )
        bases = {
            "planner": settings.planner_url, "caller": settings.caller_url,
            "summarizer": settings.summarizer_url, "backbone": settings.backbone_url or "",
        }  # fmt: skip
        self.urls = {role: bases[role].rstrip("/") + path for role, path in self.PATHS.items()}

    async def aclose(self) -> None:
        await self.session.close()

    def urls_in_use(self) -> dict[str, str]:
        roles = ("backbone",) if self.settings.single_model else ("planner", "caller", "summarizer")
        return {role: self.urls[role] for role in roles}

    async def plan(self, request: RoleRequest, on_token: TokenSink | None = None) -> PlanResponse:
        return await self._request("planner", PlanResponse, request, on_token)

    async def call(self, request: RoleRequest, on_token: TokenSink | None = None) -> CallResponse:
        return await self._request("caller", CallResponse, request, on_token)

    async def summarize(self, request: RoleRequest, on_token: TokenSink | None = None) -> SummarizeResponse:
        return await self._request("summarizer", SummarizeResponse, request, on_token)

    async def step(self, request: RoleRequest, on_token: TokenSink | None = None) -> BackboneResponse:
        return await self._request("backbone", BackboneResponse, request, on_token)

    async def _request(self, role: Role, model: type[R], request: RoleRequest, on_token: TokenSink | None) -> R:
        """POST one role request; the parsed response model of that role."""
        body = encode_body(request.tools_json, request.history, request.thought, on_token is not None, request.sampling_json)
        headers = _JSON if request.chat_id is None else {**_JSON, CHAT_ID_HEADER: request.chat_id}
        started = time.perf_counter()
        try:
            for attempt in range(1, self.settings.role_max_attempts + 1):
                try:
                    return await self._attempt(role, model, body, headers, on_token, attempt)
                except RoleError as exc:
                    self.metrics.role_errors.labels(role, exc.kind).inc()
                    if not exc.retryable or attempt == self.settings.role_max_attempts:
                        raise
                    await asyncio.sleep(self._backoff(attempt, exc.retry_after))
            raise AssertionError("unreachable")
        finally:
            self.metrics.role_seconds.labels(role).observe(time.perf_counter() - started)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        delay = self.settings.role_backoff_s * (2 ** (attempt - 1)) * (0.5 + random.random())
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, _BACKOFF_CAP_S)

    async def _attempt(
        self, role: str, model: type[R], body: bytes, headers: Mapping[str, str], on_token: TokenSink | None, attempt: int
    ) -> R:  # fmt: skip
        try:
            async with self.session.post(self.urls[role], data=body, headers=with_trace(headers)) as response:
                if on_token is None or response.status != 200 or response.content_type != "text/event-stream":
                    data = await response.read()
                    self._raise_for_status(role, response.status, data, response.headers)
                    return self._parse(role, model, data)
                async for event in iter_events(_lines(response.content)):
                    if event.event == "token":
                        await on_token(str(event.json().get("text", "")), attempt)
                    elif event.event == "result":
                        return self._parse(role, model, event.data)
                    elif event.event == "error":
                        raise RoleError(role, "stream", f"{role} stream error: {event.data[:500]}")
                raise RoleError(role, "stream", f"{role} stream ended without a result")
        except TimeoutError as exc:
            raise RoleError(role, "timeout", f"{role} timed out after {self.settings.role_timeout_s:g} s") from exc
        except aiohttp.ClientError as exc:
            raise RoleError(role, "connection", f"{role} unreachable at {self.urls[role]}: {exc!r}") from exc
        except (ValueError, TypeError, AttributeError) as exc:  # undecodable text, a token event that is not JSON...
            raise RoleError(role, "bad_response", f"{role} answered what cannot be read: {type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _raise_for_status(role: str, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        if status >= 300:
            raise RoleError(
                role, "http_status", f"{role} answered {status}: {_error_message(body)}",
                status_code=status, retry_after=_retry_after(headers),
            )  # fmt: skip

    @staticmethod
    def _parse(role: str, model: type[R], data: bytes | str) -> R:
        try:
            return model.model_validate_json(data)
        except ValidationError as exc:
            raise RoleError(role, "bad_response", f"{role} answered a body that is not a {model.__name__}: {exc}") from exc
