"""Chaos: 20 chats at once against a tool server that answers garbage of every kind (unknown
charset, truncated body, invalid JSON, 10 MB, slow drip, connection reset, redirect, binary).
Every chat settles on its own (none waits for a lease: the lease is longer than the wait), every
garbage answer is an observation, and no tool runs twice."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.support.garbage_tools import PATHS, GarbageToolServer
from tests.support.orchestrator_fakes import tool

EXPECTED_ERROR = {
    "charset": None, "latin1": None, "badjson": None, "huge": None, "binary": None,
    "truncated": "connection", "reset": "connection", "drip": "timeout", "redirect": "http_status",
}  # fmt: skip
CHATS = 20


def test_twenty_chats_against_garbage_tools_all_settle_and_no_tool_runs_twice(make_orch, fake_roles) -> None:
    # A stalled chat would still be running when POST /chat answers (chat_wait_s < lease_ttl_s).
    orch = make_orch(lease_ttl_s=300, chat_wait_s=60, tool_max_response_bytes=1_048_576)
    with GarbageToolServer() as garbage:

        def one(i: int) -> tuple[str, dict]:
            path = PATHS[i % len(PATHS)]
            spec = tool("t", f"{garbage.url}/{path}", idempotent=True, timeout_s=2)
            return path, orch.chat(query=f"chat {i}", tools=[spec]).json()

        with ThreadPoolExecutor(CHATS) as pool:
            results = list(pool.map(one, range(CHATS)))
        hits = dict(garbage.hits)

    for path, doc in results:
        assert doc["status"] == "completed", (path, doc.get("error"))
        observation = doc["steps"][2]
        assert observation["role"] == "observation" and observation["error"] == EXPECTED_ERROR[path], (path, observation)
        assert len(observation["content"]) <= orch.settings.observation_max_chars + 3
        observation["content"].encode("utf-8")
    keys = [(path, f"{doc['chat_id']}:1") for path, doc in results]
    assert sorted(hits) == sorted(keys) and set(hits.values()) == {1}  # each tool ran once, none twice
