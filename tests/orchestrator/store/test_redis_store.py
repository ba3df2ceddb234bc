"""What only the Redis backend has: its key layout and TTLs, the running index, an unreachable
server, and a server that forgot its scripts (the shared rules are in test_conformance.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from orchestrator.metrics import Metrics
from orchestrator.store import ChatGone, ChatUpdate, Lease, RedisChatStore, StoreUnavailable, connect
from orchestrator.store.redis_store import Rejection
from tests.orchestrator.store.conftest import new_chat, step
from umi.engines.process import free_port


def with_store(redis_url: str, prefix: str, body: Callable[[RedisChatStore], Awaitable[Any]], **kw: Any) -> Any:
    async def run() -> Any:
        store = RedisChatStore(
            connect(redis_url, 2, 8), prefix, kw.get("ttl_s", 600), kw.get("lease_ttl_s", 30), Metrics(),
            wait_replicas=kw.get("wait_replicas", 0), wait_timeout_ms=kw.get("wait_timeout_ms", 1000),
        )  # fmt: skip
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(run())


def test_running_chats_are_indexed_until_they_settle(redis_url: str, key_prefix: str) -> None:
    async def body(store: RedisChatStore) -> None:
        await store.create("c3", "p", new_chat())
        assert await store.redis.zscore(store.running_key, "c3") is not None
        await store.append("c3", Lease("p", 1), 0, [step(0)], ChatUpdate(status="completed", answer="a"))
        assert await store.redis.zscore(store.running_key, "c3") is None
        assert await store.redis.hget(store.chat_key("c3"), "lease_owner") is None

    with_store(redis_url, key_prefix, body)


def test_both_keys_of_a_chat_carry_the_ttl_and_a_refused_write_creates_no_key(redis_url: str, key_prefix: str) -> None:
    async def body(store: RedisChatStore) -> None:
        await store.create("c4", "p", new_chat())
        await store.append("c4", Lease("p", 1), 0, [step(0)])
        assert 0 < await store.redis.ttl(store.chat_key("c4")) <= 100
        assert 0 < await store.redis.ttl(store.steps_key("c4")) <= 100
        await store.delete("c4")
        with pytest.raises(ChatGone):
            await store.append("c4", Lease("p", 1), 1, [step(1)])
        assert await store.redis.exists(store.chat_key("c4"), store.steps_key("c4")) == 0

    with_store(redis_url, key_prefix, body, ttl_s=100)


def test_the_scripts_name_their_rejections() -> None:
    from orchestrator.store import redis_store

    for script in (redis_store._APPEND, redis_store._RESUME):
        assert "return {-" not in script
    assert {r.name for r in Rejection} == {"LEASE_LOST", "CHAT_GONE", "INDEX_CONFLICT", "NOT_IN_STATUS"}


def test_an_unreachable_redis_is_store_unavailable(key_prefix: str) -> None:
    async def body(store: RedisChatStore) -> None:
        with pytest.raises(StoreUnavailable):
            await store.create("c6", "p", new_chat())

    with_store(f"redis://127.0.0.1:{free_port()}/0", key_prefix, body)


def test_writes_survive_a_redis_that_forgot_its_scripts(redis_url: str, key_prefix: str) -> None:
    async def body(store: RedisChatStore) -> None:
        await store.create("c7", "p", new_chat())
        await store.redis.script_flush()  # what a restarted Redis looks like to a client
        # Three writes in one pipeline: all hit NOSCRIPT, are resent after a load, in their order.
        results = await asyncio.gather(*(store.append("c7", Lease("p", 1), i, [step(i)]) for i in range(3)))
        assert [next_index for next_index, _ in results] == [1, 2, 3]
        chat = await store.load("c7")
        assert chat is not None and [s.index for s in chat.steps] == [0, 1, 2]

    with_store(redis_url, key_prefix, body)


def test_a_write_no_replica_acknowledged_is_unavailable_and_its_retry_is_recognised(redis_url: str, key_prefix: str) -> None:
    """The test Redis has no replica: WAIT 1 answers 0, so the write is not acknowledged (though
    applied); the retry with the same write_id is recognised, not written twice."""

    async def body(store: RedisChatStore) -> None:
        with pytest.raises(StoreUnavailable, match="0 of 1 replicas"):
            await store.create("w1", "p", new_chat())
        store.pipeline.wait_replicas = 0  # as if the replica caught up: the next writes are acknowledged
        assert (await store.load("w1")) is not None
        store.pipeline.wait_replicas = 1
        with pytest.raises(StoreUnavailable):
            await store.append("w1", Lease("p", 1), 0, [step(0)], write_id="once")
        store.pipeline.wait_replicas = 0
        next_index, _ = await store.append("w1", Lease("p", 1), 0, [step(0)], write_id="once")
        assert next_index == 1
        assert [s.index for s in (await store.load("w1")).steps] == [0]  # type: ignore[union-attr]

    with_store(redis_url, key_prefix, body, wait_replicas=1, wait_timeout_ms=10)
