"""The orchestrator's traces (orchestrator.tracing, umi.tracing) on an in-memory span exporter:
one trace per chat, a span per step with the GenAI attributes, the traceparent sent to tools,
a resumed chat continuing its trace, errors on spans, trace ids in log lines, off by default."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest
from opentelemetry.trace import StatusCode

from orchestrator.logs import ContextFilter
from umi.logs import JsonFormatter
from tests.orchestrator.conftest import Orch
from tests.support.orchestrator_fakes import Fail, FakeRoles, ToolServer, tool
from tests.support.tracing import by_name, memory_spans, trace_id_of
from umi import tracing


@pytest.fixture
def orch_backend() -> str:
    return "in_process"


@pytest.fixture
def spans():  # type: ignore[no-untyped-def]
    return memory_spans()


def test_a_chat_is_one_trace_with_a_span_per_step_and_the_genai_attributes(
    spans, make_orch: Callable[..., Orch], tool_server: ToolServer
) -> None:
    orch = make_orch()
    doc = orch.chat(query="weather?", tools=[tool("echo", f"{tool_server.url}/echo")]).json()
    assert doc["status"] == "completed"
    finished = spans.get_finished_spans()
    (root,) = by_name(finished, "invoke_agent umi")
    assert root.parent is None and root.attributes[tracing.CONVERSATION] == doc["chat_id"]
    assert root.attributes[tracing.OPERATION] == "invoke_agent" and root.attributes[tracing.CHAT_STATUS] == "completed"
    trace_id = root.context.trace_id
    ours = [s for s in finished if s.name.split()[0] in ("invoke_agent", "chat", "execute_tool")]
    assert len(ours) == 6 and {s.context.trace_id for s in ours} == {trace_id}

    planners, (caller,), (summarizer,) = (by_name(finished, f"chat {r}") for r in ("planner", "caller", "summarizer"))
    assert [p.attributes[tracing.STEP_INDEX] for p in planners] == [0, 3]
    assert all(s.parent.span_id == root.context.span_id for s in [*planners, caller, summarizer])
    first = planners[0].attributes
    assert (first[tracing.OPERATION], first[tracing.AGENT], first[tracing.REQUEST_MODEL]) == ("chat", "planner", "planner")
    assert first[tracing.RESPONSE_MODEL] == "planner-v1"
    assert first[tracing.INPUT_TOKENS] == 10 and first[tracing.OUTPUT_TOKENS] > 0
    step = doc["steps"][1]
    assert caller.attributes[tracing.TOOL_NAME] == "echo" and caller.attributes[tracing.TOOL_CALL_ID] == step["tool_call_id"]
    assert summarizer.attributes[tracing.RESPONSE_MODEL] == "summarizer-v1"

    (execute,) = by_name(finished, "execute_tool echo")
    assert execute.parent.span_id == caller.context.span_id
    assert execute.attributes[tracing.OPERATION] == "execute_tool" and execute.attributes[tracing.STEP_INDEX] == 2
    assert execute.attributes[tracing.TOOL_CALL_ID] == step["tool_call_id"]
    sent = tool_server.headers[-1]["traceparent"]
    assert sent.split("-")[1:3] == [f"{trace_id:032x}", f"{execute.context.span_id:016x}"]


def test_a_chat_resumed_with_tool_outputs_continues_its_trace_with_a_resumed_event(
    spans, make_orch: Callable[..., Orch]
) -> None:
    orch = make_orch()
    doc = orch.chat(query="weather?", tools=[tool("client_side")]).json()
    assert doc["status"] == "requires_action"
    (first,) = by_name(spans.get_finished_spans(), "invoke_agent umi")
    call_id = doc["pending_tool_calls"][0]["tool_call_id"]
    out = orch.client.post(f"/chat/{doc['chat_id']}/tool_outputs", json={"outputs": [{"tool_call_id": call_id, "output": "9"}]})
    assert out.json()["status"] == "completed"
    runs = by_name(spans.get_finished_spans(), "invoke_agent umi")
    assert len(runs) == 2
    second = runs[1]
    assert second.context.trace_id == first.context.trace_id and second.parent.span_id == first.context.span_id
    (event,) = second.events
    assert event.name == "resumed" and event.attributes["reason"] == "the client's tool outputs"
    assert event.attributes["next_step"] == 3
    assert first.attributes[tracing.CHAT_STATUS] == "requires_action"


def test_a_role_service_error_marks_its_step_span_failed(spans, make_orch: Callable[..., Orch], fake_roles: FakeRoles) -> None:
    fake_roles.planner = lambda req: Fail(500, "engine exploded")
    orch = make_orch(role_max_attempts=1)
    assert orch.chat(query="q").json()["status"] == "failed"
    (planner,) = by_name(spans.get_finished_spans(), "chat planner")
    assert planner.status.status_code == StatusCode.ERROR and planner.attributes[tracing.ERROR_TYPE] == "role_service"
    assert any(e.name == "exception" for e in planner.events)


def test_a_failing_tool_marks_its_span_with_the_observations_error_kind(
    spans, make_orch: Callable[..., Orch], tool_server: ToolServer
) -> None:
    orch = make_orch()
    assert orch.chat(query="q", tools=[tool("fail", f"{tool_server.url}/fail")]).json()["status"] == "completed"
    (execute,) = by_name(spans.get_finished_spans(), "execute_tool fail")
    assert execute.status.status_code == StatusCode.ERROR and execute.attributes[tracing.ERROR_TYPE] == "http_status"


def test_log_lines_inside_a_span_carry_its_trace_and_span_ids(spans) -> None:
    records: list[logging.LogRecord] = []
    logger = logging.getLogger("umi.orchestrator.test-tracing")
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    handler.addFilter(ContextFilter())
    logger.addHandler(handler)
    try:
        with tracing.tracer().start_as_current_span("work") as span:
            logger.warning("inside")
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = (json.loads(JsonFormatter().format(r)) for r in records)
    ctx = span.get_span_context()
    assert (inside["trace_id"], inside["span_id"]) == (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")
    assert "trace_id" not in outside and "span_id" not in outside


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_tracing_is_off_unless_the_otel_variables_ask(env: dict[str, str], on: bool) -> None:
    assert tracing.tracing_requested(env) is on


def test_outgoing_headers_get_a_traceparent_only_inside_a_recording_span(spans) -> None:
    headers = {"content-type": "application/json"}
    assert tracing.with_trace(headers) is headers
    with tracing.tracer().start_as_current_span("call") as span:
        traced = tracing.with_trace(headers)
    assert traced is not headers and "traceparent" not in headers
    assert trace_id_of(traced["traceparent"]) == f"{span.get_span_context().trace_id:032x}"
    assert tracing.traceparent(span) == traced["traceparent"]
