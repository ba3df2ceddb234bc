"""Chat events: an in-process hub for the chats this process runs, and the follower behind SSE.

The Redis stream of steps is the truth. The hub only makes local followers fast (no polling)
and carries ``token`` events, which are never stored. A follower reads the stream from its
position first, then waits on the hub while the chat runs here, or blocks on the stream
(``XREAD BLOCK``) while another process runs it; either way it re-reads from Redis whenever
it may have missed something, so a step is never skipped nor sent twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from orchestrator.models import SETTLED, ChatDoc, Step
from orchestrator.store import ChatStore

_QUEUE_MAX = 10_000
FOLLOW_POLL_S = 1.0
"""How long a follower waits before a keep-alive and a re-check (and an XREAD blocks)."""


@dataclass(frozen=True)
class HubEvent:
    kind: str  # "step", "token", "settled" (data: the ChatDoc) or "detached" (the chat left this process)
    data: Any = None


class Subscription:
    def __init__(self, hub: "EventHub", chat_id: str) -> None:
        self.hub = hub
        self.chat_id = chat_id
        self.queue: asyncio.Queue[HubEvent] = asyncio.Queue(maxsize=_QUEUE_MAX)
        self.overflowed = False

    def put(self, event: HubEvent) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True  # the follower falls back to reading Redis

    def close(self) -> None:
        subs = self.hub._subs.get(self.chat_id)
        if subs is not None:
            subs.discard(self)
            if not subs:
                del self.hub._subs[self.chat_id]


class EventHub:
    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = {}

    def open(self, chat_id: str) -> Subscription:
        """Subscribe before starting what publishes, so that nothing is missed; close() after."""
        sub = Subscription(self, chat_id)
        self._subs.setdefault(chat_id, set()).add(sub)
        return sub

    def has_subscribers(self, chat_id: str) -> bool:
        return chat_id in self._subs

    def publish(self, chat_id: str, kind: str, data: Any = None) -> None:
        subs = self._subs.get(chat_id)
        if subs:
            event = HubEvent(kind, data)
            for sub in subs:
                sub.put(event)


@dataclass(frozen=True)
class Out:
    """One thing for the client: ``step`` (id = index), ``token``, ``done``, ``error`` or ``keepalive``."""

    event: str
    data: Any = None
    id: str | None = None


async def follow(
    store: ChatStore,
    hub: EventHub,
    is_local: Callable[[str], bool],
    chat_id: str,
    after: int,
    poll_s: float = FOLLOW_POLL_S,
    sub: Subscription | None = None,
) -> AsyncIterator[Out]:
    """The chat's steps after index ``after`` as they come, then ``done`` with the whole document
    once the chat is settled (any status but running). Closes ``sub`` (opened here if not given)."""
    block_ms = max(1, int(poll_s * 1000))
    sub = sub or hub.open(chat_id)
    try:
        need_read = True
        while True:
            if need_read:
                chat = await store.load(chat_id, after)
                if chat is None:
                    yield Out("error", {"error": {"type": "not_found", "message": f"chat {chat_id} does not exist"}})
                    return
                for step in chat.steps:
                    yield _step_out(step)
                    after = step.index
                if chat.status in SETTLED:
                    full = await store.load(chat_id)
                    yield Out("done", (full or chat).to_doc())
                    return
                need_read = False
            if is_local(chat_id) and not sub.overflowed:
                try:
                    event = await asyncio.wait_for(sub.queue.get(), poll_s)
                except TimeoutError:
                    yield Out("keepalive")
                    continue
                if event.kind == "token":
                    yield Out("token", event.data)
                elif event.kind == "step" and event.data.index <= after:
                    continue
                elif event.kind == "step" and event.data.index == after + 1:
                    yield _step_out(event.data)
                    after = event.data.index
                elif event.kind == "settled":
                    doc: ChatDoc = event.data
                    for step in doc.steps[after + 1 :]:
                        yield _step_out(step)
                    yield Out("done", doc)
                    return
                else:
                    need_read = True
            else:
                if not await store.wait_for_steps(chat_id, after, block_ms):
                    yield Out("keepalive")
                need_read = True
    finally:
        sub.close()


def _step_out(step: Step) -> Out:
    return Out("step", step, str(step.index))
