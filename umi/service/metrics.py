"""Prometheus metrics of one role service, in a registry of its own (several apps may share a process)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from umi.engines import ENGINE_STATES

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
SWITCH_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1)
SWAP_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServiceMetrics:
    def __init__(self, role: str) -> None:
        self.role = role
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("umi_requests", "HTTP requests by endpoint and status code", ["role", "endpoint", "code"], registry=r)
        self.errors = Counter("umi_request_errors", "error answers and stream errors by type", ["role", "endpoint", "type"], registry=r)
        self.latency = Histogram(
            "umi_request_latency_seconds", "request latency (streams: until the last byte)", ["role", "endpoint"],
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.in_flight = Gauge("umi_requests_in_flight", "generations in progress", ["role"], registry=r)
        self.tokens = Counter("umi_tokens", "tokens by kind (prompt, completion)", ["role", "kind"], registry=r)
        self.truncations = Counter(
            "umi_prompt_truncations", "prompts cut from the left to fit the context (cut_history, cut_left)", ["role"], registry=r
        )
        self.fits = Counter(
            "umi_prompt_fits", "prompts made to fit the context, by action (umi.service.prompt_fit)", ["role", "action"], registry=r
        )
        self.swaps = Counter("umi_swaps", "weight swaps by strategy and outcome (ok, refused)", ["role", "strategy", "outcome"], registry=r)
        self.switch_seconds = Histogram(
            "umi_swap_switch_seconds", "from new weights ready to requests switched", ["role"], buckets=SWITCH_BUCKETS, registry=r
        )
        self.swap_seconds = Histogram(
            "umi_swap_duration_seconds", "whole swap, from request to old weights released", ["role", "strategy"],
            buckets=SWAP_BUCKETS, registry=r,
        )
        self.engine_state = Gauge("umi_engine_state", "1 for the serving engine's current state", ["role", "state"], registry=r)
        self.engine_restarts = Counter("umi_engine_restarts", "engine restarts by the supervisor", ["role"], registry=r)
        self.weights = Gauge("umi_weights_info", "1 for the weights now serving", ["role", "name", "version", "kind"], registry=r)
        self.set_engine_state("stopped")

    def set_engine_state(self, state: str) -> None:
        for s in ENGINE_STATES:
            self.engine_state.labels(self.role, s).set(1 if s == state else 0)

    def set_weights(self, name: str, version: str, kind: str) -> None:
        self.weights.clear()
        self.weights.labels(self.role, name, version, kind).set(1)

    def count_tokens(self, prompt: int, completion: int) -> None:
        self.tokens.labels(self.role, "prompt").inc(prompt)
        self.tokens.labels(self.role, "completion").inc(completion)

    def count_fit(self, actions: Iterable[str]) -> None:
        """One prompt that did not fit whole: each action taken, and a truncation when text was cut."""
        actions = list(actions)
        for action in actions:
            self.fits.labels(self.role, action).inc()
        if "cut_history" in actions or "cut_left" in actions:
            self.truncations.labels(self.role).inc()

    def count_error(self, endpoint: str, error_type: str) -> None:
        self.errors.labels(self.role, endpoint, error_type).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class RequestMetricsMiddleware:
    """Counts requests and measures latency until the last byte of the answer (streams included)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics, endpoints: Iterable[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.endpoints = frozenset(endpoints)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        endpoint = path if path in self.endpoints else "other"
        started = time.perf_counter()
        status = {"code": 500}

        async def send_and_record(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            self.metrics.requests.labels(self.metrics.role, endpoint, str(status["code"])).inc()
            self.metrics.latency.labels(self.metrics.role, endpoint).observe(time.perf_counter() - started)
