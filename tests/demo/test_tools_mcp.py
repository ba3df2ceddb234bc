"""The demo tools' MCP server (umi.demo.tools_mcp) against the official ``mcp`` SDK's client."""

from __future__ import annotations

import asyncio

import httpx
from mcp import Client

from tests.support.orchestrator_fakes import ThreadServer
from umi.demo.tools_app import TOOLS, create_app, tool_set


def test_the_mcp_server_lists_the_demo_tools_and_answers_the_http_endpoints_bytes():
    async def through_mcp(url: str) -> tuple[list[str], str, bool, bool]:
        async with Client(url + "/mcp") as client:
            listed = await client.list_tools()
            weather = await client.call_tool("get_weather", {"city": "Riga"})
            broken = await client.call_tool("calculate", {"expression": "1/0"})
        return [t.name for t in listed.tools], weather.content[0].text, weather.is_error, broken.is_error

    with ThreadServer(create_app()) as server:
        names, text, weather_error, broken_error = asyncio.run(through_mcp(server.url))
        over_http = httpx.post(server.url + "/tools/get_weather", json={"city": "Riga"}).text
    assert names == [t.name for t in tool_set("v1")] and len(names) == 8 < len(TOOLS)
    assert (text, weather_error, broken_error) == (over_http, False, True)
