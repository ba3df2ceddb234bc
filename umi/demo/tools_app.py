"""The demo tools server: eight deterministic tools (nine with ``get_population``, the tool that
``caller-v2`` learns) over the synthetic data of :mod:`umi.demo.tool_data`.

    GET  /tools[?set=v1|v2]  OpenAI function tools, each with its "endpoint" on this server
    POST /tools/{name}       JSON arguments -> JSON result; bad arguments -> 400/422 with
                             {"error": "<a message the agent can read>"}
    GET  /health
    /mcp                     the same tools as an MCP server (Streamable HTTP; umi.demo.tools_mcp)

``umi serve tools --port 8300`` runs it. ``UMI_TOOLS_PUBLIC_URL`` sets the base URL written into
the endpoints (default: the URL the server listens on), e.g. ``http://tools:8300`` in compose.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse

from umi.demo import tool_data as data
from umi.settings_cli import SettingsParser, parse_or_exit, settings_parser

JSON = dict[str, Any]


@dataclass(frozen=True)
class DemoTool:
    name: str
    description: str
    properties: dict[str, JSON]
    run: Callable[..., JSON]
    since: Literal["v1", "v2"] = "v1"

    def schema(self, base_url: str) -> JSON:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": {"type": "object", "properties": self.properties, "required": list(self.properties)},
            },
            "endpoint": {"url": f"{base_url}/tools/{self.name}", "method": "POST", "timeout_s": 10.0},
        }


def _s(description: str) -> JSON:
    return {"type": "string", "description": description}


def _n(description: str) -> JSON:
    return {"type": "number", "description": description}


TOOLS: tuple[DemoTool, ...] = (
    DemoTool("get_weather", "Current weather in a city", {"city": _s("City name")}, lambda a: data.weather(a["city"])),
    DemoTool(
        "convert_currency", "Convert an amount of money between currencies",
        {"amount": _n("Amount"), "from_currency": _s("3-letter code"), "to_currency": _s("3-letter code")},
        lambda a: data.convert_currency(float(a["amount"]), a["from_currency"], a["to_currency"]),
    ),
    DemoTool("calculate", "Evaluate an arithmetic expression", {"expression": _s("e.g. 12 * (3 + 4)")},
             lambda a: data.calculate(a["expression"])),
    DemoTool("get_time", "Local time in a city", {"city": _s("City name")}, lambda a: data.local_time(a["city"])),
    DemoTool(
        "convert_units", "Convert a value between units",
        {"value": _n("Value"), "from_unit": _s("Unit, e.g. km"), "to_unit": _s("Unit, e.g. mi")},
        lambda a: data.convert_units(float(a["value"]), a["from_unit"], a["to_unit"]),
    ),
    DemoTool("get_stock_price", "Latest price of a stock", {"symbol": _s("Ticker symbol")},
             lambda a: data.stock_price(a["symbol"])),
    DemoTool(
        "search_flights", "Flights between two cities on a date",
        {"origin": _s("City"), "destination": _s("City"), "date": _s("YYYY-MM-DD")},
        lambda a: data.search_flights(a["origin"], a["destination"], a["date"]),
    ),
    DemoTool("translate_word", "Translate a word", {"word": _s("Word"), "language": _s("Target language")},
             lambda a: data.translate_word(a["word"], a["language"])),
    DemoTool("get_population", "Population of a city", {"city": _s("City name")},
             lambda a: data.population(a["city"]), since="v2"),
)
BY_NAME = {t.name: t for t in TOOLS}


def tool_set(version: Literal["v1", "v2"] = "v1") -> Sequence[DemoTool]:
    return [t for t in TOOLS if version == "v2" or t.since == "v1"]


def _check_types(tool: DemoTool, args: Any) -> str | None:
    if not isinstance(args, dict):
        return "arguments must be a JSON object"
    missing = [k for k in tool.properties if k not in args]
    if missing:
        return f"missing argument(s): {', '.join(missing)}"
    extra = [k for k in args if k not in tool.properties]
    if extra:
        return f"unknown argument(s): {', '.join(extra)}; expected: {', '.join(tool.properties)}"
    for key, spec in tool.properties.items():
        value = args[key]
        if spec["type"] == "number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return f"{key} must be a number (got {value!r})"
        if spec["type"] == "string" and not isinstance(value, str):
            return f"{key} must be a string (got {value!r})"
    return None


def create_app(public_url: str | None = None) -> FastAPI:
    from mcp.server.transport_security import TransportSecuritySettings

    from umi.demo.tools_mcp import mcp_server  # it builds on this module's tools

    # No Host-header allowlist: the demo server is reached by whatever name the stack gives it (tools:8300).
    security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    mcp_app = mcp_server(tool_set("v1")).streamable_http_app(streamable_http_path="/", transport_security=security)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with mcp_app.router.lifespan_context(mcp_app):  # the MCP sessions' task group
            yield

    app = FastAPI(title="umi-serve demo tools", version="1", lifespan=lifespan)
    app.mount("/mcp", mcp_app)
    state: dict[str, str | None] = {"public_url": public_url or os.environ.get("UMI_TOOLS_PUBLIC_URL")}

    def base(request: Request) -> str:
        return (state["public_url"] or str(request.base_url)).rstrip("/")

    @app.get("/health")
    async def health() -> JSON:
        return {"status": "ok"}

    @app.get("/tools")
    async def list_tools(request: Request, set: Literal["v1", "v2"] = Query("v1")) -> JSON:  # noqa: A002
        return {"tools": [t.schema(base(request)) for t in tool_set(set)]}

    @app.post("/tools/{name}")
    async def run_tool(name: str, request: Request) -> JSONResponse:
        tool = BY_NAME.get(name)
        if tool is None:
            return JSONResponse({"error": f"no tool named {name!r}"}, status_code=404)
        try:
            args = await request.json()
        except ValueError:
            return JSONResponse({"error": "the body must be JSON arguments"}, status_code=400)
        problem = _check_types(tool, args)
        if problem:
            return JSONResponse({"error": f"{name}: {problem}"}, status_code=422)
        try:
            return JSONResponse(tool.run(args))
        except data.ToolInputError as exc:
            return JSONResponse({"error": f"{name}: {exc}"}, status_code=400)

    return app


def serve_parser() -> SettingsParser:
    """The flags of ``umi serve tools``: ``--host`` and ``--port`` (the tools server has no settings)."""
    return settings_parser(None, "umi serve tools", port=8300, description="Run the demo tools server.")


def serve(argv: Sequence[str] = ()) -> None:
    import uvicorn

    args, _ = parse_or_exit(serve_parser(), argv)
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="info")
