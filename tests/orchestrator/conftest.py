"""Fixtures of the orchestrator tests: fake role services, a tool server, orchestrators."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from orch_fakes import FakeRoles, ServerGroup, ToolServer

from orchestrator.api import create_app
from orchestrator.settings import Settings


@pytest.fixture
def servers() -> Iterator[ServerGroup]:
    """Every server a test starts; all are stopped at teardown."""
    group = ServerGroup()
    try:
        yield group
    finally:
        group.stop()


@pytest.fixture
def fake_roles(servers: ServerGroup) -> FakeRoles:
    fake = FakeRoles()
    fake.url = servers.start(fake.app).url  # type: ignore[attr-defined]
    return fake


@pytest.fixture
def tool_server(servers: ServerGroup) -> Iterator[ToolServer]:
    tools = ToolServer()
    tools.url = servers.start(tools.app).url  # type: ignore[attr-defined]
    yield tools
    tools.gate.set()  # release held requests before the servers stop


@pytest.fixture
def key_prefix() -> str:
    return f"umi-test:{uuid.uuid4().hex[:12]}:"


def test_settings(redis_url: str, roles_url: str, key_prefix: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_url": redis_url, "planner_url": roles_url, "caller_url": roles_url, "summarizer_url": roles_url,
        "key_prefix": key_prefix, "role_backoff_s": 0.01, "chat_wait_s": 60,
    }  # fmt: skip
    values.update(overrides)
    return Settings(**values)


@dataclass
class Orch:
    url: str
    client: httpx.Client
    settings: Settings

    def chat(self, **body: Any) -> httpx.Response:
        return self.client.post("/chat", json=body)


@pytest.fixture
def make_orch(
    redis_url: str, fake_roles: FakeRoles, key_prefix: str, servers: ServerGroup
) -> Iterator[Callable[..., Orch]]:
    """Start an in-process orchestrator (uvicorn in a thread) with settings overrides."""
    with ExitStack() as stack:

        def make(**overrides: Any) -> Orch:
            settings = test_settings(redis_url, fake_roles.url, key_prefix, **overrides)  # type: ignore[attr-defined]
            server = servers.start(create_app(settings))
            client = stack.enter_context(httpx.Client(base_url=server.url, timeout=60))
            return Orch(server.url, client, settings)

        yield make


@pytest.fixture
def orch(make_orch: Callable[..., Orch]) -> Orch:
    return make_orch()
