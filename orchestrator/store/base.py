"""The chat store seam: what the orchestrator asks of any backend, with typed values only.

A chat is a record (its request, status, answer, error, pending client tool calls, model
versions, tool-call records, owner and times) plus an append-only list of steps numbered from 0.
Backends (``RedisChatStore``, ``InMemoryChatStore``) own their layout: no caller sees a key, a
hash field or a row. Every backend keeps these rules (``tests/orchestrator/store/`` is the
conformance suite that holds each backend to them):

* **Atomic writes.** ``append`` writes its steps and its ``ChatUpdate`` together or not at all.
* **Fencing.** A chat has a fencing token that starts at 1 and grows by one each time its
  lease is taken over (``claim_expired``) or it is resumed with tool outputs. A write carries
  the writer's ``Lease``; a stale token is refused (``LeaseLost``), so a process whose lease was
  taken cannot write.
* **Expected index.** A write carries the index it expects to write at; if another write got
  there first it is refused (``IndexConflict``): a step index is written once.
* **Idempotent retries.** A write carries a ``write_id``; the same write retried after a lost
  reply is recognised as applied (same answer), not refused or written twice.
* **Leases.** A running chat is leased to a process until ``lease_until``; ``renew`` extends
  the leases a process still holds; ``claim_expired`` takes over running chats whose lease
  expired, and counts each takeover in the chat's ``interruptions`` (so that a chat whose run
  keeps dying can be stopped). An update whose status is not ``running`` settles the chat and
  releases its lease.
* **Status.** Only a ``running`` chat takes writes (``NotInStatus``); only a chat in
  ``requires_action`` takes tool outputs (``resume_with_outputs``).
* **TTL.** A chat and its steps are forgotten ``ttl_s`` after its last write (``ChatGone``).
* **One clock.** Lease and TTL times are the backend's clock, so processes need no clock sync.
* **Durable before side effects.** A write that returned is not lost by a failover of the
  backend: a caller step recording a tool call ``started`` is stored before the tool runs, so
  the tool never runs twice. ``RedisChatStore`` keeps it with replicas (``WAIT``, set by
  ``UMI_REDIS_WAIT_REPLICAS``, off without replicas); ``InMemoryChatStore`` has no replicas and
  no failover, and ignores it.
* **Listing.** ``list_chats`` lists chats newest first (by creation), per owner (an API key's
  fingerprint) or all of them, from their creation until they are forgotten (deleted or expired
  with the TTL): the trajectory viewer's index.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

from orchestrator.models import ChatDoc, ChatError, ChatRequest, PendingToolCall, Step, chat_usage

ToolCallRecord = Literal["started", "finished", "lost"]
"""What the store records of a server tool call, by the index of its caller step: ``started``
is written with the caller step, before the call goes out (so a resumed chat never runs it twice
silently); ``finished`` with its observation; ``lost`` when a resumed chat gave up on its result."""


# ---------------------------------------------------------------- errors


class StoreError(Exception):
    """A write or read the store refused. Catch this to catch every store error."""


class StoreUnavailable(StoreError):
    """The backend did not answer (connection refused, reset, timeout): retry later."""


class ChatGone(StoreError):
    """The chat does not exist (never created, deleted, or expired)."""


class LeaseLost(StoreError):
    """Another process holds the chat now (its fencing token is newer): this one must not write."""


class IndexConflict(StoreError):
    """The chat already has a step at the index this writer expected to write."""


class NotInStatus(StoreError):
    """The chat is not in the status this operation needs (``status`` says which it is)."""

    def __init__(self, status: str):
        super().__init__(f"the chat is {status}")
        self.status = status


# ---------------------------------------------------------------- values


@dataclass(frozen=True)
class NewChat:
    """What ``create`` stores: the request as the chat runs it, and who created it."""

    request: ChatRequest
    """The request with its final ``chat_id`` and ``stream`` false."""
    fingerprint: str
    """``ChatRequest.fingerprint()``: a second create with the same id must match it."""
    owner: str
    """The API-key fingerprint of the creator ("" without API keys): who may see the chat."""
    trace: str = ""
    """The chat's trace context (W3C traceparent; "" without tracing): a resumed chat continues it."""


@dataclass(frozen=True)
class Lease:
    """A process's right to write a chat: the process (``owner``) and the fencing token."""

    owner: str
    token: int


class ClaimedChat(NamedTuple):
    """A running chat whose lease expired, taken over by ``claim_expired`` with a new token."""

    chat_id: str
    token: int


@dataclass
class ChatUpdate:
    """The chat fields a write changes; ``None`` or empty leaves a field as it is."""

    status: str | None = None
    """The new status; any but ``running`` settles the chat and releases the lease."""
    answer: str | None = None
    error: ChatError | None = None
    pending: list[PendingToolCall] | None = None
    """The client tool calls a chat in ``requires_action`` waits for."""
    models: dict[str, str] = field(default_factory=dict)
    """role -> the weights version that wrote its latest step."""
    tool_calls: dict[int, ToolCallRecord] = field(default_factory=dict)
    """caller step index -> the state of that server tool call."""

    @property
    def settles(self) -> bool:
        return self.status is not None and self.status != "running"


@dataclass(frozen=True)
class Created:
    """What ``create`` answers. ``created`` False: a chat with that id exists already (its
    ``fingerprint`` and ``owner`` are given so the caller can tell a retry from a conflict)."""

    created: bool
    token: int = 0
    fingerprint: str = ""
    owner: str = ""
    at: float = 0.0
    """The backend's time of the creation, seconds since the epoch."""


@dataclass
class StoredChat:
    """A chat as stored: its record and the steps that were loaded (all, or those after an index)."""

    chat_id: str
    status: str
    next_index: int
    """The index the next step will have (the number of steps written)."""
    owner: str
    request_json: str
    """The stored request, parsed on first use of ``request`` (reads that do not need it skip the cost)."""
    metadata: dict[str, Any] = field(default_factory=dict)
    answer: str | None = None
    error: ChatError | None = None
    pending: list[PendingToolCall] = field(default_factory=list)
    models: dict[str, str] = field(default_factory=dict)
    tool_calls: dict[int, ToolCallRecord] = field(default_factory=dict)
    lease_owner: str | None = None
    """The process holding the lease while the chat runs; None once it settled."""
    interruptions: int = 0
    """How many times ``claim_expired`` took the chat over (its last process died or stalled)."""
    created_at: float = 0.0
    updated_at: float = 0.0
    """Seconds since the epoch, on the backend's clock."""
    steps: list[Step] = field(default_factory=list)
    trace: str = ""
    """``NewChat.trace``."""

    @cached_property
    def request(self) -> ChatRequest:
        return ChatRequest.model_validate_json(self.request_json)

    def to_doc(self) -> ChatDoc:
        """The API document; ``steps`` are those that were loaded."""
        return ChatDoc(
            chat_id=self.chat_id, status=self.status, answer=self.answer, steps=self.steps,
            pending_tool_calls=self.pending, models=self.models, usage=chat_usage(self.steps), error=self.error,
            metadata=self.metadata, created_at=self.created_at, updated_at=self.updated_at,
        )  # fmt: skip


@dataclass(frozen=True)
class ChatSummary:
    """One line of ``list_chats``: what a list of chats shows, read without the steps."""

    chat_id: str
    status: str
    query: str
    steps: int
    """The number of steps written."""
    models: dict[str, str]
    """role -> the weights version that wrote its latest step."""
    created_at: float
    updated_at: float
    """Seconds since the epoch, on the backend's clock (``updated_at - created_at``: the chat's time so far)."""
    error_type: str | None = None


@dataclass(frozen=True)
class ChatPage:
    """A page of ``list_chats``; ``more``: chats after this page match too."""

    chats: list[ChatSummary]
    more: bool


LIST_LIMIT_MAX = 200
"""The largest page ``list_chats`` returns."""


def summary_matches(summary: ChatSummary, status: str | None, text: str | None) -> bool:
    """The listing's filters: the status (exact), and ``text`` as a case-insensitive substring of
    the query or the chat id."""
    if status is not None and summary.status != status:
        return False
    if text:
        needle = text.casefold()
        return needle in summary.query.casefold() or needle in summary.chat_id.casefold()
    return True


def metadata_json(request: ChatRequest) -> str:
    """The request's metadata as backends store it beside the request (read without parsing it)."""
    return json.dumps(request.metadata)


# ---------------------------------------------------------------- the seam


@runtime_checkable
class ChatStore(Protocol):
    """Where chats live. All methods raise ``StoreUnavailable`` when the backend does not answer."""

    async def create(self, chat_id: str, lease_owner: str, chat: NewChat) -> Created:
        """Store a new running chat leased to ``lease_owner`` with token 1, or report the
        existing chat with this id. A create retried after a lost reply is recognised as the
        same caller's (``created`` True, the same token)."""
        ...

    async def append(
        self, chat_id: str, lease: Lease, expected_index: int, steps: list[Step],
        update: ChatUpdate | None = None, *, write_id: str | None = None,
    ) -> tuple[int, float]:  # fmt: skip
        """Write ``steps`` (maybe none) at ``expected_index`` and ``update`` at once, extending
        the lease (or releasing it when ``update`` settles the chat). Returns the next index and
        the backend's time of the write (seconds since the epoch). The same ``write_id`` makes
        a retried write idempotent.

        Raises ``LeaseLost``, ``IndexConflict``, ``NotInStatus`` (not running), ``ChatGone``."""
        ...

    async def resume_with_outputs(
        self, chat_id: str, lease_owner: str, expected_index: int, steps: list[Step], write_id: str
    ) -> int:
        """``requires_action`` -> ``running`` with the client's observations, leased to
        ``lease_owner`` under a new token (returned); clears the pending calls.

        Raises ``NotInStatus`` (not requires_action), ``IndexConflict``, ``ChatGone``."""
        ...

    async def claim_expired(self, lease_owner: str, limit: int) -> list[ClaimedChat]:
        """Take over up to ``limit`` running chats whose lease expired, each with a new token;
        each takeover adds one to the chat's ``interruptions``."""
        ...

    async def renew(self, lease_owner: str, leases: dict[str, int]) -> list[str]:
        """Extend the leases (chat id -> token) this process holds; returns the chats whose
        lease another process took (their token changed)."""
        ...

    async def delete(self, chat_id: str) -> bool:
        """Forget the chat and its steps; False if there was none."""
        ...

    async def load(self, chat_id: str, after: int = -1) -> StoredChat | None:
        """The chat's record and its steps after index ``after``; None if it does not exist."""
        ...

    async def wait_for_steps(self, chat_id: str, after: int, block_ms: int) -> list[Step]:
        """Steps after index ``after``; waits up to ``block_ms`` for the next one if there is none."""
        ...

    async def list_chats(
        self, owner: str | None, *, status: str | None = None, text: str | None = None, offset: int = 0, limit: int = 50
    ) -> ChatPage:
        """The chats created by ``owner`` (None: every chat), newest first, that match ``status``
        and ``text`` (``summary_matches``): ``limit`` (at most ``LIST_LIMIT_MAX``) after the first
        ``offset`` matches. A chat is listed from its creation until it is forgotten."""
        ...

    async def ping(self) -> bool:
        """True when the backend answers (raises ``StoreUnavailable`` when it does not)."""
        ...

    async def close(self) -> None:
        ...
