"""Where chats live: the ``ChatStore`` seam and its backends.

``base`` holds the protocol, its typed values and errors, and the rules every backend keeps;
``redis_store`` the production backend (``RedisChatStore``: keys, fields and Lua scripts);
``memory`` an in-process backend with the same rules (``InMemoryChatStore``) for fast tests.
"""

from orchestrator.store.base import (
    LIST_LIMIT_MAX,
    ChatGone,
    ChatPage,
    ChatStore,
    ChatSummary,
    ChatUpdate,
    ClaimedChat,
    Created,
    IndexConflict,
    Lease,
    LeaseLost,
    NewChat,
    NotInStatus,
    StoreError,
    StoreUnavailable,
    StoredChat,
    ToolCallRecord,
)
from orchestrator.store.memory import InMemoryChatStore
from orchestrator.store.redis_store import RedisChatStore, connect

__all__ = [
    "LIST_LIMIT_MAX", "ChatGone", "ChatPage", "ChatStore", "ChatSummary", "ChatUpdate", "ClaimedChat", "Created", "IndexConflict", "InMemoryChatStore", "Lease",
    "LeaseLost", "NewChat", "NotInStatus", "RedisChatStore", "StoreError", "StoreUnavailable", "StoredChat",
    "ToolCallRecord", "connect",
]  # fmt: skip
