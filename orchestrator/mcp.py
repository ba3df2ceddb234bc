"""Tools from MCP servers over Streamable HTTP, with the official ``mcp`` SDK's client.

A tool source ``{"type": "mcp", "server_label", "server_url", "allowed_tools", "headers"}``
(``orchestrator.models.McpServer``; the shape of OpenAI's Responses API) in a chat's ``tools``,
or server-wide in ``UMI_MCP_SERVERS``, is replaced when the chat is created by the server's tools
(``tools/list``, every page; cached per server URL and headers for ``UMI_MCP_LIST_TTL_S``),
each an OpenAI function tool whose ``parameters`` is the tool's ``inputSchema`` (the role
services turn it into their tool docs with ``umi.format.tools``, as any function tool) and whose
endpoint is the server with ``protocol: "mcp"``. The chat stores the expanded tools, so a resumed
chat needs no listing. ``allowed_tools`` keeps only the tools named.

A call is ``tools/call`` with the tool's name and arguments; the observation is the result's text
content joined by newlines (JSON ``structuredContent`` when there is no text; other content kinds
are named, ``[image]``), an error observation when ``isError`` is set.

The server URL goes through the tool policy first (``orchestrator.tools.EndpointPolicy``: scheme,
metadata hosts and addresses, ``UMI_TOOL_ALLOWLIST``, the stack's own endpoints). Unlike plain
HTTP tools, the MCP client (httpx) resolves the name again when it connects. A server that is
down, refused or answers what is not MCP makes the create a 502 ``mcp_unavailable`` naming the
tool source when listing, and an error observation when calling: never a failed chat.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from pydantic import ValidationError

from orchestrator.models import McpServer, Tool
from orchestrator.tools import EndpointPolicy, Refused
from umi.format.observations import error_observation
from umi.http_errors import HttpError

log = logging.getLogger("umi.orchestrator")
_MAX_PAGES = 50


class McpError(Exception):
    """The server could not be listed or called (refused, down, or not MCP)."""


def _key(server: McpServer) -> str:
    return hashlib.sha256(json.dumps([server.server_url, sorted(server.headers.items())]).encode()).hexdigest()


class McpTools:
    """Lists and calls MCP servers' tools; ``tools/list`` answers are cached ``ttl_s`` seconds."""

    def __init__(self, policy: EndpointPolicy, ttl_s: float, timeout_s: float):
        self.policy = policy
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self._listed: dict[str, tuple[float, list[Any]]] = {}

    async def _client(self, url: str, headers: dict[str, str]) -> tuple[httpx2.AsyncClient, Client]:
        await self.policy.check(url)  # raises Refused
        http = httpx2.AsyncClient(headers=headers, timeout=self.timeout_s, trust_env=False)
        return http, Client(streamable_http_client(url, http_client=http))

    async def _list(self, server: McpServer) -> list[Any]:
        key = _key(server)
        cached = self._listed.get(key)
        if cached is not None and time.monotonic() - cached[0] < self.ttl_s:
            return cached[1]
        try:
            http, client = await self._client(server.server_url, dict(server.headers))
        except Refused as exc:
            raise McpError(f"the MCP server was refused: {exc}") from None
        tools: list[Any] = []
        try:
            async with asyncio.timeout(self.timeout_s), http, client:
                cursor = None
                for _ in range(_MAX_PAGES):
                    page = await client.list_tools(cursor=cursor)
                    tools.extend(page.tools)
                    cursor = page.next_cursor
                    if not cursor:
                        break
        except Exception as exc:  # down, timeout, not MCP: the SDK's and anyio's errors alike
            raise McpError(f"tools/list failed: {type(exc).__name__}: {exc}") from None
        self._listed[key] = (time.monotonic(), tools)
        return tools

    async def expand(self, tools: Sequence[Tool | McpServer], field: str = "tools") -> list[Tool]:
        """``tools`` with each MCP source replaced by its server's tools (HttpError 502
        ``mcp_unavailable`` naming the source when it cannot be listed)."""
        out: list[Tool] = []
        for i, source in enumerate(tools):
            if isinstance(source, Tool):
                out.append(source)
                continue
            try:
                listed = await self._list(source)
            except McpError as exc:
                message = f"MCP server {source.server_label!r} at {source.server_url}: {exc}"
                raise HttpError(502, "mcp_unavailable", message, f"{field}[{i}].server_url") from None
            allowed = set(source.allowed_tools) if source.allowed_tools is not None else None
            for mcp_tool in listed:
                if allowed is not None and mcp_tool.name not in allowed:
                    continue
                spec = {"name": mcp_tool.name, "description": mcp_tool.description or "", "parameters": mcp_tool.input_schema}
                endpoint = {"url": source.server_url, "headers": dict(source.headers), "protocol": "mcp"}
                try:
                    out.append(Tool.model_validate({"type": "function", "function": spec, "endpoint": endpoint}))
                except ValidationError as exc:
                    log.warning("MCP tool %s of %s left out: %s", mcp_tool.name, source.server_label, exc.errors()[0]["msg"])
        return out

    async def call(self, tool: Tool, arguments: dict[str, Any]) -> tuple[str, str | None]:
        """``tools/call``: (the observation, the kind of error or None). Raises Refused (the
        policy) or McpError (down, not MCP); ``ToolRunner.run`` makes either the observation."""
        endpoint = tool.endpoint
        assert endpoint is not None
        http, client = await self._client(endpoint.url, dict(endpoint.headers))
        try:
            async with http, client:
                result = await client.call_tool(tool.function.name, arguments)
        except Exception as exc:
            raise McpError(f"tools/call failed: {type(exc).__name__}: {exc}") from None
        texts = [getattr(block, "text", None) or f"[{block.type}]" for block in result.content]
        text = "\n".join(texts) if texts else json.dumps(result.structured_content)
        if result.is_error:
            return error_observation(f"MCP tool error: {text}"), "tool_error"
        return text, None
