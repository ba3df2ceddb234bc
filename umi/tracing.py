"""Traces: OpenTelemetry spans of the orchestrator and the role services (docs/observability.md).

Configured by the standard ``OTEL_*`` variables and **off by default**: no SDK is installed, and
every span is OpenTelemetry's no-op span (a few hundred nanoseconds; ``bench/tracing.py``), unless

* ``OTEL_TRACES_EXPORTER`` is ``otlp`` or ``console`` (``none``, the default here, keeps it off), or
* an OTLP endpoint is set (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``),

and ``OTEL_SDK_DISABLED`` is not ``true``. The OTLP exporter is ``http/protobuf``
(``opentelemetry-exporter-otlp-proto-http``; it reads the endpoint, headers, timeout and
compression variables itself); the resource takes ``OTEL_SERVICE_NAME`` (default: the service's
own name) and ``OTEL_RESOURCE_ATTRIBUTES``; sampling follows ``OTEL_TRACES_SAMPLER``.

Propagation is W3C Trace Context (``traceparent``, ``tracestate``): ``inject`` adds the current
span's context to outgoing headers (role services, tools, engines), ``extract`` reads an incoming
one. Span names and attributes follow the GenAI semantic conventions (status: development):
``invoke_agent {agent}``, ``chat {model}``, ``execute_tool {tool}``; attribute names are the
constants below.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, MutableMapping
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode

log = logging.getLogger("umi.tracing")

TRACER_NAME = "umi-serve"

# GenAI semantic conventions (https://opentelemetry.io/docs/specs/semconv/gen-ai/), and ours.
OPERATION = "gen_ai.operation.name"
AGENT = "gen_ai.agent.name"
CONVERSATION = "gen_ai.conversation.id"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
ERROR_TYPE = "error.type"
CHAT_ID = "umi.chat.id"
STEP_INDEX = "umi.step.index"
CHAT_STATUS = "umi.chat.status"
ROLE = "umi.role"

_configured = False


def tracing_requested(env: Mapping[str, str] = os.environ) -> bool:
    """Whether the ``OTEL_*`` variables ask for traces (the rule in this module's docstring)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter and exporter != "none":
        return True
    if exporter == "none":
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def configure_tracing(service_name: str, env: Mapping[str, str] = os.environ) -> bool:
    """Install the SDK's tracer provider with a batching exporter when ``env`` asks for traces;
    returns whether it did. Once per process (later calls change nothing).

    Raises ValueError for an exporter other than ``otlp``, ``console`` or ``none``."""
    global _configured
    if _configured or not tracing_requested(env):
        return _configured
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n.strip()] or ["otlp"]
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or service_name})
    resource = resource.merge(OTELResourceDetector().detect())
    provider = TracerProvider(resource=resource)
    for name in names:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        elif name == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        elif name != "none":
            raise ValueError(f"OTEL_TRACES_EXPORTER={name!r}: umi-serve exports otlp (http/protobuf), console or none")
    trace.set_tracer_provider(provider)
    _configured = True
    log.info("traces are exported", extra={"exporters": names, "service_name": resource.attributes.get("service.name")})
    return True


def tracer() -> trace.Tracer:
    """The tracer of umi-serve (a no-op tracer while no SDK is installed)."""
    return trace.get_tracer(TRACER_NAME)


def inject(headers: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Add the current span's ``traceparent`` (and ``tracestate``) to ``headers``; returns them.
    Adds nothing when there is no recording span."""
    propagate.inject(headers)
    return headers


def with_trace(headers: Mapping[str, str]) -> Mapping[str, str]:
    """``headers`` plus the current span's ``traceparent``: a copy inside a recording span,
    ``headers`` themselves otherwise (nothing is copied while tracing is off)."""
    if not trace.get_current_span().is_recording():
        return headers
    out = dict(headers)
    propagate.inject(out)
    return out


async def inject_httpx(request: Any) -> None:
    """An httpx ``event_hooks["request"]`` hook: the request carries the current span's context."""
    if trace.get_current_span().is_recording():
        propagate.inject(request.headers)


def extract(headers: Mapping[str, str]) -> Context:
    """The context an incoming request carries (empty without a valid ``traceparent``)."""
    return propagate.extract(headers)


def traceparent(span: Span) -> str:
    """The W3C ``traceparent`` of ``span`` ("" for a no-op or invalid span)."""
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return ""
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def context_of(traceparent_header: str) -> Context:
    """The context whose remote parent is ``traceparent_header`` (empty when it is "" or invalid)."""
    return extract({"traceparent": traceparent_header}) if traceparent_header else Context()


def record_error(span: Span, error_type: str, message: str = "", exc: BaseException | None = None) -> None:
    """Mark ``span`` failed with ``error.type`` (and the exception as an event, when given)."""
    if exc is not None:
        span.record_exception(exc)
    span.set_attribute(ERROR_TYPE, error_type)
    span.set_status(Status(StatusCode.ERROR, message or error_type))


def set_attributes(span: Span, attributes: Mapping[str, Any]) -> None:
    """Set the attributes that are not None (OpenTelemetry refuses None values)."""
    if span.is_recording():
        span.set_attributes({k: v for k, v in attributes.items() if v is not None})


class TraceLogFilter(logging.Filter):
    """Adds ``trace_id`` and ``span_id`` (hex, as trace back ends show them) to every record
    logged inside a span; records outside any span get none."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid and not hasattr(record, "trace_id"):
            record.trace_id = f"{ctx.trace_id:032x}"
            record.span_id = f"{ctx.span_id:016x}"
        return True
