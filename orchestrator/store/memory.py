"""The in-memory backend of the chat store: the same rules as Redis (``orchestrator.store.base``),
in one process, for fast tests and single-process experiments.

Only use it where losing every chat on exit is fine: nothing is persisted and other processes
cannot see it. Times are ``clock()`` (default ``time.time``, seconds); a test may pass its own.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from orchestrator.models import Step
from orchestrator.store.base import (
    LIST_LIMIT_MAX,
    ChatGone,
    ChatPage,
    ChatSummary,
    ChatUpdate,
    ClaimedChat,
    Created,
    IndexConflict,
    Lease,
    LeaseLost,
    NewChat,
    NotInStatus,
    StoredChat,
    summary_matches,
)


@dataclass
class _Record:
    chat: StoredChat  # steps live in ``steps``, not in ``chat.steps``
    fingerprint: str
    create_id: str
    token: int = 1
    lease_until: float | None = None
    expires_at: float = 0.0
    last_write: str | None = None
    steps: list[Step] = field(default_factory=list)


class InMemoryChatStore:
    """The chat store in a dict (``orchestrator.store.base.ChatStore``); not shared across processes."""

    def __init__(self, ttl_s: float, lease_ttl_s: float, clock: Callable[[], float] = time.time):
        self.ttl_s = ttl_s
        self.lease_ttl_s = lease_ttl_s
        self.clock = clock
        self._chats: dict[str, _Record] = {}
        self._changed: asyncio.Condition | None = None  # made in the running loop, on first wait

    # ------------------------------------------------------------ helpers

    def _live(self, chat_id: str) -> _Record | None:
        record = self._chats.get(chat_id)
        if record is not None and record.expires_at <= self.clock():
            del self._chats[chat_id]
            return None
        return record

    def _touch(self, record: _Record, now: float) -> None:
        record.expires_at = now + self.ttl_s

    def _hold(self, record: _Record, owner: str, now: float) -> None:
        record.chat.lease_owner = owner
        record.lease_until = now + self.lease_ttl_s

    def _release(self, record: _Record) -> None:
        record.chat.lease_owner = None
        record.lease_until = None

    def _add_steps(self, record: _Record, steps: list[Step], now: float) -> int:
        record.steps.extend(steps)
        record.chat.next_index += len(steps)
        record.chat.updated_at = now
        return record.chat.next_index

    async def _notify(self) -> None:
        if self._changed is not None:
            async with self._changed:
                self._changed.notify_all()

    # ------------------------------------------------------------ writes

    async def create(self, chat_id: str, lease_owner: str, chat: NewChat) -> Created:
        now = self.clock()
        record = self._live(chat_id)
        if record is not None:
            return Created(created=False, fingerprint=record.fingerprint, owner=record.chat.owner)
        stored = StoredChat(
            chat_id=chat_id, status="running", next_index=0, owner=chat.owner,
            request_json=chat.request.model_dump_json(), metadata=dict(chat.request.metadata),
            created_at=now, updated_at=now, trace=chat.trace,
        )  # fmt: skip
        record = _Record(chat=stored, fingerprint=chat.fingerprint, create_id=uuid.uuid4().hex)
        self._hold(record, lease_owner, now)
        self._touch(record, now)
        self._chats[chat_id] = record
        return Created(created=True, token=1, at=now)

    async def append(
        self, chat_id: str, lease: Lease, expected_index: int, steps: list[Step],
        update: ChatUpdate | None = None, *, write_id: str | None = None,
    ) -> tuple[int, float]:  # fmt: skip
        now = self.clock()
        record = self._live(chat_id)
        if record is None:
            raise ChatGone("the chat does not exist")
        if write_id is not None and record.last_write == write_id:
            return record.chat.next_index, now
        if record.token != lease.token:
            raise LeaseLost(f"the chat's fencing token is {record.token} now")
        if record.chat.status != "running":
            raise NotInStatus(record.chat.status)
        if record.chat.next_index != expected_index:
            raise IndexConflict(f"the chat's next step index is {record.chat.next_index}")
        record.last_write = write_id or uuid.uuid4().hex
        next_index = self._add_steps(record, steps, now)
        if update is not None:
            self._apply(record.chat, update)
        if update is not None and update.settles:
            self._release(record)
        else:
            self._hold(record, lease.owner, now)
        self._touch(record, now)
        await self._notify()
        return next_index, now

    @staticmethod
    def _apply(chat: StoredChat, update: ChatUpdate) -> None:
        if update.status is not None:
            chat.status = update.status
        if update.answer is not None:
            chat.answer = update.answer
        if update.error is not None:
            chat.error = update.error
        if update.pending is not None:
            chat.pending = list(update.pending)
        chat.models.update(update.models)
        chat.tool_calls.update(update.tool_calls)

    async def resume_with_outputs(
        self, chat_id: str, lease_owner: str, expected_index: int, steps: list[Step], write_id: str
    ) -> int:
        now = self.clock()
        record = self._live(chat_id)
        if record is None:
            raise ChatGone("the chat does not exist")
        if record.last_write == write_id:
            return record.token
        if record.chat.status != "requires_action":
            raise NotInStatus(record.chat.status)
        if record.chat.next_index != expected_index:
            raise IndexConflict(f"the chat's next step index is {record.chat.next_index}")
        record.token += 1
        record.last_write = write_id
        record.chat.status = "running"
        record.chat.pending = []
        self._add_steps(record, steps, now)
        self._hold(record, lease_owner, now)
        self._touch(record, now)
        await self._notify()
        return record.token

    async def claim_expired(self, lease_owner: str, limit: int) -> list[ClaimedChat]:
        now = self.clock()
        expired = sorted(
            (r.lease_until, chat_id) for chat_id, r in list(self._chats.items())
            if self._live(chat_id) is not None and r.chat.status == "running"
            and r.lease_until is not None and r.lease_until <= now
        )  # fmt: skip
        claimed = []
        for _, chat_id in expired[:limit]:
            record = self._chats[chat_id]
            record.token += 1
            record.chat.interruptions += 1
            self._hold(record, lease_owner, now)
            claimed.append(ClaimedChat(chat_id, record.token))
        return claimed

    async def renew(self, lease_owner: str, leases: dict[str, int]) -> list[str]:
        now, lost = self.clock(), []
        for chat_id, token in leases.items():
            record = self._live(chat_id)
            if record is None or record.token != token:
                lost.append(chat_id)
            elif record.chat.status == "running":
                self._hold(record, lease_owner, now)
        return lost

    async def delete(self, chat_id: str) -> bool:
        existed = self._live(chat_id) is not None
        self._chats.pop(chat_id, None)
        await self._notify()
        return existed

    # ------------------------------------------------------------ reads

    async def load(self, chat_id: str, after: int = -1) -> StoredChat | None:
        record = self._live(chat_id)
        if record is None:
            return None
        chat = record.chat
        return replace(
            chat, metadata=dict(chat.metadata), pending=list(chat.pending), models=dict(chat.models),
            tool_calls=dict(chat.tool_calls), steps=[s for s in record.steps if s.index > after],
        )  # fmt: skip

    async def wait_for_steps(self, chat_id: str, after: int, block_ms: int) -> list[Step]:
        if self._changed is None:
            self._changed = asyncio.Condition()

        def ready() -> list[Step]:
            record = self._live(chat_id)
            return [] if record is None else [s for s in record.steps if s.index > after]

        try:
            async with asyncio.timeout(block_ms / 1000), self._changed:
                await self._changed.wait_for(lambda: bool(ready()) or self._live(chat_id) is None)
        except TimeoutError:
            pass
        return ready()

    async def list_chats(
        self, owner: str | None, *, status: str | None = None, text: str | None = None, offset: int = 0, limit: int = 50
    ) -> ChatPage:
        limit = max(0, min(limit, LIST_LIMIT_MAX))
        records = [r for chat_id, r in list(self._chats.items()) if self._live(chat_id) is not None]
        records.sort(key=lambda r: r.chat.created_at, reverse=True)
        matches = []
        for record in records:
            chat = record.chat
            if owner is not None and chat.owner != owner:
                continue
            summary = ChatSummary(
                chat_id=chat.chat_id, status=chat.status, query=chat.request.query, steps=chat.next_index,
                models=dict(chat.models), created_at=chat.created_at, updated_at=chat.updated_at,
                error_type=chat.error.type if chat.error else None,
            )  # fmt: skip
            if summary_matches(summary, status, text):
                matches.append(summary)
        page = matches[max(0, offset) : max(0, offset) + limit]
        return ChatPage(chats=page, more=len(matches) > max(0, offset) + limit)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._chats.clear()
