"""The viewer in a real browser: Debian's headless chromium (scripts/ensure-chromium.sh, run by
`make test`) driven by Playwright, against an orchestrator with API keys, the fake role services
and a tool server. Opens /ui, needs the key, finds a finished chat, opens it (steps, waterfall),
and watches a running chat update live. Screenshots of both pages go to the test's tmp folder
(``UMI_DOC_SCREENSHOTS=DIR`` also writes them there: docs/img holds the committed ones)."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.orchestrator.conftest import Orch
from tests.support.orchestrator_fakes import FakeRoles, ToolServer, has_observation, plan, query_of, tool

CHROMIUM = os.environ.get("UMI_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
KEY = "viewer-key"


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        message = f"no chromium at {CHROMIUM}: run scripts/ensure-chromium.sh (make test does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def shoot(page: Any, tmp_path: Path, name: str) -> None:
    out = tmp_path / f"{name}.png"
    page.screenshot(path=str(out))
    assert out.stat().st_size > 1000
    docs = os.environ.get("UMI_DOC_SCREENSHOTS")
    if docs:
        shutil.copy(out, Path(docs) / f"{name}.png")


def test_the_viewer_lists_opens_and_follows_chats_in_a_browser(
    browser: Any, make_orch: Callable[..., Orch], fake_roles: FakeRoles, tool_server: ToolServer, tmp_path: Path
) -> None:
    gate = threading.Event()

    async def planner(req: Any) -> Any:  # the "live" chat waits after its tool's observation
        if not has_observation(req):
            return plan("I should look this up with the tool.", "caller")
        if query_of(req) == "live question":
            import asyncio

            await asyncio.to_thread(gate.wait, 60)
        return plan("The tool answered; I can conclude.", "conclusion")

    fake_roles.planner = planner
    orch = make_orch(api_keys=KEY)
    headers = {"Authorization": f"Bearer {KEY}"}
    tools = [tool("weather", f"{tool_server.url}/echo")]
    done = orch.client.post("/chat", json={"query": "What is the weather in Oslo?", "tools": tools}, headers=headers).json()
    orch.client.post("/chat", json={"query": "Price of a stock", "tools": tools}, headers=headers)
    assert done["status"] == "completed"
    live = threading.Thread(
        target=lambda: orch.client.post("/chat", json={"query": "live question", "tools": tools, "chat_id": "live-1"}, headers=headers),
        daemon=True,
    )
    live.start()

    page = browser.new_page(viewport={"width": 1000, "height": 640})
    try:
        page.goto(orch.url + "/ui")
        page.wait_for_selector("text=An API key is required")  # nothing without the key
        assert page.locator("tr.chat-row").count() == 0
        page.fill("#key", KEY)
        page.press("#key", "Enter")
        page.wait_for_selector("tr.chat-row >> nth=2")
        assert page.locator("tr.chat-row").count() == 3
        assert KEY not in page.url
        shoot(page, tmp_path, "viewer-list")

        page.fill("#search", "oslo")
        page.wait_for_function("document.querySelectorAll('tr.chat-row').length === 1")
        page.click("tr.chat-row")
        page.wait_for_selector("#chat-status")
        assert page.inner_text("#chat-status") == "completed"
        assert page.locator("#steps .step").count() == 5
        assert page.locator("#waterfall .wf-row").count() == 5
        assert [page.inner_text(f"#steps .step >> nth={i} >> .role").lower() for i in range(5)] == [
            "planner", "caller", "observation", "planner", "summarizer"
        ]
        assert "What is the weather in Oslo?" in page.inner_text("#chat-query")
        assert "null" not in page.inner_text("#chat-head")
        shoot(page, tmp_path, "viewer-chat")
        page.click("#steps .step.observation summary")
        assert '"q"' in page.inner_text("#steps .step.observation pre")

        page.goto(orch.url + "/ui#/chat/live-1")
        page.wait_for_selector("text=● live")
        page.wait_for_function("document.querySelectorAll('#steps .step').length === 3")
        assert page.inner_text("#chat-status") == "running"
        gate.set()
        page.wait_for_function("document.getElementById('chat-status').textContent === 'completed'")
        assert page.locator("#steps .step").count() == 5 and page.locator("#waterfall .wf-row").count() == 5
    finally:
        gate.set()
        page.close()
        live.join(timeout=30)
