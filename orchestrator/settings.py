"""Orchestrator settings, read from ``UMI_*`` environment variables (pydantic-settings).

Every setting is documented in ``docs/orchestrator.md`` (Configuration); keep the two in step.
"""

from __future__ import annotations

import ipaddress
from functools import cached_property

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Loopback and the service names of the compose stack that may serve tools. The Redis server
# and the orchestrator itself are deliberately not on it.
DEFAULT_TOOL_ALLOWLIST = "localhost,127.0.0.0/8,::1,tools,planner,caller,summarizer,backbone"


def split_csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="UMI_", extra="ignore", frozen=True)

    # --- where things are
    redis_url: str = "redis://127.0.0.1:6379/0"
    planner_url: str = "http://planner:8000"
    caller_url: str = "http://caller:8000"
    summarizer_url: str = "http://summarizer:8000"
    backbone_url: str | None = Field(default=None, description="single-model mode: one service for every role")
    key_prefix: str = Field(default="umi:", description="prefix of every Redis key the orchestrator writes")

    # --- security and limits
    tool_allowlist: str = DEFAULT_TOOL_ALLOWLIST
    admin_token: str | None = None
    api_keys: str = ""
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_query_chars: int = Field(default=8192, ge=1)
    max_tools: int = Field(default=128, ge=1)
    max_steps_limit: int = Field(default=100, ge=1, description="the largest max_steps a request may ask for")

    # --- chats
    chat_ttl_s: int = Field(default=7 * 24 * 3600, ge=1)
    observation_max_chars: int = Field(default=1024, ge=1)
    chat_wait_s: float = Field(default=600.0, gt=0, description="how long a non-streamed POST waits for a chat to stop")

    # --- leases and resumption
    lease_ttl_s: float = Field(default=30.0, gt=0)
    sweep_interval_s: float = Field(default=5.0, gt=0)
    sweep_batch: int = Field(default=32, ge=1)
    redis_timeout_s: float = Field(default=5.0, gt=0)
    redis_max_connections: int = Field(default=256, ge=2, description="per pool; blocking reads have their own")
    redis_write_retry_s: float | None = Field(default=None, description="how long a step write is retried; default: the lease TTL")
    retry_after_s: int = Field(default=1, ge=1)

    # --- role services
    role_timeout_s: float = Field(default=300.0, gt=0)
    role_max_attempts: int = Field(default=3, ge=1)
    role_backoff_s: float = Field(default=0.5, ge=0)
    role_max_connections: int = Field(default=1024, ge=1)

    # --- tools
    tool_timeout_s: float = Field(default=30.0, gt=0, description="when the endpoint gives no timeout_s")
    tool_max_response_bytes: int = Field(default=1_048_576, ge=1)

    log_level: str = "INFO"

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
