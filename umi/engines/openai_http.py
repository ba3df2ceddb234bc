"""HTTP to an OpenAI-compatible server: ``/v1/completions`` (plain and streamed) and ``/health``.

Transport failures become :class:`EngineUnavailable` (the service answers 503 + Retry-After), an
answer that does not come within the request timeout :class:`EngineTimeout`; error answers become
:class:`EngineRequestError`, except 503, which is also "unavailable", and vLLM's 400 for a prompt
plus ``max_tokens`` over the context length, :class:`ContextTooLong` (its message says "maximum
context length" in every vLLM version: ``vllm/entrypoints/openai/serving_engine.py``
``_validate_input``). An in-stream ``{"error": ...}`` event (vLLM's
``completion_stream_generator`` when the engine fails mid-stream) is an :class:`EngineRequestError`
with status 500.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from umi.engines.base import (
    Completion,
    CompletionParams,
    ContextTooLong,
    EngineRequestError,
    EngineTimeout,
    EngineUnavailable,
    StreamEvent,
    TextDelta,
)
from umi.sse import iter_events
from umi.tracing import inject_httpx

HEALTH_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 5.0
_CONTEXT_LENGTH_MESSAGE = "maximum context length"


def message_of(body: Any) -> str:
    """The message of an error body in the OpenAI, vLLM or FastAPI shape."""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and "message" in err:
            return str(err["message"])
        if isinstance(err, str):
            return err
        for key in ("message", "detail"):
            if key in body:
                return str(body[key])
    return json.dumps(body)[:500]


def error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or f"HTTP {response.status_code}"
    return message_of(body)


def _token_logprobs(choice: dict[str, Any]) -> tuple[float | None, ...] | None:
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, dict) or logprobs.get("token_logprobs") is None:
        return None
    return tuple(logprobs["token_logprobs"])


def _usage(body: dict[str, Any]) -> tuple[int | None, int | None]:
    usage = body.get("usage") or {}
    return usage.get("prompt_tokens"), usage.get("completion_tokens")


class CompletionsClient:
    """One engine's HTTP endpoint. ``retry_after`` gives the Retry-After for failures."""

    def __init__(self, base_url: str, request_timeout_s: float, retry_after: Callable[[], int]) -> None:
        self.base_url = base_url.rstrip("/")
        self._retry_after = retry_after
        timeout = httpx.Timeout(request_timeout_s, connect=CONNECT_TIMEOUT_S)
        # The role service's current span travels to the engine (vLLM continues the trace).
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, event_hooks={"request": [inject_httpx]})

    async def aclose(self) -> None:
        await self._http.aclose()

    def _unavailable(self, exc: Exception | str) -> EngineUnavailable:
        if isinstance(exc, httpx.ReadTimeout):
            return EngineTimeout(f"engine at {self.base_url} did not answer within the request timeout", self._retry_after())
        what = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        return EngineUnavailable(f"engine at {self.base_url} is unreachable ({what})", self._retry_after())

    def _raise_for_status(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        message = error_message(response)
        if response.status_code == 503:
            raise self._unavailable(f"HTTP 503: {message}")
        if response.status_code == 400 and _CONTEXT_LENGTH_MESSAGE in message:
            raise ContextTooLong(f"engine answered HTTP 400: {message}", 400)
        raise EngineRequestError(f"engine answered HTTP {response.status_code}: {message}", response.status_code)

    async def health(self, timeout_s: float = HEALTH_TIMEOUT_S) -> bool:
        try:
            response = await self._http.get("/health", timeout=timeout_s)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Any other call (admin endpoints of vLLM); transport errors become unavailable."""
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self._unavailable(exc) from exc
        self._raise_for_status(response)
        return response

    async def complete(self, model: str, prompt: str, params: CompletionParams) -> Completion:
        body = {"model": model, "prompt": prompt, **params.body()}
        response = await self.request("POST", "/v1/completions", json=body)
        data = response.json()
        choice = data["choices"][0]
        prompt_tokens, completion_tokens = _usage(data)
        return Completion(
            choice.get("text") or "", prompt_tokens, completion_tokens, choice.get("finish_reason"), _token_logprobs(choice)
        )

    async def stream(self, model: str, prompt: str, params: CompletionParams) -> AsyncIterator[StreamEvent]:
        body = {
            "model": model,
            "prompt": prompt,
            "stream": True,
            "stream_options": {"include_usage": True},
            **params.body(),
        }
        parts: list[str] = []
        prompt_tokens = completion_tokens = None
        finish_reason = None
        try:
            async with self._http.stream("POST", "/v1/completions", json=body) as response:
                if response.status_code >= 400:
                    await response.aread()
                    self._raise_for_status(response)
                async for event in iter_events(response.aiter_lines()):
                    if event.data.strip() == "[DONE]":
                        break
                    data = event.json()
                    if "error" in data:
                        raise EngineRequestError(f"engine stream failed: {message_of(data)}", 500)
                    usage = _usage(data)
                    if usage != (None, None):
                        prompt_tokens, completion_tokens = usage
                    for choice in data.get("choices") or []:
                        text = choice.get("text") or ""
                        finish_reason = choice.get("finish_reason") or finish_reason
                        if text:
                            parts.append(text)
                            yield TextDelta(text)
        except httpx.HTTPError as exc:
            raise self._unavailable(exc) from exc
        if finish_reason is None:
            # A stream that ends without a finish reason was cut (the engine died mid-request).
            raise self._unavailable("the stream ended before the generation finished")
        yield Completion("".join(parts), prompt_tokens, completion_tokens, finish_reason)

