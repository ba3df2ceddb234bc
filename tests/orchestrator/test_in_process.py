"""The orchestrator in one process: the real app and loop over the in-memory chat store and an
in-process role client (no Redis, no role servers). The real-Redis, real-HTTP suites in this
folder are the integration layer; these check the loop's behaviour quickly."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from orchestrator.api import create_app
from orchestrator.settings import Settings
from orchestrator.store import InMemoryChatStore
from tests.support.orchestrator_fakes import FakeRoles, Fail, InProcessRoles, call, plan, summary, tool


@pytest.fixture
def fake() -> FakeRoles:
    return FakeRoles()


def client_for(fake: FakeRoles, **overrides: Any) -> TestClient:
    settings = Settings(role_backoff_s=0.01, chat_wait_s=30, **overrides)
    app = create_app(
        settings,
        store=lambda s, m: InMemoryChatStore(s.chat_ttl_s, s.lease_ttl_s),
        roles=lambda s, m: InProcessRoles(fake),
    )
    return TestClient(app)


@pytest.fixture
def api(fake: FakeRoles) -> Iterator[TestClient]:
    with client_for(fake) as client:
        yield client


def test_a_client_tool_chat_waits_for_the_output_then_completes(api: TestClient, fake: FakeRoles) -> None:
    chat = api.post("/chat", json={"query": "weather?", "tools": [tool("get_weather")]}).json()
    assert chat["status"] == "requires_action"
    [pending] = chat["pending_tool_calls"]
    assert pending["name"] == "get_weather" and pending["arguments"] == {"q": "weather?"}
    assert chat["models"] == {"planner": "planner-v1", "caller": "caller-v1"}

    done = api.post(f"/chat/{chat['chat_id']}/tool_outputs",
                    json={"outputs": [{"tool_call_id": pending["tool_call_id"], "output": "sunny"}]}).json()  # fmt: skip
    assert done["status"] == "completed" and done["answer"] == "answer: sunny"
    assert [s["role"] for s in done["steps"]] == ["planner", "caller", "observation", "planner", "summarizer"]
    assert api.get(f"/chat/{chat['chat_id']}").json()["steps"] == done["steps"]
    # The caller saw the planner's turn as its thought, the summarizer no tools.
    assert fake.requests["caller"][0]["thought"] == "I need a tool.\n Next: caller."
    assert "tools" not in fake.requests["summarizer"][0]


def test_a_give_up_settles_the_chat_with_the_planner_reason(api: TestClient, fake: FakeRoles) -> None:
    fake.planner = lambda req: plan("No tool can do this.", "give_up")
    chat = api.post("/chat", json={"query": "q"}).json()
    assert chat["status"] == "gave_up" and chat["answer"] == "No tool can do this."
    assert api.get(f"/chat/{chat['chat_id']}").json()["answer"] == "No tool can do this."


def test_a_failing_role_service_fails_the_chat_with_a_typed_error(api: TestClient, fake: FakeRoles) -> None:
    fake.planner = lambda req: Fail(400, "bad prompt")
    chat = api.post("/chat", json={"query": "q"}).json()
    assert chat["status"] == "failed"
    assert chat["error"] == {"type": "role_service", "message": "planner answered 400: bad prompt", "role": "planner",
                             "status_code": 400}  # fmt: skip
    assert api.get(f"/chat/{chat['chat_id']}").json()["error"] == chat["error"]


def test_an_unknown_tool_and_bad_arguments_become_observations(api: TestClient, fake: FakeRoles) -> None:
    calls = iter([call("no_such_tool", {}), call("t", "{not json")])
    fake.caller = lambda req: next(calls)
    fake.planner = lambda req: plan("again", "caller") if len(req.history) < 5 else plan("done", "conclusion")
    chat = api.post("/chat", json={"query": "q", "tools": [tool("t")]}).json()
    observations = [s for s in chat["steps"] if s["role"] == "observation"]
    assert [o["error"] for o in observations] == ["unknown_tool", "invalid_arguments"]
    assert chat["status"] == "completed"


def test_max_steps_ends_a_chat_that_keeps_calling(api: TestClient, fake: FakeRoles) -> None:
    fake.planner = lambda req: plan("Try again.", "caller")
    fake.caller = lambda req: call("nope", {})
    chat = api.post("/chat", json={"query": "q", "tools": [tool("t")], "max_steps": 2}).json()
    assert chat["status"] == "max_steps"
    assert sum(1 for s in chat["steps"] if s["role"] == "planner") == 2


def test_single_model_mode_writes_a_planner_and_a_summarizer_step(fake: FakeRoles) -> None:
    from umi.roleapi import BackboneResponse, ModelInfo, Usage

    fake.backbone = lambda req: BackboneResponse(
        text="t Next: conclusion. Final answer", thought="t", next="conclusion", answer="42", call=None,
        model=ModelInfo(name="bb", version="backbone-v1"), usage=Usage(prompt_tokens=1, completion_tokens=1),
        latency_ms=1.0,
    )  # fmt: skip
    with client_for(fake, backbone_url="http://in-process") as api:
        chat = api.post("/chat", json={"query": "q"}).json()
    assert chat["status"] == "completed" and chat["answer"] == "42"
    assert [s["role"] for s in chat["steps"]] == ["planner", "summarizer"]
    assert chat["models"] == {"backbone": "backbone-v1"}


def test_a_streamed_chat_sends_tokens_steps_and_done(api: TestClient, fake: FakeRoles) -> None:
    fake.planner = lambda req: plan("Nothing to call.", "conclusion")
    fake.summarizer = lambda req: summary("Hello there")
    with api.stream("POST", "/chat", json={"query": "q", "stream": True}) as response:
        text = "".join(response.iter_text())
    events = [line.removeprefix("event: ") for line in text.splitlines() if line.startswith("event: ")]
    assert events[0] == "token" and "step" in events and events[-1] == "done"
