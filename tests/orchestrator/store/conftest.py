"""The chat-store backends the conformance suite runs against, behind one harness."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from orchestrator.metrics import Metrics
from orchestrator.models import ChatRequest, Step
from orchestrator.store import ChatStore, InMemoryChatStore, NewChat, RedisChatStore, connect


class FakeClock:
    """Seconds since the epoch that move only when a test says so."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass
class Backend:
    """Makes stores of one backend and lets time pass for them."""

    name: str
    open: Callable[[float, float], Any]
    """(ttl_s, lease_ttl_s) -> an async context manager yielding a ChatStore."""
    elapse: Callable[[float], Awaitable[None]]
    """Lets at least that many seconds pass on the backend's clock."""


def step(index: int, role: str = "planner", **fields: Any) -> Step:
    values: dict[str, Any] = {"thought": "t", "next": "caller", "turn": "t Next: caller."} if role == "planner" else {}
    values.update(fields)
    return Step(index=index, role=role, started_at=0, latency_ms=1, **values)


def new_chat(
    query: str = "q", owner: str = "", fingerprint: str = "f", chat_id: str | None = None, trace: str = ""
) -> NewChat:
    request = ChatRequest(query=query, chat_id=chat_id, metadata={"team": "a"})
    return NewChat(request=request, fingerprint=fingerprint, owner=owner, trace=trace)


@pytest.fixture(params=["redis", "memory"])
def backend(request: pytest.FixtureRequest, key_prefix: str) -> Iterator[Backend]:
    if request.param == "memory":
        clock = FakeClock()

        @asynccontextmanager
        async def open_memory(ttl_s: float, lease_ttl_s: float) -> AsyncIterator[ChatStore]:
            store = InMemoryChatStore(ttl_s, lease_ttl_s, clock=clock)
            yield store
            await store.close()

        async def advance(seconds: float) -> None:
            clock.now += seconds

        yield Backend("memory", open_memory, advance)
        return

    redis_url = request.getfixturevalue("redis_url")

    @asynccontextmanager
    async def open_redis(ttl_s: float, lease_ttl_s: float) -> AsyncIterator[ChatStore]:
        store = RedisChatStore(connect(redis_url, 2, 8), key_prefix, int(ttl_s), lease_ttl_s, Metrics())
        try:
            yield store
        finally:
            await store.close()

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds)  # Redis' own clock: real time must pass

    yield Backend("redis", open_redis, sleep)


@pytest.fixture
def run_with_store(backend: Backend) -> Callable[..., Any]:
    """Runs ``body(store)`` in a fresh event loop with a store of the backend under test."""

    def run(body: Callable[[ChatStore], Awaitable[Any]], ttl_s: float = 600, lease_ttl_s: float = 30) -> Any:
        async def main() -> Any:
            async with backend.open(ttl_s, lease_ttl_s) as store:
                return await body(store)

        return asyncio.run(main())

    return run
