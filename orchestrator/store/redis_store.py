"""The Redis backend of the chat store: a hash per chat plus an append-only stream of its steps.

This module alone knows the keys, the hash fields and the Lua scripts; the rules every backend
keeps are in ``orchestrator.store.base``.

Keys (``P`` is ``UMI_KEY_PREFIX``):

    P chat:<id>          hash    status, request, fingerprint, metadata, owner, answer, error,
                                 pending, next_index, lease_token, lease_owner, lease_until,
                                 create_id, interruptions,
                                 model:<role>, tool:<step> (tool-call idempotency record),
                                 last_write, created_at, updated_at, query, trace
    P chat:<id>:steps    stream  one entry per step, id ``<index>-1``, field ``s`` = the step JSON
    P running            zset    running chats by lease expiry (ms, Redis clock): the sweeper's index
    P index              zset    every chat by creation time (ms): the listing index
    P index:owner:<o>    zset    the chats of one owner (API-key fingerprint) by creation time

The listing indexes are trimmed when a chat is created (entries older than the TTL go, and each
index expires with the TTL) and when a listing meets a chat that was forgotten.

Every change is one Lua script, so a step, the chat fields that go with it and the lease
extension are written together or not at all. A write carries the writer's fencing token and
the index it expects to write at; a process whose lease was taken (the token was bumped) or
that lost a race cannot write. A write also carries a random ``write_id``: retried after a
lost reply, it is recognised as already applied instead of failing or writing twice.
Time inside the scripts is the Redis server's clock (``TIME``), so processes need no clock sync.

High availability (``connect``): ``UMI_REDIS_URL`` may name Redis Sentinels instead of one server,
``redis+sentinel://[:password@]host:port[,host:port...]/service_name[/db]``; the pool asks the
Sentinels for the current primary (redis-py's ``redis.asyncio.sentinel``) and follows a failover.
Replication is asynchronous, so a write acknowledged by a primary that dies before a replica got it
is lost at failover; with ``wait_replicas`` > 0 every write (create, append, resume, claim) is
acknowledged only once ``WAIT wait_replicas wait_timeout_ms`` says that many replicas have it (sent
in the same round trip as the writes of the batch). Fewer in time: the write is reported
``StoreUnavailable`` (it may be applied; its ``write_id`` makes the retry recognise it). Sentinel
promotes the replica with the largest replication offset, so a write one replica acknowledged
survives the primary's loss: the caller step that marks a tool call ``started`` is never lost and
the tool never runs twice.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from urllib.parse import unquote
from collections.abc import Awaitable, Callable, Mapping, Sequence
from enum import IntEnum
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.commands.core import AsyncScript
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from orchestrator.metrics import Metrics
from orchestrator.models import ChatError, PendingToolCall, Step
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
    StoreUnavailable,
    StoredChat,
    metadata_json,
    summary_matches,
)

T = TypeVar("T")

# ---------------------------------------------------------------- Lua


class Rejection(IntEnum):
    """Why a script refused a write: the first element of its reply (success is 1)."""

    LEASE_LOST = -1
    CHAT_GONE = -2
    INDEX_CONFLICT = -3
    NOT_IN_STATUS = -4


_CODES = "local " + ", ".join(r.name for r in Rejection) + " = " + ", ".join(str(r.value) for r in Rejection) + "\n"

_NOW = _CODES + """
local _t = redis.call('TIME')
local now = tonumber(_t[1]) * 1000 + math.floor(tonumber(_t[2]) / 1000)
"""

# Appends ARGV[first .. first+n-1] as steps from index `nxt`, then sets the field pairs that follow.
_WRITE_STEPS = """
local function write_steps(nxt, n, first)
  for i = 0, n - 1 do
    redis.call('XADD', KEYS[2], (nxt + i) .. '-1', 's', ARGV[first + i])
  end
  if #ARGV >= first + n then
    redis.call('HSET', KEYS[1], unpack(ARGV, first + n))
  end
end
local function hold_lease(chat_id, owner, lease_ms)
  local expiry = now + lease_ms
  redis.call('HSET', KEYS[1], 'lease_owner', owner, 'lease_until', expiry)
  redis.call('ZADD', KEYS[3], expiry, chat_id)
end
local function keep_for(ttl)
  redis.call('EXPIRE', KEYS[1], ttl)
  if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('EXPIRE', KEYS[2], ttl) end
end
"""

# KEYS: chat, steps, running, index, owner index. ARGV: chat_id, owner, lease_ms, ttl_s, create_id, field pairs...
# A create retried after a lost reply (same create_id) is recognised as this caller's.
_CREATE = _NOW + _WRITE_STEPS + """
if redis.call('EXISTS', KEYS[1]) == 1 then
  local cur = redis.call('HMGET', KEYS[1], 'fingerprint', 'owner', 'create_id', 'lease_token', 'created_at')
  if cur[3] == ARGV[5] then return {1, tonumber(cur[4]), tonumber(cur[5])} end
  return {0, cur[1] or '', cur[2] or ''}
end
redis.call('HSET', KEYS[1], 'status', 'running', 'next_index', 0, 'lease_token', 1, 'create_id', ARGV[5],
           'created_at', now, 'updated_at', now, unpack(ARGV, 6))
hold_lease(ARGV[1], ARGV[2], tonumber(ARGV[3]))
keep_for(ARGV[4])
local oldest = now - tonumber(ARGV[4]) * 1000
for i = 4, 5 do
  redis.call('ZADD', KEYS[i], now, ARGV[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. oldest)
  redis.call('EXPIRE', KEYS[i], ARGV[4])
end
return {1, 1, now}
"""

# KEYS: chat, steps, running.
# ARGV: chat_id, owner, token, expected_index, n, ttl_s, lease_ms (0 = release), write_id,
#       n step JSONs, field pairs...
_APPEND = _NOW + _WRITE_STEPS + """
local cur = redis.call('HMGET', KEYS[1], 'lease_token', 'next_index', 'last_write', 'status')
if not cur[1] then return {CHAT_GONE} end
if cur[3] == ARGV[8] then return {1, tonumber(cur[2]), now} end
if cur[1] ~= ARGV[3] then return {LEASE_LOST, cur[1]} end
if cur[4] ~= 'running' then return {NOT_IN_STATUS, cur[4]} end
local nxt = tonumber(cur[2])
if nxt ~= tonumber(ARGV[4]) then return {INDEX_CONFLICT, nxt} end
local n = tonumber(ARGV[5])
redis.call('HSET', KEYS[1], 'next_index', nxt + n, 'updated_at', now, 'last_write', ARGV[8])
write_steps(nxt, n, 9)
local lease_ms = tonumber(ARGV[7])
if lease_ms > 0 then
  hold_lease(ARGV[1], ARGV[2], lease_ms)
else
  redis.call('HDEL', KEYS[1], 'lease_owner', 'lease_until')
  redis.call('ZREM', KEYS[3], ARGV[1])
end
keep_for(ARGV[6])
return {1, nxt + n, now}
"""

# A chat in requires_action takes the client's tool outputs and runs again under a new lease.
# KEYS: chat, steps, running. ARGV: chat_id, owner, lease_ms, ttl_s, expected_index, n, write_id,
#       n step JSONs, field pairs...
_RESUME = _NOW + _WRITE_STEPS + """
local cur = redis.call('HMGET', KEYS[1], 'status', 'next_index', 'last_write', 'lease_token')
if not cur[1] then return {CHAT_GONE} end
if cur[3] == ARGV[7] then return {1, tonumber(cur[4]), tonumber(cur[2])} end
if cur[1] ~= 'requires_action' then return {NOT_IN_STATUS, cur[1]} end
local nxt = tonumber(cur[2])
if nxt ~= tonumber(ARGV[5]) then return {INDEX_CONFLICT, nxt} end
local n = tonumber(ARGV[6])
local token = redis.call('HINCRBY', KEYS[1], 'lease_token', 1)
redis.call('HSET', KEYS[1], 'status', 'running', 'next_index', nxt + n, 'updated_at', now, 'last_write', ARGV[7])
redis.call('HDEL', KEYS[1], 'pending')
write_steps(nxt, n, 8)
hold_lease(ARGV[1], ARGV[2], tonumber(ARGV[3]))
keep_for(ARGV[4])
return {1, token, nxt + n}
"""

# Takes over running chats whose lease expired. KEYS: running. ARGV: owner, lease_ms, limit, prefix.
_CLAIM = _NOW + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  local key = ARGV[4] .. 'chat:' .. id
  local cur = redis.call('HMGET', key, 'status', 'lease_until')
  if cur[1] ~= 'running' then
    redis.call('ZREM', KEYS[1], id)
  elseif tonumber(cur[2] or '0') <= now then
    local token = redis.call('HINCRBY', key, 'lease_token', 1)
    redis.call('HINCRBY', key, 'interruptions', 1)
    local expiry = now + tonumber(ARGV[2])
    redis.call('HSET', key, 'lease_owner', ARGV[1], 'lease_until', expiry)
    redis.call('ZADD', KEYS[1], expiry, id)
    table.insert(out, id)
    table.insert(out, token)
  else
    redis.call('ZADD', KEYS[1], cur[2], id)
  end
end
return out
"""

# Extends the leases this process holds. KEYS: chat hashes..., running.
# ARGV: owner, lease_ms, then chat_id, token per chat. Returns the chats whose lease was taken.
_RENEW = _NOW + """
local running = KEYS[#KEYS]
local lost = {}
for i = 1, #KEYS - 1 do
  local id, token = ARGV[1 + 2 * i], ARGV[2 + 2 * i]
  local cur = redis.call('HMGET', KEYS[i], 'lease_token', 'status')
  if cur[1] ~= token then
    table.insert(lost, id)
  elseif cur[2] == 'running' then
    local expiry = now + tonumber(ARGV[2])
    redis.call('HSET', KEYS[i], 'lease_owner', ARGV[1], 'lease_until', expiry)
    redis.call('ZADD', running, expiry, id)
  end
end
return lost
"""


# ---------------------------------------------------------------- pipelining


class ScriptPipeline:
    """Sends the script calls made during one event-loop turn together, as one pipeline.

    Many chats advancing at once then cost one connection checkout and one round trip per
    loop turn instead of one each. A lone call waits for nothing but the end of the current
    turn. NOSCRIPT (a restarted Redis forgot the scripts) loads them and resends only the
    calls that did not run.

    ``wait_replicas`` > 0 ends every batch with ``WAIT wait_replicas wait_timeout_ms``: a batch
    fewer replicas acknowledged in time fails whole with ``StoreUnavailable``.
    """

    def __init__(
        self, client: aioredis.Redis, on_round_trip: Callable[[], None], wait_replicas: int = 0, wait_timeout_ms: int = 0
    ):  # fmt: skip
        self.client = client
        self.on_round_trip = on_round_trip
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self.pending: list[tuple[AsyncScript, list[str], list[Any], asyncio.Future[Any]]] = []
        self.flusher: asyncio.Task[None] | None = None

    def call(self, script: AsyncScript, keys: list[str], args: list[Any]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self.pending.append((script, keys, args, future))
        if self.flusher is None:  # it starts next turn, with every call made until then
            self.flusher = loop.create_task(self._flush())
        return future

    async def _flush(self) -> None:
        batch, self.pending, self.flusher = self.pending, [], None
        try:
            replies = await self._send(batch)
            missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if missing:
                for script in {id(batch[i][0]): batch[i][0] for i in missing}.values():
                    await self.client.script_load(script.script)
                for i, reply in zip(missing, await self._send([batch[i] for i in missing]), strict=True):
                    replies[i] = reply
        except BaseException as exc:  # the connection failed: every call of the batch fails
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (*_, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _send(self, batch: list[tuple[AsyncScript, list[str], list[Any], asyncio.Future[Any]]]) -> list[Any]:
        self.on_round_trip()
        async with self.client.pipeline(transaction=False) as pipe:
            for script, keys, args, _ in batch:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            if self.wait_replicas:
                pipe.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms)
            replies = list(await pipe.execute(raise_on_error=False))
        if self.wait_replicas:
            acked = replies.pop()
            if isinstance(acked, Exception):
                raise acked
            wrote = any(not isinstance(reply, NoScriptError) for reply in replies)  # NOSCRIPT: nothing ran
            if wrote and int(acked) < self.wait_replicas:
                raise StoreUnavailable(
                    f"{acked} of {self.wait_replicas} replicas acknowledged the write in {self.wait_timeout_ms} ms"
                )
        return replies


# ---------------------------------------------------------------- replies and fields


def _check(reply: Sequence[Any]) -> Sequence[Any]:
    code = int(reply[0])
    if code == Rejection.NOT_IN_STATUS:
        raise NotInStatus(str(reply[1]))
    if code == Rejection.LEASE_LOST:
        raise LeaseLost(f"the chat's fencing token is {reply[1]} now")
    if code == Rejection.CHAT_GONE:
        raise ChatGone("the chat does not exist")
    if code == Rejection.INDEX_CONFLICT:
        raise IndexConflict(f"the chat's next step index is {reply[1]}")
    return reply


def _new_chat_args(chat: NewChat) -> list[Any]:
    return ["request", chat.request.model_dump_json(), "fingerprint", chat.fingerprint,
            "metadata", metadata_json(chat.request), "owner", chat.owner, "query", chat.request.query,
            "trace", chat.trace]  # fmt: skip


def _update_args(update: ChatUpdate | None) -> list[Any]:
    """The hash field pairs of an update (the field names live here and in ``_stored`` only)."""
    if update is None:
        return []
    args: list[Any] = []
    if update.status is not None:
        args += ["status", update.status]
    if update.answer is not None:
        args += ["answer", update.answer]
    if update.error is not None:
        args += ["error", update.error.model_dump_json()]
    if update.pending is not None:
        args += ["pending", json.dumps([p.model_dump() for p in update.pending])]
    for role, version in update.models.items():
        args += [f"model:{role}", version]
    for index, record in update.tool_calls.items():
        args += [f"tool:{index}", record]
    return args


def _stored(chat_id: str, fields: Mapping[str, str], steps: list[Step]) -> StoredChat:
    error, pending = fields.get("error"), fields.get("pending")
    return StoredChat(
        chat_id=chat_id,
        status=fields.get("status", ""),
        next_index=int(fields.get("next_index", "0")),
        owner=fields.get("owner", ""),
        request_json=fields.get("request", "{}"),
        metadata=json.loads(fields.get("metadata", "{}")),
        answer=fields.get("answer"),
        error=None if error is None else ChatError.model_validate_json(error),
        pending=[] if pending is None else [PendingToolCall.model_validate(p) for p in json.loads(pending)],
        models={k.removeprefix("model:"): v for k, v in fields.items() if k.startswith("model:")},
        tool_calls={int(k.removeprefix("tool:")): v for k, v in fields.items() if k.startswith("tool:")},  # type: ignore[misc]
        lease_owner=fields.get("lease_owner"),
        interruptions=int(fields.get("interruptions", "0")),
        created_at=int(fields.get("created_at", "0")) / 1000,
        updated_at=int(fields.get("updated_at", "0")) / 1000,
        steps=steps,
        trace=fields.get("trace", ""),
    )


_MODEL_ROLES = ("planner", "caller", "summarizer", "backbone")
_SUMMARY_FIELDS = ["status", "query", "next_index", "created_at", "updated_at", "error", *(f"model:{r}" for r in _MODEL_ROLES)]
_LIST_CHUNK = 100


def _summary(chat_id: str, row: Sequence[str | None]) -> ChatSummary | None:
    """A listing line from the ``_SUMMARY_FIELDS`` of a chat's hash; None when it is gone."""
    status, query, next_index, created_at, updated_at, error, *models = row
    if status is None:
        return None
    return ChatSummary(
        chat_id=chat_id, status=status, query=query or "", steps=int(next_index or 0),
        models={role: v for role, v in zip(_MODEL_ROLES, models, strict=True) if v is not None},
        created_at=int(created_at or 0) / 1000, updated_at=int(updated_at or 0) / 1000,
        error_type=None if error is None else ChatError.model_validate_json(error).type,
    )  # fmt: skip


def _steps_args(steps: Sequence[Step]) -> list[str]:
    return [s.model_dump_json() for s in steps]


def _parse_steps(entries: Sequence[tuple[str, Mapping[str, str]]]) -> list[Step]:
    return [Step.model_validate_json(data["s"]) for _, data in entries]


SENTINEL_SCHEME = "redis+sentinel"


class _BlockingSentinelPool(SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """redis-py's Sentinel pool (finds the primary through the Sentinels, follows a failover)
    with the bounded waiting of its ``BlockingConnectionPool``."""


def sentinel_url_parts(url: str) -> tuple[list[tuple[str, int]], str, int, str | None]:
    """``redis+sentinel://[:password@]host:port[,host:port...]/service_name[/db]`` ->
    (Sentinel addresses, service name, db, password of the data nodes or None).

    A Sentinel without a port is on 26379 (Redis's default). Raises ``ValueError`` when the URL
    has another scheme, no Sentinel or no service name."""
    scheme, sep, rest = url.partition("://")
    if scheme != SENTINEL_SCHEME or not sep:
        raise ValueError(f"not a {SENTINEL_SCHEME}:// URL: {url!r}")
    netloc, _, path = rest.partition("/")
    userinfo, _, hosts = netloc.rpartition("@")
    password = unquote(userinfo.partition(":")[2]) or None
    sentinels = []
    for item in filter(None, hosts.split(",")):
        if item.startswith("["):  # [IPv6]:port
            host, _, port = item[1:].partition("]")
            port = port.removeprefix(":")
        else:
            host, _, port = item.partition(":")
        sentinels.append((host, int(port) if port else 26379))
    service, _, db = path.strip("/").partition("/")
    if not sentinels or not service:
        raise ValueError(f"a Sentinel URL needs host:port and /service_name: {url!r}")
    return sentinels, service, int(db or 0), password


def redis_node_urls(url: str) -> list[str]:
    """The Redis endpoints a URL names, as ``redis://host:port`` URLs (each Sentinel of a Sentinel URL)."""
    if not url.startswith(SENTINEL_SCHEME + "://"):
        return [url]
    return [f"redis://{'[' + h + ']' if ':' in h else h}:{p}" for h, p in sentinel_url_parts(url)[0]]


def connect(url: str, timeout_s: float, max_connections: int) -> aioredis.Redis:
    """A bounded pool (a request waits up to ``timeout_s`` for a free connection) that fails
    fast: one quick retry (a stale pooled connection after a server restart), then the error
    goes to the caller, who answers 503 or retries itself.

    ``url`` is ``redis://`` / ``rediss://`` / ``unix://`` (one server) or ``redis+sentinel://``
    (``sentinel_url_parts``): the pool's connections then go to whichever node the Sentinels
    name primary, and a connection to a demoted primary is dropped (redis-py)."""
    options: dict[str, Any] = dict(
        max_connections=max_connections,
        timeout=timeout_s,
        decode_responses=True,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 1),
        health_check_interval=30,
    )
    if url.startswith(SENTINEL_SCHEME + "://"):
        sentinels, service, db, password = sentinel_url_parts(url)
        timeouts = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
        manager = Sentinel(sentinels, sentinel_kwargs=timeouts)
        return manager.master_for(
            service, connection_pool_class=_BlockingSentinelPool, db=db, password=password, **options
        )  # fmt: skip
    return aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(url, **options))


class RedisChatStore:
    """The chat store on Redis (``orchestrator.store.base.ChatStore``)."""

    def __init__(
        self, client: aioredis.Redis, prefix: str, ttl_s: int, lease_ttl_s: float, metrics: Metrics,
        blocking: aioredis.Redis | None = None, wait_replicas: int = 0, wait_timeout_ms: int = 1000,
    ):  # fmt: skip
        """``blocking`` serves XREAD BLOCK (SSE followers), so they cannot starve step writes.
        ``wait_replicas``: writes are acknowledged once that many replicas have them (module docstring)."""
        self.redis = client
        self.blocking = blocking or client
        self.prefix = prefix
        self.ttl_s = int(ttl_s)
        self.lease_ms = max(1, int(lease_ttl_s * 1000))
        self.metrics = metrics
        self.running_key = f"{prefix}running"
        self.index_key = f"{prefix}index"
        self._create = client.register_script(_CREATE)
        self._append = client.register_script(_APPEND)
        self._resume = client.register_script(_RESUME)
        self._claim = client.register_script(_CLAIM)
        self._renew = client.register_script(_RENEW)
        self.pipeline = ScriptPipeline(client, metrics.redis_round_trips.inc, wait_replicas, wait_timeout_ms)

    def chat_key(self, chat_id: str) -> str:
        return f"{self.prefix}chat:{chat_id}"

    def steps_key(self, chat_id: str) -> str:
        return f"{self.prefix}chat:{chat_id}:steps"

    def owner_index_key(self, owner: str) -> str:
        return f"{self.prefix}index:owner:{owner}"

    def _keys(self, chat_id: str) -> list[str]:
        return [self.chat_key(chat_id), self.steps_key(chat_id), self.running_key]

    async def _op(self, op: str, call: Callable[[], Awaitable[T]], pipelined: bool = False) -> T:
        """One operation, timed; connection failures become StoreUnavailable."""
        if not pipelined:
            self.metrics.redis_round_trips.inc()
        started = time.perf_counter()
        try:
            return await call()
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            self.metrics.redis_errors.labels(op).inc()
            raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc
        except StoreUnavailable:  # too few replicas acknowledged a write
            self.metrics.redis_errors.labels(op).inc()
            raise
        finally:
            self.metrics.redis_seconds.labels(op).observe(time.perf_counter() - started)

    # ------------------------------------------------------------ writes

    async def create(self, chat_id: str, lease_owner: str, chat: NewChat) -> Created:
        args = [chat_id, lease_owner, self.lease_ms, self.ttl_s, uuid.uuid4().hex, *_new_chat_args(chat)]
        keys = [*self._keys(chat_id), self.index_key, self.owner_index_key(chat.owner)]
        reply = await self._op("create", lambda: self.pipeline.call(self._create, keys, args), True)
        if int(reply[0]) == 0:
            return Created(created=False, fingerprint=str(reply[1]), owner=str(reply[2]))
        return Created(created=True, token=int(reply[1]), at=int(reply[2]) / 1000)

    async def append(
        self, chat_id: str, lease: Lease, expected_index: int, steps: list[Step],
        update: ChatUpdate | None = None, *, write_id: str | None = None,
    ) -> tuple[int, float]:  # fmt: skip
        release = update is not None and update.settles
        args = [
            chat_id, lease.owner, lease.token, expected_index, len(steps), self.ttl_s,
            0 if release else self.lease_ms, write_id or uuid.uuid4().hex,
            *_steps_args(steps), *_update_args(update),
        ]  # fmt: skip
        reply = _check(await self._op("append", lambda: self.pipeline.call(self._append, self._keys(chat_id), args), True))
        return int(reply[1]), int(reply[2]) / 1000

    async def resume_with_outputs(
        self, chat_id: str, lease_owner: str, expected_index: int, steps: list[Step], write_id: str
    ) -> int:
        args = [chat_id, lease_owner, self.lease_ms, self.ttl_s, expected_index, len(steps), write_id, *_steps_args(steps)]
        reply = await self._op("resume", lambda: self.pipeline.call(self._resume, self._keys(chat_id), args), True)
        return int(_check(reply)[1])

    async def claim_expired(self, lease_owner: str, limit: int) -> list[ClaimedChat]:
        args = [lease_owner, self.lease_ms, limit, self.prefix]
        flat = await self._op("claim", lambda: self.pipeline.call(self._claim, [self.running_key], args), True)
        return [ClaimedChat(str(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]

    async def renew(self, lease_owner: str, leases: dict[str, int]) -> list[str]:
        if not leases:
            return []
        keys = [self.chat_key(chat_id) for chat_id in leases] + [self.running_key]
        args: list[Any] = [lease_owner, self.lease_ms]
        for chat_id, token in leases.items():
            args += [chat_id, token]
        return [str(x) for x in await self._op("renew", lambda: self._renew(keys=keys, args=args))]

    async def delete(self, chat_id: str) -> bool:
        async def run() -> list[Any]:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(self.chat_key(chat_id), self.steps_key(chat_id))
                pipe.zrem(self.running_key, chat_id)
                return await pipe.execute()

        return int((await self._op("delete", run))[0]) > 0

    # ------------------------------------------------------------ reads

    async def load(self, chat_id: str, after: int = -1) -> StoredChat | None:
        """The chat's hash and its steps after index ``after``, in one round trip."""

        async def run() -> list[Any]:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(self.chat_key(chat_id))
                pipe.xrange(self.steps_key(chat_id), min=f"{after + 1}-0")
                return await pipe.execute()

        fields, entries = await self._op("load", run)
        if not fields:
            return None
        return _stored(chat_id, fields, _parse_steps(entries))

    async def wait_for_steps(self, chat_id: str, after: int, block_ms: int) -> list[Step]:
        start = f"{after}-1" if after >= 0 else "0-0"
        reply = await self._op("wait", lambda: self.blocking.xread({self.steps_key(chat_id): start}, block=block_ms))
        return _parse_steps(reply[0][1]) if reply else []

    async def list_chats(
        self, owner: str | None, *, status: str | None = None, text: str | None = None, offset: int = 0, limit: int = 50
    ) -> ChatPage:
        """Walks the index newest first, ``_LIST_CHUNK`` chats a round trip, until the page is full."""
        offset, limit = max(0, offset), max(0, min(limit, LIST_LIMIT_MAX))
        key = self.index_key if owner is None else self.owner_index_key(owner)
        matches: list[ChatSummary] = []
        gone: list[str] = []
        start = 0
        while len(matches) <= offset + limit:
            ids = await self._op("list", lambda: self.redis.zrevrange(key, start, start + _LIST_CHUNK - 1))
            if not ids:
                break

            async def rows(ids: list[str] = ids) -> list[Any]:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for chat_id in ids:
                        pipe.hmget(self.chat_key(chat_id), _SUMMARY_FIELDS)
                    return await pipe.execute()

            for chat_id, row in zip(ids, await self._op("list", rows), strict=True):
                summary = _summary(chat_id, row)
                if summary is None:
                    gone.append(chat_id)
                elif summary_matches(summary, status, text):
                    matches.append(summary)
            start += len(ids)
        if gone:  # forgotten chats leave the indexes (the owner's index is trimmed when it is listed)
            await self._op("list", lambda: self.redis.zrem(key, *gone))
        return ChatPage(chats=matches[offset : offset + limit], more=len(matches) > offset + limit)

    async def ping(self) -> bool:
        return bool(await self._op("ping", self.redis.ping))

    async def close(self) -> None:
        await self.redis.aclose()
        if self.blocking is not self.redis:
            await self.blocking.aclose()
