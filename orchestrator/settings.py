"""Orchestrator settings: ``UMI_*`` environment variables (pydantic-settings), or the same names
as flags of ``umi serve orchestrator`` (``--redis-url``; ``umi.settings_cli``; flags win).

docs/configuration.md is generated from these fields (``umi config-docs > docs/configuration.md``;
a test fails when it is stale): every field needs a description.
"""

from __future__ import annotations

import ipaddress
import json
from functools import cached_property

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator.models import McpServer

# Nothing: tool endpoints reach only the hosts the operator lists (`make up`, `make demo` and
# docker-compose.yml list their own tools server). Even a listed range never reaches the stack
# itself (orchestrator.tools: the orchestrator's own addresses, Redis, the role services).
DEFAULT_TOOL_ALLOWLIST = ""


def split_csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="UMI_", extra="ignore", frozen=True)

    # --- where things are
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="the Redis that holds every chat (run it with AOF: --appendonly yes); "
        "redis+sentinel://[:password@]host:port[,host:port...]/service_name[/db] asks those Sentinels for the primary",
    )
    planner_url: str = Field(default="http://planner:8000", description="base URL of the planner service (POST /v1/plan)")
    caller_url: str = Field(default="http://caller:8000", description="base URL of the caller service (POST /v1/call)")
    summarizer_url: str = Field(
        default="http://summarizer:8000", description="base URL of the summarizer service (POST /v1/summarize)"
    )
    backbone_url: str | None = Field(
        default=None, description="single-model mode: one service (POST /v1/step) plays every role instead of the three"
    )
    key_prefix: str = Field(default="umi:", description="prefix of every Redis key the orchestrator writes")

    # --- security and limits
    tool_allowlist: str = Field(
        default=DEFAULT_TOOL_ALLOWLIST,
        description="hosts tool endpoints may have: names (exact), IP addresses, CIDR networks, comma-separated "
        "(empty: no server tool may be called); the orchestrator itself, Redis and the role services are refused "
        "even when listed",
    )
    admin_token: str | None = Field(default=None, description="bearer token that sees every chat; when set, /metrics requires it")
    api_keys: str = Field(default="", description="comma-separated bearer keys; when set, /chat... requires one (empty: open)")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="largest request body; 413 above")
    max_query_chars: int = Field(default=8192, ge=1, description="longest query; 422 above")
    max_tools: int = Field(default=128, ge=1, description="most tools in a request; 422 above")
    max_steps_limit: int = Field(default=100, ge=1, description="the largest max_steps a request may ask for; 422 above")

    # --- chats
    chat_ttl_s: int = Field(default=7 * 24 * 3600, ge=1, description="seconds a chat is kept after its last write (7 days)")
    observation_max_chars: int = Field(default=1024, ge=1, description="observations are cut to this many characters plus ...")
    chat_wait_s: float = Field(
        default=600.0, gt=0, description="how long a non-streamed POST /chat or tool_outputs waits before answering running"
    )

    # --- leases and resumption
    lease_ttl_s: float = Field(
        default=30.0, gt=0, description="a running chat's lease; renewed every third of it; a dead process's chats resume after it"
    )
    sweep_interval_s: float = Field(default=5.0, gt=0, description="how often each process looks for chats with an expired lease")
    sweep_batch: int = Field(default=32, ge=1, description="most chats one sweep takes over")
    max_interruptions: int = Field(
        default=3, ge=1,
        description="a chat whose run was interrupted this many times (its lease taken over after a crash or restart, "
        "or its loop crashed) ends failed (error type interrupted) instead of running again; its tools are not called again",
    )
    redis_timeout_s: float = Field(
        default=5.0, gt=0, description="Redis connect/read timeout, and the wait for a pooled connection"
    )
    redis_max_connections: int = Field(
        default=256, ge=2, description="Redis connections per pool (one for writes and reads, one for SSE followers)"
    )
    redis_wait_replicas: int = Field(
        default=0, ge=0,
        description="a write (a step before its tool call runs, a status) is acknowledged only once this many replicas "
        "have it (Redis WAIT), so a failover cannot lose it; 0: no wait (a Redis without replicas)",
    )
    redis_wait_timeout_ms: int = Field(
        default=1000, ge=1,
        description="how long WAIT waits for the replicas; fewer in time: the write is retried like an unavailable Redis",
    )
    redis_write_retry_s: float | None = Field(
        default=None,
        description="how long a step write is retried while Redis is unreachable before the process lets the chat go "
        "(unset: UMI_LEASE_TTL_S)",
    )
    retry_after_s: int = Field(default=1, ge=1, description="Retry-After of a 503")

    # --- role services
    role_timeout_s: float = Field(default=300.0, gt=0, description="timeout of one role-service request")
    role_max_attempts: int = Field(
        default=3, ge=1, description="attempts per role request (connection errors, timeouts, 408, 429, 5xx are retried)"
    )
    role_backoff_s: float = Field(
        default=0.5, ge=0, description="first retry delay; doubles, with jitter, capped at 10 s; Retry-After is honoured"
    )
    role_max_connections: int = Field(default=1024, ge=1, description="pooled connections to the role services (and to tools)")

    # --- tools
    tool_timeout_s: float = Field(default=30.0, gt=0, description="tool timeout when the endpoint gives no timeout_s")
    tool_max_response_bytes: int = Field(default=1_048_576, ge=1, description="most bytes read from a tool's answer")

    mcp_servers: str = Field(
        default="",
        description='MCP servers whose tools every chat gets: a JSON list of {"type": "mcp", "server_label", "server_url", '
        '"allowed_tools", "headers"} (Streamable HTTP; the URL must pass the tool allowlist); one that cannot be listed is '
        "left out of the chat, and logged",
    )
    mcp_list_ttl_s: float = Field(default=60.0, ge=0, description="how long an MCP server's tools/list answer is reused")

    # --- the OpenAI-compatible API (/v1/*)
    openai_model: str = Field(
        default="alpha-umi", min_length=1,
        description="the model name /v1/models lists and /v1/chat/completions and /v1/responses take (planner, caller, summarizer)",
    )
    openai_single_model: str = Field(
        default="alpha-umi-single", min_length=1,
        description="the model name of single-model mode (UMI_BACKBONE_URL set) in /v1/*",
    )

    log_level: str = Field(
        default="INFO", description="JSON logs on stderr, one object per line, with chat_id, step, trace_id and span_id"
    )
    trace_url: str = Field(
        default="",
        description="the viewer (/ui) links each chat to its trace: a URL with {trace_id} "
        "(Jaeger: http://jaeger:16686/trace/{trace_id}); empty: no link. Traces are configured by OTEL_* variables",
    )

    @field_validator("backbone_url", "admin_token", "redis_write_retry_s", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @cached_property
    def api_key_list(self) -> frozenset[str]:
        return frozenset(split_csv(self.api_keys))

    @cached_property
    def allowlist(self) -> "Allowlist":
        return Allowlist.parse(self.tool_allowlist)

    @cached_property
    def mcp_server_list(self) -> list[McpServer]:
        return [McpServer.model_validate(item) for item in json.loads(self.mcp_servers)] if self.mcp_servers.strip() else []

    @field_validator("mcp_servers")
    @classmethod
    def _mcp_servers_parse(cls, value: str) -> str:
        if value.strip():
            items = json.loads(value)
            if not isinstance(items, list):
                raise ValueError("must be a JSON list of MCP tool sources")
            for item in items:
                McpServer.model_validate(item)
        return value

    @property
    def write_retry_s(self) -> float:
        return self.lease_ttl_s if self.redis_write_retry_s is None else self.redis_write_retry_s

    @property
    def single_model(self) -> bool:
        return self.backbone_url is not None


class Allowlist:
    """Host names (exact, case-insensitive), IP addresses and CIDR networks."""

    def __init__(self, names: frozenset[str], networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]):
        self.names = names
        self.networks = networks

    @classmethod
    def parse(cls, value: str) -> "Allowlist":
        names: set[str] = set()
        networks = []
        for item in split_csv(value):
            try:
                networks.append(ipaddress.ip_network(item.strip("[]"), strict=False))
            except ValueError:
                names.add(item.lower().rstrip("."))
        return cls(frozenset(names), tuple(networks))

    def allows_name(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.names

    def allows_ip(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address in net for net in self.networks if net.version == address.version)
