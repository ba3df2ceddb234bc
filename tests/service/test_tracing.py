"""A role service's traces and logs (umi.service.tracing, umi.logs): a swap or rollback of the
weights is its own span; the role services' JSON log lines carry the trace and span ids. The
request spans (render, prompt_fit, engine, parse) are checked end to end in
tests/orchestrator/test_tracing_e2e.py."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

from opentelemetry.trace import StatusCode

from tests.service.test_weights_manager import FakeFactory, weights_dir, with_manager
from tests.support.tracing import by_name, memory_spans
from umi import tracing
from umi.http_errors import HttpError
from umi.logs import configure_json_logs
from umi.service.swap import WeightsManager


def test_a_swap_and_a_rollback_are_each_a_span_with_the_strategy_and_versions(tmp_path: Path) -> None:
    spans = memory_spans()
    v2 = weights_dir(tmp_path, "v2")

    async def scenario(manager: WeightsManager) -> None:
        await manager.swap(v2, version="v2")
        await manager.rollback()
        try:
            await manager.swap(str(tmp_path / "missing"), version="v3")
        except HttpError:
            pass

    with_manager(tmp_path, FakeFactory(), scenario)
    swap, rollback = by_name(spans.get_finished_spans(), "swap_weights")  # the refused one never started
    assert swap.attributes["umi.swap.strategy"] == "blue_green" and swap.attributes["umi.weights.to"] == "v2"
    assert (swap.attributes["umi.weights.from"], swap.attributes[tracing.ROLE]) == ("v1", "planner")
    assert rollback.attributes["umi.weights.to"] == "v1" and rollback.status.status_code != StatusCode.ERROR


def test_role_service_log_lines_are_json_with_the_trace_and_span_ids() -> None:
    memory_spans()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        handler = configure_json_logs("INFO")
        stream = io.StringIO()
        handler.setStream(stream)  # type: ignore[attr-defined]
        with tracing.tracer().start_as_current_span("generate") as span:
            logging.getLogger("umi.service").info("engine answered", extra={"role": "planner"})
        logging.getLogger("umi.service").info("no span")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    ctx = span.get_span_context()
    assert inside["msg"] == "engine answered" and inside["role"] == "planner" and inside["logger"] == "umi.service"
    assert (inside["trace_id"], inside["span_id"]) == (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")
    assert "trace_id" not in outside
