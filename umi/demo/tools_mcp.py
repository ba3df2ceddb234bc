"""The demo tools as an MCP server (the official ``mcp`` SDK's ``MCPServer``, Streamable HTTP):
the same tools, names and arguments as ``umi.demo.tools_app``'s HTTP endpoints, mounted on the
tools server at ``/mcp`` (``make up``: ``http://127.0.0.1:8300/mcp``).

Each tool's ``inputSchema`` is built by the SDK from a signature made of the tool's properties
(strings and numbers, each with its description, all required). A result is one text block with
the bytes the HTTP endpoint answers (compact JSON, as Starlette's ``JSONResponse`` writes it), so
the observation the models read is the same through either; a bad input is an MCP tool error
(``isError``) with the same message the HTTP endpoint answers.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from umi.demo import tool_data as data
from umi.demo.tools_app import DemoTool

_TYPES: dict[str, type] = {"string": str, "number": float}


def _function(tool: DemoTool) -> Callable[..., str]:
    def run(**arguments: Any) -> str:
        try:
            return json.dumps(tool.run(arguments), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except data.ToolInputError as exc:
            raise ToolError(f"{tool.name}: {exc}") from None

    parameters = [
        inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[_TYPES[spec["type"]], Field(description=spec["description"])],  # type: ignore[valid-type]
        )
        for name, spec in tool.properties.items()
    ]  # fmt: skip
    run.__signature__ = inspect.Signature(parameters, return_annotation=str)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": str}
    run.__name__ = tool.name
    return run


def mcp_server(tools: Sequence[DemoTool]) -> MCPServer:
    """An MCP server with ``tools``."""
    server = MCPServer("umi-serve demo tools")
    for tool in tools:
        server.add_tool(_function(tool), name=tool.name, description=tool.description, structured_output=False)
    return server
