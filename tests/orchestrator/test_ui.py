"""The viewer's data routes (orchestrator.ui) on both builds: the chat list per API key with
filters and pages, a chat with its trace link, a step's exact prompt from the role service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import Request

from tests.orchestrator.conftest import Orch
from tests.support.orchestrator_fakes import FakeRoles, plan
from tests.support.tracing import by_name, memory_spans

KEYS = {"api_keys": "alice-key,bob-key", "admin_token": "admin-token"}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(params=["integration", "in_process"])
def orch_backend(request: pytest.FixtureRequest) -> str:
    return request.param


def test_the_viewer_page_is_served_offline_without_a_key(make_orch: Callable[..., Orch]) -> None:
    page = make_orch(**KEYS).client.get("/ui")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "/ui/api/chats" in html and "Authorization" in html and "sessionStorage" in html
    assert "http://" not in html and "https://" not in html  # nothing loaded from elsewhere


def test_the_list_shows_each_key_its_own_chats_and_the_admin_all(make_orch: Callable[..., Orch], fake_roles: FakeRoles) -> None:
    fake_roles.planner = lambda req: plan("I know.", "conclusion")
    orch = make_orch(**KEYS)
    for key, query in (("alice-key", "weather in Oslo"), ("bob-key", "stock price"), ("alice-key", "weather in Rome")):
        assert orch.client.post("/chat", json={"query": query}, headers=auth(key)).json()["status"] == "completed"
    assert orch.client.get("/ui/api/chats").status_code == 401
    assert orch.client.get("/ui/api/chats", headers=auth("wrong")).status_code == 401
    alice = orch.client.get("/ui/api/chats", headers=auth("alice-key")).json()
    assert [c["query"] for c in alice["chats"]] == ["weather in Rome", "weather in Oslo"] and not alice["more"]
    line = alice["chats"][0]
    assert line["status"] == "completed" and line["steps"] == 2 and line["models"]["summarizer"] == "summarizer-v1"
    assert [c["query"] for c in orch.client.get("/ui/api/chats", headers=auth("bob-key")).json()["chats"]] == ["stock price"]
    everyone = orch.client.get("/ui/api/chats", headers=auth("admin-token")).json()
    assert len(everyone["chats"]) == 3
    found = orch.client.get("/ui/api/chats", params={"q": "OSLO", "status": "completed"}, headers=auth("alice-key")).json()
    assert [c["query"] for c in found["chats"]] == ["weather in Oslo"]
    assert orch.client.get("/ui/api/chats", params={"status": "failed"}, headers=auth("alice-key")).json()["chats"] == []
    first = orch.client.get("/ui/api/chats", params={"limit": 1}, headers=auth("alice-key")).json()
    second = orch.client.get("/ui/api/chats", params={"limit": 1, "offset": 1}, headers=auth("alice-key")).json()
    assert first["more"] and not second["more"]
    assert [first["chats"][0]["query"], second["chats"][0]["query"]] == ["weather in Rome", "weather in Oslo"]


def test_a_chat_view_is_the_document_and_only_its_owner_sees_it(make_orch: Callable[..., Orch], fake_roles: FakeRoles) -> None:
    fake_roles.planner = lambda req: plan("I know.", "conclusion")
    spans = memory_spans()  # tracing on: the chat has a trace, and the view links it
    orch = make_orch(**KEYS, trace_url="http://jaeger:16686/trace/{trace_id}")
    doc = orch.client.post("/chat", json={"query": "hi"}, headers=auth("alice-key")).json()
    view = orch.client.get(f"/ui/api/chats/{doc['chat_id']}", headers=auth("alice-key")).json()
    assert view["chat"]["steps"] == doc["steps"] and view["query"] == "hi"
    (root,) = by_name(spans.get_finished_spans(), "invoke_agent umi")
    assert view["trace_id"] == f"{root.context.trace_id:032x}"
    assert view["trace_url"] == f"http://jaeger:16686/trace/{view['trace_id']}"
    assert orch.client.get(f"/ui/api/chats/{doc['chat_id']}", headers=auth("bob-key")).status_code == 404


@pytest.mark.parametrize("orch_backend", ["integration"])  # the prompt comes from the role service over HTTP
def test_a_steps_prompt_is_the_role_services_render_of_the_history_before_it(
    make_orch: Callable[..., Orch], fake_roles: FakeRoles
) -> None:
    seen: list[dict[str, Any]] = []

    @fake_roles.app.post("/v1/render")
    async def render(request: Request) -> dict[str, Any]:
        body = await request.json()
        seen.append(body)
        return {"prompt": "PROMPT " + " | ".join(t["content"] for t in body["history"]), "prompt_tokens": 7, "truncated": False}

    orch = make_orch()
    doc = orch.chat(query="q?", tools=[{"type": "function", "function": {"name": "client_side", "description": "d"}}]).json()
    assert [s["role"] for s in doc["steps"]] == ["planner", "caller"]
    caller = orch.client.get(f"/ui/api/chats/{doc['chat_id']}/prompt/1").json()
    assert caller["role"] == "caller" and caller["render"]["prompt_tokens"] == 7
    assert caller["render"]["prompt"] == "PROMPT q? | " + doc["steps"][0]["turn"]
    assert seen[-1]["thought"] == doc["steps"][0]["turn"] and seen[-1]["tools"][0]["function"]["name"] == "client_side"
    planner = orch.client.get(f"/ui/api/chats/{doc['chat_id']}/prompt/0").json()
    assert planner["render"]["prompt"] == "PROMPT q?" and "thought" not in seen[-1]
    assert orch.client.get(f"/ui/api/chats/{doc['chat_id']}/prompt/9").status_code == 404
