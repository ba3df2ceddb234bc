"""Fixtures of the orchestrator tests: fake role services, a tool server, orchestrators."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.support.orchestrator_fakes import FakeRoles, InProcessRoles, ServerGroup, ToolServer
from umi.engines.process import free_port

from orchestrator.api import create_app
from orchestrator.settings import Settings
from orchestrator.store import InMemoryChatStore


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


def orch_settings(roles_url: str, key_prefix: str, overrides: dict[str, Any]) -> Settings:
    values: dict[str, Any] = { "planner_url": roles_url, "caller_url": roles_url, "summarizer_url": roles_url,
        "key_prefix": key_prefix, "role_backoff_s": 0.01, "chat_wait_s": 60, "tool_allowlist": "127.0.0.1",
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
def orch_backend() -> str:
    """How ``make_orch`` builds the orchestrator: ``integration`` (uvicorn in a thread, the real
    Redis of `make test`, the fake role services over HTTP) or ``in_process`` (the app in a
    TestClient, the in-memory chat store, the fake role services' scripts called in-process).
    A test module that holds for both overrides this fixture with both as params."""
    return "integration"


@pytest.fixture
def make_orch(
    request: pytest.FixtureRequest, orch_backend: str, fake_roles: FakeRoles, key_prefix: str, servers: ServerGroup
) -> Iterator[Callable[..., Orch]]:
    """Start an orchestrator (see ``orch_backend``) with settings overrides."""
    with ExitStack() as stack:

        def make(**overrides: Any) -> Orch:
            if orch_backend == "in_process":
                settings = orch_settings("http://in-process", key_prefix, overrides)
                app = create_app(
                    settings, store=lambda s, m: InMemoryChatStore(s.chat_ttl_s, s.lease_ttl_s),
                    roles=lambda s, m: InProcessRoles(fake_roles),
                )  # fmt: skip
                client = stack.enter_context(TestClient(app, base_url="http://orchestrator.test"))
                return Orch(str(client.base_url), client, settings)
            redis_url = request.getfixturevalue("redis_url")
            settings = orch_settings(fake_roles.url, key_prefix, {"redis_url": redis_url, **overrides})  # type: ignore[attr-defined]
            server = servers.start(create_app(settings))
            http = stack.enter_context(httpx.Client(base_url=server.url, timeout=60))
            return Orch(server.url, http, settings)

        yield make


@pytest.fixture
def orch(make_orch: Callable[..., Orch]) -> Orch:
    return make_orch()


class OrchestratorProcess:
    """`python -m umi.cli serve orchestrator` as a subprocess (so that it can be killed -9)."""

    def __init__(self, env: dict[str, str], log_path: Path, args: list[str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "umi.cli", "serve", "orchestrator", "--host", "127.0.0.1", "--port", str(self.port),
             *args],
            env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"orchestrator did not start: see {log_path}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture
def spawn_orch(
    redis_url: str, fake_roles: FakeRoles, key_prefix: str, tmp_path: Path
) -> Iterator[Callable[..., OrchestratorProcess]]:
    """Start orchestrator processes (``args`` on the command line, settings as UMI_* variables);
    all are stopped at teardown."""
    procs: list[OrchestratorProcess] = []

    def spawn(args: tuple[str, ...] = (), **overrides: Any) -> OrchestratorProcess:
        env = {
            "UMI_REDIS_URL": redis_url, "UMI_KEY_PREFIX": key_prefix, "UMI_ROLE_BACKOFF_S": "0.01",
            "UMI_PLANNER_URL": fake_roles.url, "UMI_CALLER_URL": fake_roles.url,  # type: ignore[attr-defined]
            "UMI_SUMMARIZER_URL": fake_roles.url, "UMI_LOG_LEVEL": "INFO",  # type: ignore[attr-defined]
            "UMI_TOOL_ALLOWLIST": "127.0.0.1",
        }  # fmt: skip
        env.update({f"UMI_{k.upper()}": str(v) for k, v in overrides.items()})
        proc = OrchestratorProcess(env, tmp_path / f"orchestrator-{len(procs)}.log", list(args))
        procs.append(proc)
        return proc

    try:
        yield spawn
    finally:
        for proc in procs:
            proc.stop()
