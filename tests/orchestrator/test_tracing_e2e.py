"""Traces end to end: orchestrator -> role services -> engine, and -> tool, in one trace.

The role services are the real apps (render, prompt fit, engine call, parse) on the tiny model's
tokenizer, with a scripted OpenAI-compatible engine (``tests.support.tracing.ScriptedEngine``)
instead of a model: random weights would not follow the planner's format, and the trace is what
is under test. A second test kills an orchestrator process (-9) mid-chat, with traces exported
over OTLP/HTTP to a receiver on loopback, and checks that the process that resumes the chat
continues its trace.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
import redis
from opentelemetry.trace import SpanKind

from services import caller, planner, summarizer
from tests.orchestrator.conftest import Orch
from tests.orchestrator.test_resume import post_in_background, wait_until
from tests.support.orchestrator_fakes import FakeRoles, ServerGroup, ToolServer, gated_planner, tool
from tests.support.servers import role_service, service_settings
from tests.support.tracing import OtlpReceiver, ScriptedEngine, by_name, memory_spans, trace_id_of
from umi import tracing

ROLES = {"planner": planner.ROLE, "caller": caller.ROLE, "summarizer": summarizer.ROLE}


@pytest.fixture
def role_urls(servers: ServerGroup, tiny_models: dict[str, Path]) -> Iterator[tuple[dict[str, str], ScriptedEngine]]:
    engine = ScriptedEngine(tool_name="echo")
    engine_url = servers.start(engine.build()).url  # type: ignore[attr-defined]
    with ExitStack() as stack:
        urls = {}
        for role, spec in ROLES.items():
            settings = service_settings(
                engine="url", engine_url=engine_url, engine_model=role, model=str(tiny_models["v1"]), model_version="v1"
            )
            urls[role] = str(stack.enter_context(role_service(spec, settings)).base_url)
        yield urls, engine


def test_one_trace_runs_through_the_orchestrator_the_role_services_the_engine_and_the_tool(
    make_orch: Callable[..., Orch], role_urls: tuple[dict[str, str], ScriptedEngine], tool_server: ToolServer
) -> None:
    urls, engine = role_urls
    spans = memory_spans()
    engine.traceparents.clear()
    orch = make_orch(planner_url=urls["planner"], caller_url=urls["caller"], summarizer_url=urls["summarizer"])
    doc = orch.chat(query="what is 6 x 7?", tools=[tool("echo", f"{tool_server.url}/echo")]).json()
    assert doc["status"] == "completed", doc
    assert [s["role"] for s in doc["steps"]] == ["planner", "caller", "observation", "planner", "summarizer"]

    finished = spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}
    (root,) = by_name(finished, "invoke_agent umi")
    trace_id = root.context.trace_id

    def ancestors(span):  # type: ignore[no-untyped-def]
        while span.parent is not None and span.parent.span_id in by_id:
            span = by_id[span.parent.span_id]
            yield span

    served = [s for s in finished if s.kind == SpanKind.SERVER and s.name.startswith("chat ")]
    assert sorted(s.name for s in served) == ["chat caller", "chat planner", "chat planner", "chat summarizer"]
    for span in served:  # each role service's span descends from the orchestrator's step span
        assert span.context.trace_id == trace_id
        client = next(a for a in ancestors(span) if a.kind == SpanKind.CLIENT)
        assert client.name == span.name and next(ancestors(client)) is root
        children = sorted(s.name for s in finished if s.parent is not None and s.parent.span_id == span.context.span_id)
        assert children == ["engine", "parse", "prompt_fit", "render"]
        assert span.attributes[tracing.RESPONSE_MODEL] == "v1" and span.attributes[tracing.INPUT_TOKENS] == 11
    engine_spans = {f"{s.context.span_id:016x}" for s in by_name(finished, "engine")}
    sent = [tp for tp in engine.traceparents if tp]
    assert len(sent) == 4 and {trace_id_of(tp) for tp in sent} == {f"{trace_id:032x}"}
    assert {tp.split("-")[2] for tp in sent} == engine_spans  # the engine continues the engine span
    assert trace_id_of(tool_server.headers[-1]["traceparent"]) == f"{trace_id:032x}"


def test_a_chat_resumed_after_kill_9_continues_its_trace_in_the_new_process(
    spawn_orch, fake_roles: FakeRoles, tool_server: ToolServer, servers: ServerGroup, redis_url: str, key_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    receiver = OtlpReceiver()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", servers.start(receiver.app).url)  # type: ignore[attr-defined]
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")  # export every 50 ms, before the kill
    gate = threading.Event()
    fake_roles.planner = gated_planner(gate)
    first = spawn_orch(lease_ttl_s=1, sweep_interval_s=0.2)
    post_in_background(first.url, {"query": "q", "chat_id": "traced", "tools": [tool("t", tool_server.url + "/echo")]})
    wait_until(lambda: len(receiver.named("execute_tool t")) == 1, "the first process exported the tool span")
    first.kill9()
    gate.set()
    second = spawn_orch(lease_ttl_s=1, sweep_interval_s=0.2)
    wait_until(lambda: httpx.get(f"{second.url}/chat/traced", timeout=10).json()["status"] == "completed", "completed")
    wait_until(lambda: len(receiver.named("invoke_agent umi")) == 1, "the resumed run's span arrived")

    stored = redis.Redis.from_url(redis_url, decode_responses=True).hget(f"{key_prefix}chat:traced", "trace")
    (tool_span,) = receiver.named("execute_tool t")
    (resumed,) = receiver.named("invoke_agent umi")  # the first run's span never ended: its process died
    assert stored and trace_id_of(stored) == tool_span.trace_id == resumed.trace_id
    assert resumed.parent_span_id == stored.split("-")[2]  # a child of the chat's first run
    assert resumed.service == "umi-orchestrator"
    ((name, attributes),) = resumed.events
    assert name == "resumed" and attributes["reason"].startswith("lease expired")
    late = [s for s in receiver.spans if s.name.startswith("chat ") and s.trace_id == resumed.trace_id]
    assert any(s.parent_span_id == resumed.span_id for s in late)  # the resumed steps hang under it
