"""Redis failover with nothing lost: kill -9 the primary of a Sentinel group under load.

A primary, two replicas and three Sentinels on loopback (``tests.support.redis_sentinel``); the
orchestrator reaches them through ``redis+sentinel://`` and waits for one replica on every write
(``UMI_REDIS_WAIT_REPLICAS=1``). While a few chats run tool after tool, the primary is killed
with SIGKILL; the Sentinels promote a replica. Every chat completes with every step once, in
order, and every tool call ran exactly once. The write unavailability window (kill -> first
write acknowledged by the new primary and a replica) is printed (run with ``-s`` to see it).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from redis.sentinel import Sentinel

from tests.support.orchestrator_fakes import call, plan, query_of, summary, tool
from tests.support.redis_sentinel import RedisSentinelGroup
from tests.support.redis_server import redis_server_binary

from orchestrator.store.redis_store import redis_node_urls, sentinel_url_parts

CHATS = 6
TOOL_CALLS = 6
ROLE_DELAY_S = 0.08


@pytest.fixture
def sentinel_group(tmp_path: Path) -> Iterator[RedisSentinelGroup]:
    group = RedisSentinelGroup(redis_server_binary(), tmp_path)
    try:
        group.start()
        yield group
    finally:
        group.stop()


def observations(req) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for turn in req.history if turn.role == "observation")


async def slow_planner(req):  # type: ignore[no-untyped-def]
    await asyncio.sleep(ROLE_DELAY_S)
    return plan("Enough.", "conclusion") if observations(req) >= TOOL_CALLS else plan("Once more.", "caller")


async def keyed_caller(req):  # type: ignore[no-untyped-def]
    await asyncio.sleep(ROLE_DELAY_S)
    return call(req.tooldocs()[0].Name, {"key": f"{query_of(req)}-{observations(req)}"})


def write_window_s(group: RedisSentinelGroup, killed_at: float, timeout_s: float = 30) -> float:
    """Seconds from the kill until a write is acknowledged by the new primary and one replica."""
    sentinels, service, _, _ = sentinel_url_parts(group.url)
    primary = Sentinel(sentinels, socket_timeout=0.2).master_for(service, socket_timeout=0.2, socket_connect_timeout=0.2)
    try:
        while time.monotonic() < killed_at + timeout_s:
            try:
                primary.set("umi-test:probe", "1")
                if int(primary.execute_command("WAIT", 1, 200)) >= 1:
                    return time.monotonic() - killed_at
            except redis.RedisError:
                pass
            time.sleep(0.02)
        raise AssertionError("no write was acknowledged after the failover")
    finally:
        primary.close()


def test_sentinel_urls_name_every_sentinel_and_the_service() -> None:
    parts = sentinel_url_parts("redis+sentinel://:s%40cret@10.0.0.1:26379,sentinel-b,[::1]:26380/umi/2")
    assert parts == ([("10.0.0.1", 26379), ("sentinel-b", 26379), ("::1", 26380)], "umi", 2, "s@cret")
    assert sentinel_url_parts("redis+sentinel://h:1/umi") == ([("h", 1)], "umi", 0, None)
    assert redis_node_urls("redis+sentinel://h:1,[::1]:2/umi") == ["redis://h:1", "redis://[::1]:2"]
    assert redis_node_urls("redis://r:6379/0") == ["redis://r:6379/0"]
    for bad in ("redis://h:1/umi", "redis+sentinel://h:1", "redis+sentinel:///umi"):
        with pytest.raises(ValueError):
            sentinel_url_parts(bad)


def test_killing_the_primary_under_load_loses_no_step_and_runs_no_tool_twice(
    sentinel_group: RedisSentinelGroup, make_orch, fake_roles, tool_server
) -> None:  # fmt: skip
    fake_roles.planner, fake_roles.caller = slow_planner, keyed_caller
    fake_roles.summarizer = lambda req: summary("done")
    orch = make_orch(redis_url=sentinel_group.url, redis_wait_replicas=1, redis_wait_timeout_ms=500, redis_timeout_s=1)
    assert orch.client.get("/ready").status_code == 200

    results: dict[str, httpx.Response] = {}

    def run(chat_id: str) -> None:
        body = {"query": chat_id, "chat_id": chat_id, "tools": [tool("t", tool_server.url + "/echo")]}
        with httpx.Client(timeout=120) as client:
            results[chat_id] = client.post(orch.url + "/chat", json=body)

    ids = [f"failover-{n}" for n in range(CHATS)]
    threads = [threading.Thread(target=run, args=(chat_id,)) for chat_id in ids]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while tool_server.total() < CHATS:  # every chat exists and is calling tools
        assert time.monotonic() < deadline, "the chats never got going"
        time.sleep(0.02)

    old = sentinel_group.kill_primary()
    killed_at = time.monotonic()
    window_s = write_window_s(sentinel_group, killed_at)
    assert sentinel_group.primary_port() != old
    for thread in threads:
        thread.join(timeout=120)

    for chat_id in ids:
        response = results[chat_id]
        doc = response.json()
        assert response.status_code == 200 and doc["status"] == "completed", doc
        roles = [s["role"] for s in doc["steps"]]
        assert [s["index"] for s in doc["steps"]] == list(range(len(roles)))  # none lost, none twice
        assert roles == ["planner", "caller", "observation"] * TOOL_CALLS + ["planner", "summarizer"], roles
        assert orch.client.get(f"/chat/{chat_id}").json()["steps"] == doc["steps"]
    assert set(tool_server.executions.values()) == {1}  # no tool ran twice
    assert len(tool_server.executions) == CHATS * TOOL_CALLS
    print(f"\nwrite unavailability window after kill -9 of the primary: {window_s:.2f} s")
