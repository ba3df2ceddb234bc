"""MCP servers as tool sources: the demo tools' MCP server (the official ``mcp`` SDK's server,
Streamable HTTP on loopback) through ``POST /chat``, ``/v1/responses`` and ``UMI_MCP_SERVERS``,
and a real MCP server from PyPI (``mcp-server-time`` behind ``mcp-proxy``,
scripts/ensure-mcp-time.sh); scripted role services pick the tool, the MCP side is real."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

import openai
import pytest

from tests.support.orchestrator_fakes import call
from umi.engines.process import free_port
from umi.demo.tools_app import create_app as demo_tools_app

pytestmark = pytest.mark.redis


@pytest.fixture
def mcp_url(servers) -> str:
    return servers.start(demo_tools_app()).url + "/mcp"


MCP_TIME_BIN = Path(__file__).resolve().parents[2] / ".venv-mcp-time" / "bin"


@pytest.fixture
def time_server_url() -> Iterator[str]:
    """mcp-server-time (stdio, from PyPI) served over Streamable HTTP by mcp-proxy on loopback."""
    if not (MCP_TIME_BIN / "mcp-proxy").exists():
        if os.environ.get("CI"):
            pytest.fail("no .venv-mcp-time: run the suite with `make test` (scripts/ensure-mcp-time.sh)")
        pytest.skip("no .venv-mcp-time: run scripts/ensure-mcp-time.sh")
    port = free_port()
    argv = [str(MCP_TIME_BIN / "mcp-proxy"), "--host", "127.0.0.1", "--port", str(port), "--",
            str(MCP_TIME_BIN / "mcp-server-time"), "--local-timezone", "UTC"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "mcp-proxy did not start"
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_a_real_mcp_server_from_pypi_is_a_tool_source(orch, fake_roles, time_server_url):
    fake_roles.caller = lambda req: call("get_current_time", {"timezone": "Asia/Tokyo"})
    doc = orch.chat(query="What time is it in Tokyo?", tools=[source(time_server_url)]).json()
    offered = [t["function"]["name"] for t in fake_roles.requests["planner"][0]["tools"]]
    assert offered == ["get_current_time", "convert_time"]
    assert "timezone" in fake_roles.requests["planner"][0]["tools"][0]["function"]["parameters"]["properties"]
    observation = next(s for s in doc["steps"] if s["role"] == "observation")
    assert observation["error"] is None and json.loads(observation["content"])["timezone"] == "Asia/Tokyo"
    assert doc["status"] == "completed"


def source(url: str, **extra) -> dict:
    return {"type": "mcp", "server_label": "demo", "server_url": url, **extra}


def test_a_chat_gets_the_allowed_tools_of_an_mcp_server_and_their_results_as_observations(orch, fake_roles, mcp_url):
    fake_roles.caller = lambda req: call("get_weather", {"city": "Paris"})
    doc = orch.chat(query="Weather in Paris?", tools=[source(mcp_url, allowed_tools=["get_weather", "get_time"])]).json()
    assert doc["status"] == "completed"
    offered = [t["function"]["name"] for t in fake_roles.requests["planner"][0]["tools"]]
    assert offered == ["get_weather", "get_time"]
    assert fake_roles.requests["planner"][0]["tools"][0]["function"]["parameters"]["properties"]["city"]["type"] == "string"
    observation = next(s for s in doc["steps"] if s["role"] == "observation")
    assert (observation["error"], json.loads(observation["content"])["city"]) == (None, "Paris")


def test_an_mcp_tool_error_is_an_error_observation(orch, fake_roles, mcp_url):
    fake_roles.caller = lambda req: call("calculate", {"expression": "1/0"})
    doc = orch.chat(query="1/0?", tools=[source(mcp_url)]).json()
    observation = next(s for s in doc["steps"] if s["role"] == "observation")
    assert doc["status"] == "completed"
    assert observation["error"] == "tool_error" and "division by zero" in observation["content"]


def test_an_mcp_server_that_is_down_or_answers_garbage_is_named_in_a_502(make_orch, tool_server):
    orch = make_orch()
    for url in (f"http://127.0.0.1:{free_port()}/mcp", tool_server.url + "/echo"):
        answer = orch.chat(query="q", tools=[source(url)])
        assert answer.status_code == 502, url
        assert (answer.json()["error"]["type"], answer.json()["error"]["field"]) == ("mcp_unavailable", "tools[0].server_url")


def test_an_mcp_server_the_policy_refuses_is_a_422_naming_it_so_clients_do_not_retry(make_orch):
    orch = make_orch()  # the allowlist is 127.0.0.1
    answer = orch.chat(query="q", tools=[source("http://10.1.2.3/mcp")])
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert (error["type"], error["field"]) == ("tool_refused", "tools[0].server_url")
    assert "not on the tool allowlist" in error["message"]


def test_the_responses_api_takes_mcp_tool_sources(orch, fake_roles, mcp_url):
    fake_roles.caller = lambda req: call("get_time", {"city": "Tokyo"})
    client = openai.OpenAI(base_url=orch.url + "/v1", api_key="unused", max_retries=0)
    response = client.responses.create(model="alpha-umi", input="Time in Tokyo?", tools=[source(mcp_url, require_approval="never")])
    assert response.status == "completed"
    assert "Tokyo" in response.output_text


def test_server_wide_mcp_servers_join_every_chat(make_orch, fake_roles, mcp_url):
    orch = make_orch(mcp_servers=json.dumps([source(mcp_url, allowed_tools=["get_stock_price"])]))
    fake_roles.caller = lambda req: call("get_stock_price", {"symbol": "ACME"})
    doc = orch.chat(query="ACME?").json()
    assert [t["function"]["name"] for t in fake_roles.requests["planner"][0]["tools"]] == ["get_stock_price"]
    assert doc["status"] == "completed"


def test_an_mcp_source_with_a_url_that_is_not_http_is_a_422_naming_it(orch):
    answer = orch.chat(query="q", tools=[source("ftp://example.com/mcp")])
    assert (answer.status_code, answer.json()["error"]["field"]) == (422, "tools[0].server_url")
