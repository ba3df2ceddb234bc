"""One role's request path: render the prompt, fit it, generate on the leased deployment, parse.

Streaming answers ``text/event-stream`` (``umi.sse``): ``token`` events ``{"text": delta}``, then
one ``result`` event with the whole response body, or one ``error`` event (``umi.http_errors.ErrorBody``). The
first engine event is awaited before the answer starts, so an engine that is down still gets
a plain 503 with Retry-After rather than a stream that fails at once.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack

from opentelemetry.trace import Span
from pydantic import BaseModel

from umi.engines import Completion, CompletionParams, EngineError, EngineUnavailable, StreamEvent, TextDelta
from umi.format import Turn, render_prompt
from umi.format.constraints import role_grammar, structured_outputs
from umi.roleapi import RenderResponse, Usage
from umi.service.deployment import Deployment
from umi.http_errors import HttpError
from umi.service.errors import as_service_error
from umi.service.metrics import ServiceMetrics
from umi.service.prompt_fit import FittedPrompt, PromptFitter, PromptParts, PromptTooLong
from umi.service.roles import WARM_UP_HISTORY, WARM_UP_TOOLS, ResponseMeta, RoleSpec, prompt_inputs
from umi.service.settings import ServiceSettings
from umi import tracing as t
from umi.service import tracing
from umi.service.swap import WeightsManager
from umi.sse import encode_event



class RoleRunner:
    def __init__(self, spec: RoleSpec, settings: ServiceSettings, manager: WeightsManager, metrics: ServiceMetrics) -> None:
        self.spec = spec
        self.settings = settings
        self.manager = manager
        self.metrics = metrics

    # --------------------------------------------------------------- input
    def params(self, request: BaseModel) -> CompletionParams:
        defaults = self.spec.sampling
        sampling = getattr(request, "sampling", None)
        temperature = self.settings.temperature if self.settings.temperature is not None else defaults.temperature
        max_tokens = self.settings.max_new_tokens or defaults.max_tokens
        if sampling is not None:
            temperature = sampling.temperature if sampling.temperature is not None else temperature
            max_tokens = sampling.max_tokens or max_tokens
        return CompletionParams(
            max_tokens=max_tokens,
            temperature=temperature,
            stop=defaults.stop,
            top_p=sampling.top_p if sampling is not None else None,
            seed=sampling.seed if sampling is not None else None,
            structured_outputs=self.structured_outputs(request),
        )

    def structured_outputs(self, request: BaseModel) -> dict[str, str] | None:
        """The constraint of UMI_CONSTRAINED_DECODING for this request (all its tools), or None."""
        mode = self.settings.constraint_mode(self.spec.role)
        if mode == "off":
            return None
        tools, _ = prompt_inputs(request)
        return structured_outputs(role_grammar(self.spec.role, tools, mode, self.settings.prompt_variant))

    def prompt(self, request: BaseModel) -> PromptParts:
        tools, thought = prompt_inputs(request)
        history: list[Turn] = getattr(request, "history", [])
        return PromptParts(self.spec.role, tools, history, thought, self.settings.prompt_variant, self.settings.system_prefix)

    def fit(self, fitter: PromptFitter, prompt: PromptParts, params: CompletionParams) -> FittedPrompt:
        """The prompt fitted to the context with UMI_CONTEXT_POLICY; counted in the metrics."""
        try:
            fitted = fitter.fit_parts(prompt, params.max_tokens, self.settings.context_policy)
        except PromptTooLong as exc:
            raise HttpError(422, "invalid_request", f"sampling.max_tokens: {exc}", "sampling.max_tokens") from None
        if fitted.fit is not None:
            self.metrics.count_fit(fitted.fit.actions)
        return fitted

    # -------------------------------------------------------------- render
    def render(self, request: BaseModel) -> RenderResponse:
        fitter = self.manager.current.fitter if self.manager.current else self.manager.fitter
        if fitter is None:
            raise EngineUnavailable("the tokenizer is loading", self.manager.retry_after_s())
        fitted = self.fit(fitter, self.prompt(request), self.params(request))
        return RenderResponse(prompt=fitted.text, prompt_tokens=fitted.tokens, truncated=fitted.truncated, fit=fitted.fit)

    # ------------------------------------------------------------ generate
    def _respond(
        self, request: BaseModel, deployment: Deployment, fitted: FittedPrompt, completion: Completion, started: float,
        span: Span | None = None,
    ) -> BaseModel:  # fmt: skip
        prompt_tokens = completion.prompt_tokens if completion.prompt_tokens is not None else fitted.tokens
        completion_tokens = completion.completion_tokens
        if completion_tokens is None:
            completion_tokens = deployment.fitter.count(completion.text, special_tokens=False)
        self.metrics.count_tokens(prompt_tokens, completion_tokens)
        meta = ResponseMeta(
            text=completion.text,
            model=deployment.weights.model_info(),
            usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens),
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            fit=fitted.fit,
        )
        if span is not None and span.is_recording():
            span.set_attributes({
                t.REQUEST_MODEL: deployment.weights.name, t.RESPONSE_MODEL: deployment.weights.version,
                t.INPUT_TOKENS: prompt_tokens, t.OUTPUT_TOKENS: completion_tokens,
            })  # fmt: skip
        return self.spec.build_response(completion.text, request, meta)

    async def generate(self, request: BaseModel, headers: Mapping[str, str] | None = None) -> BaseModel:
        """``headers``: the incoming request's, whose ``traceparent`` the span continues."""
        span = tracing.start_generation(self.spec.role, headers)
        with tracing.trace.use_span(span, end_on_exit=True):
            started = time.perf_counter()
            params = self.params(request)
            with tracing.phase("render"):
                prompt = self.prompt(request)
            async with self.manager.serving() as deployment:
                with tracing.phase("prompt_fit"):
                    fitted = self.fit(deployment.fitter, prompt, params)
                with tracing.phase("engine"):
                    completion = await deployment.engine.complete(deployment.served_model, fitted.text, params)
                with tracing.phase("parse"):
                    return self._respond(request, deployment, fitted, completion, started, span)

    async def open_stream(self, request: BaseModel, headers: Mapping[str, str] | None = None) -> AsyncIterator[bytes]:
        """Start the generation; raise before the first byte when it cannot start. The span
        (``generate``'s) ends with the stream."""
        span = tracing.start_generation(self.spec.role, headers)
        started = time.perf_counter()
        stack = AsyncExitStack()
        stack.callback(span.end)
        try:
            with tracing.trace.use_span(span, end_on_exit=False):
                params = self.params(request)
                with tracing.phase("render"):
                    prompt = self.prompt(request)
                deployment = await stack.enter_async_context(self.manager.serving())
                with tracing.phase("prompt_fit"):
                    fitted = self.fit(deployment.fitter, prompt, params)
                with tracing.phase("engine"):
                    events = deployment.engine.stream(deployment.served_model, fitted.text, params)
                    stack.push_async_callback(events.aclose)  # type: ignore[attr-defined]
                    first = await events.__anext__()
        except BaseException:
            await stack.aclose()
            raise
        return self._sse(request, deployment, fitted, events, first, stack, started, span)

    async def _sse(
        self,
        request: BaseModel,
        deployment: Deployment,
        fitted: FittedPrompt,
        events: AsyncIterator[StreamEvent],
        first: StreamEvent,
        stack: AsyncExitStack,
        started: float,
        span: Span | None = None,
    ) -> AsyncIterator[bytes]:
        async with stack:
            event: StreamEvent | None = first
            try:
                while event is not None:
                    if isinstance(event, TextDelta):
                        yield encode_event("token", {"text": event.text})
                    else:
                        body = self._respond(request, deployment, fitted, event, started, span)
                        yield encode_event("result", body.model_dump(mode="json"))
                        return
                    event = await anext(events, None)
            except (EngineError, HttpError) as exc:
                err = as_service_error(exc)
                if span is not None:
                    t.record_error(span, err.type, err.message, exc)
                self.metrics.count_error(self.spec.path, err.type)
                yield encode_event("error", err.body())


async def warm_up(spec: RoleSpec, settings: ServiceSettings, deployment: Deployment) -> None:
    """One short generation on the role's own template; raises what the engine raised."""
    thought = WARM_UP_HISTORY[-1].content if spec.role == "caller" else ""
    prompt = render_prompt(spec.role, WARM_UP_TOOLS, WARM_UP_HISTORY, thought, settings.prompt_variant, settings.system_prefix)
    params = CompletionParams(max_tokens=settings.warmup_max_tokens, temperature=0.0, stop=spec.sampling.stop)
    fitted = deployment.fitter.fit(prompt, params.max_tokens)
    await deployment.engine.complete(deployment.served_model, fitted.text, params)
