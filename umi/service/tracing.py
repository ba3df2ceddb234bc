"""A role service's spans (``umi.tracing``; off unless the ``OTEL_*`` variables ask).

    chat {role}          POST <role path>: continues the caller's ``traceparent`` (SERVER)
      render             the prompt from the request (``umi.format``)
      prompt_fit         tokenising and fitting it to the context (``PromptFitter``)
      engine             the engine call; its request carries the ``traceparent`` on to the
                         engine (``vllm serve --otlp-traces-endpoint`` continues it;
                         ``transformers serve`` ignores it)
      parse              the role's parser on the completion
    render               POST /v1/render
    swap_weights         a swap or rollback of the weights, with its strategy and versions

``chat {role}`` carries the GenAI attributes: ``gen_ai.request.model`` (the weights' name),
``gen_ai.response.model`` (their version), ``gen_ai.request.max_tokens``,
``gen_ai.request.temperature``, ``gen_ai.usage.input_tokens`` / ``output_tokens``; an error
marks it failed with ``error.type``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind

from umi import tracing as t


def _parent(headers: Mapping[str, str] | None) -> Context | None:
    """The current context when a server span is already open (FastAPI opens one, continuing the
    incoming traceparent, once a tracer provider is installed); else the incoming traceparent."""
    if headers is None or trace.get_current_span().is_recording():
        return None
    return t.extract(headers)


def start_generation(role: str, headers: Mapping[str, str] | None) -> Span:
    """The (not yet current) span of one generation request, child of the caller's traceparent."""
    context = _parent(headers)
    return t.tracer().start_span(
        f"chat {role}", context=context, kind=SpanKind.SERVER, attributes={t.OPERATION: "chat", t.AGENT: role, t.ROLE: role}
    )


@contextmanager
def phase(name: str) -> Iterator[Span]:
    """A child span of the current one for one phase of a request (render, prompt_fit, engine, parse)."""
    with t.tracer().start_as_current_span(name) as span:
        yield span


@contextmanager
def render_span(role: str, headers: Mapping[str, str]) -> Iterator[Span]:
    with t.tracer().start_as_current_span(
        "render", context=_parent(headers), kind=SpanKind.SERVER, attributes={t.ROLE: role}
    ) as span:
        yield span


@contextmanager
def swap_span(role: str, name: str, version_from: str, version_to: str, strategy: str) -> Iterator[Span]:
    """The span of one swap (or rollback) of the weights."""
    attributes = {t.ROLE: role, "umi.weights.name": name, "umi.weights.from": version_from, "umi.weights.to": version_to,
                  "umi.swap.strategy": strategy}  # fmt: skip
    with t.tracer().start_as_current_span("swap_weights", attributes=attributes) as span:
        yield span


__all__ = ["phase", "render_span", "start_generation", "swap_span", "trace"]
