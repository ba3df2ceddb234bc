"""kill -9 of an orchestrator process in the middle of chats; a second process resumes them.

No step is lost or written twice, and no tool runs twice: a call that was running when the
process died is reported lost, unless its endpoint is marked idempotent (then it runs again,
with the same Idempotency-Key).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import redis
from tests.support.metrics import metric_exported
from tests.support.metrics import metric_value as read_metric
from tests.support.orchestrator_fakes import call, gated_planner, tool

from umi.roleapi import CallRequest

HELD_AT_PLANNER = ["k0", "k1", "k2", "k3"]  # the tool ran; the next planner call is in flight
HELD_IN_TOOL = ["k4", "k5"]  # the tool call is running
HELD_IN_IDEMPOTENT_TOOL = ["k6"]
ALL = HELD_AT_PLANNER + HELD_IN_TOOL + HELD_IN_IDEMPOTENT_TOOL


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def post_in_background(url: str, body: dict[str, Any]) -> threading.Thread:
    def post() -> None:
        try:
            httpx.post(url + "/chat", json=body, timeout=60)
        except httpx.HTTPError:
            pass  # the process is killed under this request

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    return thread


def test_kill_9_mid_chat_and_resume_in_another_process(spawn_orch, fake_roles, tool_server) -> None:
    planner_gate = threading.Event()

    def caller(req: CallRequest) -> Any:
        return call("t", {"key": req.history[0].content})

    fake_roles.planner, fake_roles.caller = gated_planner(planner_gate), caller
    endpoints = {q: "/echo" for q in HELD_AT_PLANNER} | {q: "/gate" for q in HELD_IN_TOOL + HELD_IN_IDEMPOTENT_TOOL}

    first = spawn_orch(lease_ttl_s=1, sweep_interval_s=0.2)
    threads = [
        post_in_background(first.url, {
            "query": q, "chat_id": q,
            "tools": [tool("t", tool_server.url + endpoints[q], idempotent=q in HELD_IN_IDEMPOTENT_TOOL)],
        })  # fmt: skip
        for q in ALL
    ]

    def held_planner_calls() -> int:
        with fake_roles.lock:
            return sum(1 for r in fake_roles.requests["planner"] if len(r["history"]) > 2)

    wait_until(lambda: held_planner_calls() == len(HELD_AT_PLANNER), "4 chats wait on the planner")
    wait_until(lambda: tool_server.total() == len(ALL), "every tool call started")
    first.kill9()
    planner_gate.set()
    tool_server.gate.set()
    second = spawn_orch(lease_ttl_s=1, sweep_interval_s=0.2)

    docs: dict[str, dict] = {}

    def all_settled() -> bool:
        for q in ALL:
            doc = httpx.get(f"{second.url}/chat/{q}", timeout=10).json()
            if doc["status"] == "running":
                return False
            docs[q] = doc
        return True

    wait_until(all_settled, "the second process finished every chat")
    for thread in threads:
        thread.join(timeout=10)

    for q in ALL:
        doc = docs[q]
        assert doc["status"] == "completed", (q, doc)
        assert [s["index"] for s in doc["steps"]] == [0, 1, 2, 3, 4], q  # none lost, none twice
        assert [s["role"] for s in doc["steps"]] == ["planner", "caller", "observation", "planner", "summarizer"], q
    for q in HELD_AT_PLANNER:
        assert tool_server.executions[("echo", q)] == 1
        assert docs[q]["steps"][2]["error"] is None
    for q in HELD_IN_TOOL:
        assert tool_server.executions[("gate", q)] == 1  # started once, never again
        assert docs[q]["steps"][2]["error"] == "result_lost"
        assert "was lost" in docs[q]["steps"][2]["content"]
    for q in HELD_IN_IDEMPOTENT_TOOL:
        assert tool_server.executions[("gate", q)] == 2  # marked idempotent: executed again
        keys = [h["idempotency-key"] for h in tool_server.headers if h["idempotency-key"].startswith(f"{q}:")]
        assert keys == [f"{q}:1", f"{q}:1"]  # the same key both times: the tool can tell
        assert docs[q]["steps"][2]["error"] is None

    metrics = httpx.get(second.url + "/metrics", timeout=10).text
    assert f"umi_orchestrator_chats_resumed_total {float(len(ALL))}" in metrics


def test_a_process_whose_lease_was_taken_stops_writing(make_orch, fake_roles, tool_server, redis_url, key_prefix) -> None:
    gate = threading.Event()
    fake_roles.planner = gated_planner(gate)
    first = make_orch(sweep_interval_s=0.2)
    body = {"query": "q", "chat_id": "fenced", "tools": [tool("t", tool_server.url + "/echo")]}
    poster = post_in_background(first.url, body)
    wait_until(lambda: fake_roles.count("planner") == 2, "the chat waits on its second planner call")

    # Another process takes the chat over (what its sweeper does after an expiry): a new token.
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    key = f"{key_prefix}chat:fenced"
    r.hincrby(key, "lease_token", 1)
    r.hset(key, "lease_owner", "someone-else")
    gate.set()

    def first_let_go() -> bool:
        return metric_value(first, "umi_orchestrator_chats_running") == 0

    wait_until(first_let_go, "the first process stopped the chat")
    assert [s["role"] for s in first.client.get("/chat/fenced").json()["steps"]] == ["planner", "caller", "observation"]
    assert r.hget(key, "status") == "running"

    # The chat is the new owner's: once its lease lapses, a sweeper finishes it.
    r.hset(key, "lease_until", 0)
    r.zadd(f"{key_prefix}running", {"fenced": 0})
    wait_until(lambda: first.client.get("/chat/fenced").json()["status"] == "completed", "a sweeper finished it")
    doc = first.client.get("/chat/fenced").json()
    assert [s["index"] for s in doc["steps"]] == [0, 1, 2, 3, 4]
    assert tool_server.total() == 1
    poster.join(timeout=30)  # the first POST, waiting on the chat, is answered too
    r.close()


def metric_value(orch: Any, name: str) -> float:
    text = orch.client.get("/metrics").text
    assert metric_exported(text, name), f"{name} is not exported"
    return read_metric(text, name)
