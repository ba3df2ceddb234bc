"""A Redis restart: 503 + Retry-After while it is down, no half-written step, the chat goes on."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.support.orchestrator_fakes import gated_planner, tool
from tests.support.redis_server import RedisServer, redis_server_binary


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(redis_server_binary(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_a_redis_restart_mid_chat(own_redis: RedisServer, make_orch, fake_roles, tool_server) -> None:
    orch = make_orch(redis_url=own_redis.url, retry_after_s=2)
    gate = threading.Event()

    fake_roles.planner = gated_planner(gate)
    result: dict[str, httpx.Response] = {}
    body = {"query": "q", "chat_id": "r1", "tools": [tool("t", tool_server.url + "/echo")]}
    poster = threading.Thread(target=lambda: result.update(r=httpx.post(orch.url + "/chat", json=body, timeout=60)))
    poster.start()

    deadline = time.monotonic() + 30
    while fake_roles.count("planner") < 2:
        assert time.monotonic() < deadline, "the chat never reached its second planner call"
        time.sleep(0.05)
    own_redis.stop()

    # While Redis is down: 503 with Retry-After, and no new chat.
    for response in (orch.client.get("/chat/r1"), orch.chat(query="another"), orch.client.get("/ready")):
        assert response.status_code == 503 and response.headers["retry-after"] == "2"
    assert orch.client.get("/health").status_code == 200

    gate.set()  # the planner answers; the step write fails and is retried until Redis is back

    def append_failures() -> float:
        for line in orch.client.get("/metrics").text.splitlines():
            if line.startswith('umi_orchestrator_redis_errors_total{op="append"}'):
                return float(line.split()[-1])
        return 0.0

    while append_failures() < 1:
        assert time.monotonic() < deadline + 30, "the loop never tried to write while Redis was down"
        time.sleep(0.05)
    own_redis.start()

    poster.join(timeout=60)
    doc = result["r"].json()
    assert result["r"].status_code == 200 and doc["status"] == "completed", doc
    assert [s["index"] for s in doc["steps"]] == [0, 1, 2, 3, 4]
    assert orch.client.get("/chat/r1").json()["steps"] == doc["steps"]
    assert tool_server.total() == 1
    assert orch.client.get("/ready").status_code == 200
    assert orch.client.get("/chat/another").status_code == 404  # the refused create left nothing
