"""SSE: POST /chat with "stream": true, and GET /chat/{id}/events resumed with Last-Event-ID."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import httpx
from tests.support.orchestrator_fakes import gated_planner, tool

from umi.sse import Event, iter_events


async def collect(
    client: httpx.AsyncClient, method: str, url: str, until: Callable[[Event], bool], on_open: Callable[[], None] | None = None, **kw: Any
) -> list[Event]:
    """Read events until ``until`` says stop (the connection is then dropped)."""
    events: list[Event] = []
    async with client.stream(method, url, **kw) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        if on_open is not None:
            on_open()
        async for event in iter_events(response.aiter_lines()):
            events.append(event)
            if until(event):
                break
    return events


def test_streamed_chat_sends_steps_tokens_and_done(orch, tool_server) -> None:
    async def run() -> list[Event]:
        async with httpx.AsyncClient(base_url=orch.url, timeout=30) as client:
            body = {"query": "q", "tools": [tool("t", tool_server.url + "/echo")], "stream": True}
            return await collect(client, "POST", "/chat", lambda e: e.event == "done", json=body)

    events = asyncio.run(run())
    steps = [e for e in events if e.event == "step"]
    assert [e.id for e in steps] == ["0", "1", "2", "3", "4"]
    assert [e.json()["role"] for e in steps] == ["planner", "caller", "observation", "planner", "summarizer"]
    done = events[-1].json()
    assert events[-1].event == "done" and done["status"] == "completed"
    assert [s for s in done["steps"]] == [e.json() for e in steps]

    tokens = [e.json() for e in events if e.event == "token"]
    assert {t["role"] for t in tokens} == {"planner", "summarizer"}
    for index in (0, 3, 4):
        text = "".join(t["text"] for t in tokens if t["step"] == index)
        expected = done["steps"][index]["turn"]
        assert text == expected
    # a token of a step comes before the step itself
    first_token = next(i for i, e in enumerate(events) if e.event == "token")
    assert first_token < next(i for i, e in enumerate(events) if e.event == "step")
    assert orch.client.get(f"/chat/{done['chat_id']}").json()["steps"] == done["steps"]


def test_events_resume_after_a_reconnect_with_last_event_id_on_another_process(
    make_orch, fake_roles, tool_server
) -> None:
    first, second = make_orch(), make_orch()  # two processes' worth of orchestrator, one Redis
    gate = threading.Event()

    fake_roles.planner = gated_planner(gate)

    async def run() -> tuple[list[Event], list[Event], list[Event]]:
        async with httpx.AsyncClient(timeout=30) as client:
            body = {"query": "q", "tools": [tool("t", tool_server.url + "/echo")], "stream": True, "chat_id": "sse-1"}
            before = await collect(client, "POST", first.url + "/chat", lambda e: e.id == "2", json=body)
            # Reconnect to the other process, which follows the chat through Redis.
            after = await collect(
                client, "GET", second.url + "/chat/sse-1/events", lambda e: e.event == "done",
                on_open=gate.set, headers={"Last-Event-ID": "2"},
            )  # fmt: skip
            replay = await collect(client, "GET", first.url + "/chat/sse-1/events", lambda e: e.event == "done")
            return before, after, replay

    before, after, replay = asyncio.run(run())
    ids_before = [e.id for e in before if e.event == "step"]
    ids_after = [e.id for e in after if e.event == "step"]
    assert ids_before == ["0", "1", "2"]
    assert ids_after == ["3", "4"]  # no step lost, none sent twice
    assert after[-1].event == "done" and after[-1].json()["status"] == "completed"
    assert [e.id for e in replay if e.event == "step"] == ["0", "1", "2", "3", "4"]
    assert replay[-1].json()["steps"] == after[-1].json()["steps"]


def test_events_of_an_unknown_chat_are_404(orch) -> None:
    assert orch.client.get("/chat/nope/events").status_code == 404
    doc = orch.chat(query="q").json()
    bad = orch.client.get(f"/chat/{doc['chat_id']}/events", headers={"Last-Event-ID": "abc"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "Last-Event-ID"
