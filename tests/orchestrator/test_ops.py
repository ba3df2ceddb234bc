"""Operations: health, readiness, metrics, JSON logs with chat_id and step, settings."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from tests.support.orchestrator_fakes import Fail, tool
from umi.engines.process import free_port

from tests.support.metrics import metric_value

from umi.logs import JsonFormatter
from orchestrator.settings import Settings


def test_health_ready_and_metrics(orch, fake_roles, tool_server) -> None:
    assert orch.client.get("/health").json()["status"] == "ok"
    ready = orch.client.get("/ready").json()
    assert ready["status"] == "ready" and ready["mode"] == "multi-llm"
    assert set(ready["roles"]) == {"planner", "caller", "summarizer"}

    orch.chat(query="q", tools=[tool("t", tool_server.url + "/echo")])
    fake_roles.planner = lambda req: Fail(500)
    orch.chat(query="q2")
    text = orch.client.get("/metrics").text
    assert metric_value(text, "umi_orchestrator_chats_total", status="completed") == 1
    assert metric_value(text, "umi_orchestrator_chats_total", status="failed") == 1
    assert metric_value(text, "umi_orchestrator_steps_total", role="planner") == 2
    assert metric_value(text, "umi_orchestrator_steps_total", role="observation") == 1
    assert metric_value(text, "umi_orchestrator_role_errors_total", kind="http_status", role="planner") == 3
    assert metric_value(text, "umi_orchestrator_role_seconds_count", role="caller") == 1
    assert metric_value(text, "umi_orchestrator_tool_seconds_count", tool="t") == 1
    assert metric_value(text, "umi_orchestrator_redis_seconds_count", op="append") >= 5
    assert metric_value(text, "umi_orchestrator_chats_running") == 0


def test_ready_is_503_without_redis(make_orch) -> None:
    orch = make_orch(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout_s=0.5)
    response = orch.client.get("/ready")
    assert response.status_code == 503 and "retry-after" in response.headers
    assert orch.client.get("/health").status_code == 200


def test_log_records_carry_chat_id_and_step(orch, tool_server, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="umi.orchestrator"):
        doc = orch.chat(query="q", tools=[tool("t", tool_server.url + "/echo")]).json()
    written = [r for r in caplog.records if r.getMessage().endswith("step written")]
    assert [(r.chat_id, r.step) for r in written] == [(doc["chat_id"], i) for i in range(5)]  # type: ignore[attr-defined]
    line = json.loads(JsonFormatter().format(written[1]))
    assert line["chat_id"] == doc["chat_id"] and line["step"] == 1 and line["msg"] == "caller step written"


def test_settings_come_from_umi_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UMI_TOOL_ALLOWLIST", "tools, 10.0.0.0/8")
    monkeypatch.setenv("UMI_API_KEYS", "a,b")
    monkeypatch.setenv("UMI_BACKBONE_URL", "")
    monkeypatch.setenv("UMI_OBSERVATION_MAX_CHARS", "77")
    settings = Settings()
    assert settings.allowlist.allows_name("TOOLS") and not settings.allowlist.allows_name("redis")
    assert settings.api_key_list == {"a", "b"}
    assert settings.backbone_url is None and not settings.single_model
    assert settings.observation_max_chars == 77 and settings.chat_ttl_s == 7 * 24 * 3600


def test_every_setting_is_documented_with_its_default() -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    start = doc.index("## `umi serve orchestrator`")
    table = doc[start : doc.index("\n## ", start)]
    rows = {line.split("|")[1].strip(" `"): line.split("|")[3].strip(" `") for line in table.splitlines()
            if line.startswith("| `UMI_")}  # fmt: skip
    for name, field in Settings.model_fields.items():
        env = f"UMI_{name.upper()}"
        assert env in rows, f"{env} is not in the orchestrator's table of docs/configuration.md"
        value = field.default
        default = "" if value is None else str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
        assert default in rows[env] or (default == "" and rows[env] in ("unset", "")), (env, rows[env], default)


def test_serve_with_two_workers_logs_json_with_chat_id(spawn_orch, tool_server) -> None:
    orch = spawn_orch(args=("--workers", "2"), log_level="DEBUG")
    body = {"query": "q", "tools": [tool("t", tool_server.url + "/echo")]}
    docs = [httpx.post(orch.url + "/chat", json=body, timeout=30).json() for _ in range(4)]
    assert [d["status"] for d in docs] == ["completed"] * 4
    for doc in docs:  # any worker can read any chat: the state is in Redis
        assert httpx.get(f"{orch.url}/chat/{doc['chat_id']}", timeout=10).json()["steps"] == doc["steps"]
    orch.stop()
    lines = [json.loads(line) for line in orch.log_path.read_text().splitlines() if line.startswith("{")]
    written = [line for line in lines if line["msg"].endswith("step written")]
    assert {line["chat_id"] for line in written} == {d["chat_id"] for d in docs}
    assert sorted(line["step"] for line in written) == sorted(list(range(5)) * 4)
