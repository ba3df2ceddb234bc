"""Helpers for the trace tests and bench/tracing.py.

``memory_spans()``: the process's tracer provider with an in-memory exporter (installed once per
process: OpenTelemetry allows one global provider); ``OtlpReceiver``: a local OTLP/HTTP
``/v1/traces`` receiver (protobuf) that keeps the spans other processes export to it;
``ScriptedEngine``: an OpenAI-compatible ``/v1/completions`` server whose answers follow the role
(the request's ``model``) and that records each request's ``traceparent``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_exporter: InMemorySpanExporter | None = None


def memory_spans() -> InMemorySpanExporter:
    """The in-memory exporter of this process's tracer provider (installed on first use), cleared."""
    global _exporter
    if _exporter is None:
        _exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
        trace.set_tracer_provider(provider)
    _exporter.clear()
    return _exporter


def by_name(spans: tuple[ReadableSpan, ...] | list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def trace_id_of(traceparent: str) -> str:
    """The trace id (32 hex digits) of a W3C traceparent."""
    return traceparent.split("-")[1]


@dataclass
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


class OtlpReceiver:
    """``POST /v1/traces`` (OTLP/HTTP protobuf); ``spans`` holds what arrived."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        self.lock = threading.Lock()
        app = FastAPI()

        @app.post("/v1/traces")
        async def traces(request: Request) -> Response:
            body = ExportTraceServiceRequest()
            body.ParseFromString(await request.body())
            out = []
            for rs in body.resource_spans:
                attrs = {a.key: _value(a.value) for a in rs.resource.attributes}
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        out.append(ReceivedSpan(
                            service=str(attrs.get("service.name", "")), name=s.name, trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(), parent_span_id=s.parent_span_id.hex(),
                            attributes={a.key: _value(a.value) for a in s.attributes},
                            events=[(e.name, {a.key: _value(a.value) for a in e.attributes}) for e in s.events],
                        ))  # fmt: skip
            with self.lock:
                self.spans.extend(out)
                self.requests += 1
            return Response(ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf")

        self.app = app

    def named(self, name: str) -> list[ReceivedSpan]:
        with self.lock:
            return [s for s in self.spans if s.name == name]


@dataclass
class ScriptedEngine:
    """An OpenAI-compatible completions server for role services with ``engine=url``: the
    planner asks for the tool until the prompt holds an observation, then concludes; the caller
    calls ``tool_name`` with ``{"key": "k"}``; the summarizer answers. ``traceparents`` records
    the ``traceparent`` header of every completion request ("" when there was none)."""

    tool_name: str = "echo"
    traceparents: list[str] = field(default_factory=list)

    def text(self, model: str, prompt: str) -> str:
        if model == "planner":
            if "observation: " in prompt:
                return "I have the result.\n Next: conclusion."
            return "I should call the tool.\n Next: caller."
        if model == "caller":
            return f'Action: {self.tool_name}\nAction Input: {{"key": "k"}}'
        return "The answer is 42."

    def build(self) -> FastAPI:
        app = FastAPI()

        @app.get("/health")
        async def health() -> dict[str, str]:
            return {"status": "ok"}

        @app.post("/v1/completions")
        async def completions(request: Request) -> dict[str, Any]:
            body = await request.json()
            self.traceparents.append(request.headers.get("traceparent", ""))
            text = self.text(body.get("model", ""), body.get("prompt", ""))
            return {
                "id": "cmpl-1", "object": "text_completion", "model": body.get("model"),
                "choices": [{"index": 0, "text": text, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16},
            }  # fmt: skip

        return app
