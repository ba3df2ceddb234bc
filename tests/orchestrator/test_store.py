"""The Redis data model: atomic fenced step writes, leases, idempotent retries, TTL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from orchestrator.metrics import Metrics
from orchestrator.models import Step
from orchestrator.store import ChatGone, ChatStore, IndexConflict, LeaseLost, NotInStatus, StoreUnavailable, connect


def step(index: int, role: str = "planner") -> Step:
    return Step(index=index, role=role, thought="t", next="caller", turn="t Next: caller.", started_at=0, latency_ms=1)


def with_store(redis_url: str, prefix: str, body: Callable[[ChatStore], Awaitable[Any]], **kw: Any) -> Any:
    async def run() -> Any:
        store = ChatStore(connect(redis_url, 2, 8), prefix, kw.get("ttl_s", 600), kw.get("lease_ttl_s", 30), Metrics())
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(run())


def test_a_process_whose_lease_was_taken_cannot_write(redis_url: str, key_prefix: str) -> None:
    async def body(store: ChatStore) -> None:
        created = await store.create("c1", "proc-a", {"request": "{}"})
        assert created.created and created.token == 1
        assert await store.claim_expired("proc-b", 10) == []  # a live lease is not taken
        await asyncio.sleep(0.15)  # let the 0.1 s lease lapse (not a timing assertion)
        assert await store.claim_expired("proc-b", 10) == [("c1", 2)]
        with pytest.raises(LeaseLost):
            await store.append("c1", "proc-a", 1, 0, [step(0)])
        assert await store.renew("proc-a", {"c1": 1}) == ["c1"]
        assert await store.append("c1", "proc-b", 2, 0, [step(0)]) == (1, pytest.approx(time.time(), abs=60))
        chat = await store.load("c1")
        assert chat is not None and [s.index for s in chat.steps] == [0]
        assert chat.fields["lease_owner"] == "proc-b"

    with_store(redis_url, key_prefix, body, lease_ttl_s=0.1)


def test_a_step_index_is_written_once(redis_url: str, key_prefix: str) -> None:
    async def body(store: ChatStore) -> None:
        await store.create("c2", "p", {"request": "{}"})
        await store.append("c2", "p", 1, 0, [step(0), step(1, "caller")], {"tool:1": "started"})
        with pytest.raises(IndexConflict):
            await store.append("c2", "p", 1, 1, [step(1)])
        # A retried write (same write_id) is recognised as applied, not written twice.
        assert (await store.append("c2", "p", 1, 2, [step(2)], write_id="w-1"))[0] == 3
        assert (await store.append("c2", "p", 1, 2, [step(2)], write_id="w-1"))[0] == 3
        chat = await store.load("c2")
        assert chat is not None and [s.index for s in chat.steps] == [0, 1, 2]
        assert chat.tool_record(1) == "started" and chat.next_index == 3
        assert [s.index for s in (await store.load("c2", after=1)).steps] == [2]  # type: ignore[union-attr]

    with_store(redis_url, key_prefix, body)


def test_a_settled_chat_takes_no_more_steps_and_leaves_the_running_index(redis_url: str, key_prefix: str) -> None:
    async def body(store: ChatStore) -> None:
        await store.create("c3", "p", {"request": "{}"})
        assert await store.redis.zscore(store.running_key, "c3") is not None
        await store.append("c3", "p", 1, 0, [step(0)], {"status": "completed", "answer": "a"}, release=True)
        assert await store.redis.zscore(store.running_key, "c3") is None
        with pytest.raises(NotInStatus):
            await store.append("c3", "p", 1, 1, [step(1)])
        chat = await store.load("c3")
        assert chat is not None and chat.to_doc().answer == "a" and "lease_owner" not in chat.fields

    with_store(redis_url, key_prefix, body)


def test_chats_expire_after_the_ttl_and_a_deleted_chat_cannot_be_written(redis_url: str, key_prefix: str) -> None:
    async def body(store: ChatStore) -> None:
        await store.create("c4", "p", {"request": "{}"})
        await store.append("c4", "p", 1, 0, [step(0)])
        assert 0 < await store.redis.ttl(store.chat_key("c4")) <= 100
        assert 0 < await store.redis.ttl(store.steps_key("c4")) <= 100
        assert await store.delete("c4")
        with pytest.raises(ChatGone):
            await store.append("c4", "p", 1, 1, [step(1)])
        assert await store.redis.exists(store.steps_key("c4")) == 0  # the failed write created nothing

    with_store(redis_url, key_prefix, body, ttl_s=100)


def test_create_is_idempotent(redis_url: str, key_prefix: str) -> None:
    async def body(store: ChatStore) -> None:
        first = await store.create("c5", "p", {"request": "{}", "fingerprint": "f1", "owner": "o"})
        second = await store.create("c5", "q", {"request": "{}", "fingerprint": "f2", "owner": "x"})
        assert first.created and not second.created
        assert (second.fingerprint, second.owner) == ("f1", "o")

    with_store(redis_url, key_prefix, body)


def test_an_unreachable_redis_is_store_unavailable(key_prefix: str) -> None:
    from tests.support.orchestrator_fakes import free_port

    async def body(store: ChatStore) -> None:
        with pytest.raises(StoreUnavailable):
            await store.create("c6", "p", {"request": "{}"})

    with_store(f"redis://127.0.0.1:{free_port()}/0", key_prefix, body)


def test_writes_survive_a_redis_that_forgot_its_scripts(redis_url: str, key_prefix: str) -> None:
    async def body(store: ChatStore) -> None:
        await store.create("c7", "p", {"request": "{}"})
        await store.redis.script_flush()  # what a restarted Redis looks like to a client
        # Three writes in one pipeline: all hit NOSCRIPT, are resent after a load, in their order.
        results = await asyncio.gather(*(store.append("c7", "p", 1, i, [step(i)]) for i in range(3)))
        assert [next_index for next_index, _ in results] == [1, 2, 3]
        chat = await store.load("c7")
        assert chat is not None and [s.index for s in chat.steps] == [0, 1, 2]

    with_store(redis_url, key_prefix, body)
