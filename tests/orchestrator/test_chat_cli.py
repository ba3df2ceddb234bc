"""``umi chat list`` / ``umi chat show`` against a running orchestrator (fake role services, Redis)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.orchestrator.conftest import Orch
from tests.support.orchestrator_fakes import ToolServer, tool
from umi.cli import main

KEY = "cli-key"


def test_umi_chat_list_and_show_print_the_chats_of_the_key(
    make_orch: Callable[..., Orch], tool_server: ToolServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    orch = make_orch(api_keys=KEY)
    headers = {"Authorization": f"Bearer {KEY}"}
    doc = orch.client.post("/chat", json={"query": "weather in Oslo", "tools": [tool("weather", f"{tool_server.url}/echo")]},
                           headers=headers).json()  # fmt: skip
    assert doc["status"] == "completed"

    assert main(["chat", "--url", orch.url, "--key", KEY, "list"]) == 0
    listed = capsys.readouterr().out
    assert doc["chat_id"] in listed and "weather in Oslo" in listed and "completed" in listed
    assert main(["chat", "--url", orch.url, "--key", KEY, "list", "--status", "failed"]) == 0
    assert doc["chat_id"] not in capsys.readouterr().out

    assert main(["chat", "--url", orch.url, "--key", KEY, "show", doc["chat_id"]]) == 0
    shown = capsys.readouterr().out
    for expected in ("#0 planner", "#1 caller", "#2 observation", "#3 planner", "#4 summarizer", "waterfall", "planner-v1"):
        assert expected in shown
    assert "call weather" in shown

    assert main(["chat", "--url", orch.url, "list"]) == 1  # no key: the orchestrator's 401, one line
    assert "401" in capsys.readouterr().err
