"""Test doubles for the orchestrator: scripted fake role services and a counting tool server.

Both are small FastAPI apps served by uvicorn on 127.0.0.1 in a thread (``ThreadServer``).
The fake role services validate every request against umi.roleapi, so a request the real role
services would refuse fails the test.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from umi.format.parsers import NEXT_SUFFIX
from umi.format.turns import caller_turn_content
from umi.roleapi import (
    CHAT_ID_HEADER,
    BackboneRequest,
    CallRequest,
    CallResponse,
    ModelInfo,
    PlanRequest,
    PlanResponse,
    SummarizeRequest,
    SummarizeResponse,
    Usage,
)
from umi.sse import MEDIA_TYPE, encode_event


class ThreadServer:
    """An ASGI app served by uvicorn in a thread on a free port of 127.0.0.1."""

    def __init__(self, app: Any):
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.port = 0
        self.url = ""

    def __enter__(self) -> "ThreadServer":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.signal_exit()
        self.join()

    def signal_exit(self) -> None:
        self.server.should_exit = True

    def join(self) -> None:
        self.thread.join(timeout=15)


class ServerGroup:
    """Servers of one test, stopped together (uvicorn's shutdown polls; in parallel it is quick)."""

    def __init__(self) -> None:
        self.servers: list[ThreadServer] = []

    def start(self, app: Any) -> ThreadServer:
        server = ThreadServer(app).__enter__()
        self.servers.append(server)
        return server

    def stop(self) -> None:
        for server in self.servers:
            server.signal_exit()
        for server in self.servers:
            server.join()


# ------------------------------------------------------------------ role replies

MODEL = {"planner": "planner-v1", "caller": "caller-v1", "summarizer": "summarizer-v1", "backbone": "backbone-v1"}


def _meta(role: str, text: str) -> dict[str, Any]:
    return {
        "text": text, "model": ModelInfo(name=f"fake-{role}", version=MODEL[role]),
        "usage": Usage(prompt_tokens=10, completion_tokens=len(text.split())), "latency_ms": 1.0,
    }  # fmt: skip


def plan(thought: str, next: str = "caller") -> PlanResponse:
    turn = f"{thought}\n {NEXT_SUFFIX[next]}"
    return PlanResponse(thought=thought, next=next, turn=turn, **_meta("planner", turn))


def call(name: str, arguments: dict | str) -> CallResponse:
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    parsed = arguments if isinstance(arguments, dict) else None
    turn = caller_turn_content(name, raw)
    return CallResponse(
        name=name, arguments=parsed, arguments_raw=raw, valid=parsed is not None, hallucinated=False,
        error=None if parsed is not None else "arguments are not valid JSON", turn=turn, **_meta("caller", turn),
    )  # fmt: skip


def summary(answer: str) -> SummarizeResponse:
    return SummarizeResponse(answer=answer, **_meta("summarizer", answer))


class Fail:
    """A scripted error answer from a role service."""

    def __init__(self, status: int = 500, message: str = "engine exploded", retry_after: int | None = None):
        self.status, self.message, self.retry_after = status, message, retry_after

    def response(self) -> JSONResponse:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else None
        body = {"error": {"type": "engine", "message": self.message, "field": None}}
        return JSONResponse(body, status_code=self.status, headers=headers)


def has_observation(req: Any) -> bool:
    return any(t.role == "observation" for t in req.history)


def query_of(req: Any) -> str:
    return req.history[0].content


def default_planner(req: PlanRequest) -> PlanResponse:
    return plan("I know enough.", "conclusion") if has_observation(req) else plan("I need a tool.", "caller")


def gated_planner(gate: threading.Event, timeout_s: float = 60) -> Callable[[PlanRequest], Any]:
    """A planner that calls a tool first, and after an observation waits for ``gate`` to conclude:
    it holds its chat at the step after the tool's observation."""

    async def planner(req: PlanRequest) -> PlanResponse:
        if has_observation(req):
            await asyncio.to_thread(gate.wait, timeout_s)
            return plan("Done.", "conclusion")
        return plan("Call the tool.", "caller")

    return planner


def default_caller(req: CallRequest) -> CallResponse:
    """Calls the first tool with the query; with no tool, a name that is not one (as a model might)."""
    docs = req.tooldocs()
    return call(docs[0].Name if docs else "no_such_tool", {"q": query_of(req)})


def default_summarizer(req: SummarizeRequest) -> SummarizeResponse:
    observations = [t.content for t in req.history if t.role == "observation"]
    return summary("answer: " + (observations[-1] if observations else "nothing"))


class FakeRoles:
    """The planner, caller, summarizer and backbone services in one app, scripted per test.

    A script gets the validated request and returns a response model or a ``Fail``; it may be
    async (to wait on a gate). ``requests[role]`` keeps every raw JSON body received,
    ``chat_ids[role]`` the ``X-Umi-Chat-Id`` header of each (None when absent).
    """

    def __init__(self) -> None:
        self.planner: Callable[[PlanRequest], Any] = default_planner
        self.caller: Callable[[CallRequest], Any] = default_caller
        self.summarizer: Callable[[SummarizeRequest], Any] = default_summarizer
        self.backbone: Callable[[BackboneRequest], Any] | None = None
        self.requests: dict[str, list[dict]] = defaultdict(list)
        self.chat_ids: dict[str, list[str | None]] = defaultdict(list)
        self.lock = threading.Lock()
        self.app = self._build()

    def count(self, role: str) -> int:
        with self.lock:
            return len(self.requests[role])

    def _build(self) -> FastAPI:
        app = FastAPI()
        routes = {
            "/v1/plan": ("planner", PlanRequest), "/v1/call": ("caller", CallRequest),
            "/v1/summarize": ("summarizer", SummarizeRequest), "/v1/step": ("backbone", BackboneRequest),
        }  # fmt: skip

        for path, (role, model) in routes.items():

            async def handler(request: Request, role: str = role, model: Any = model) -> Response:
                raw = await request.json()
                with self.lock:
                    self.requests[role].append(raw)
                    self.chat_ids[role].append(request.headers.get(CHAT_ID_HEADER))
                req = model.model_validate(raw)  # an invalid request fails the test (500)
                result = getattr(self, role)(req)
                if inspect.isawaitable(result):
                    result = await result
                if isinstance(result, Fail):
                    return result.response()
                if not req.stream:
                    return Response(result.model_dump_json(), media_type="application/json")
                return Response(self._sse(result), media_type=MEDIA_TYPE)

            app.add_api_route(path, handler, methods=["POST"])
        return app

    @staticmethod
    def _sse(result: Any) -> bytes:
        words = result.text.split(" ")
        chunks = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
        frames = [encode_event("token", {"text": c}) for c in chunks]
        return b"".join(frames) + encode_event("result", result.model_dump_json())


# ------------------------------------------------------------------ tools


class ToolServer:
    """Real HTTP tools that count their executions.

    ``/echo`` answers the arguments; ``/fail`` 500; ``/slow`` sleeps ``sleep`` seconds;
    ``/big`` a long text; ``/gate`` waits until ``gate`` is set (or 30 s).
    ``executions[(name, key)]`` counts calls by tool and by the arguments' ``key`` field.
    """

    def __init__(self) -> None:
        self.executions: Counter[tuple[str, str]] = Counter()
        self.headers: list[dict[str, str]] = []
        self.gate = threading.Event()
        self.lock = threading.Lock()
        self.app = self._build()

    def total(self) -> int:
        with self.lock:
            return sum(self.executions.values())

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.api_route("/{name}", methods=["GET", "POST"])
        async def tool(name: str, request: Request) -> Response:
            if request.method == "POST":
                args = await request.json()
            else:
                args = dict(request.query_params)
            with self.lock:
                self.executions[(name, str(args.get("key", "")))] += 1
                self.headers.append(dict(request.headers))
            if name == "fail":
                return PlainTextResponse("backend down", status_code=500)
            if name == "slow":
                await asyncio.sleep(float(args.get("sleep", 5)))
            if name == "big":
                return PlainTextResponse("x" * 5000)
            if name == "gate":
                await asyncio.to_thread(self.gate.wait, 30)
            return JSONResponse({"echo": args, "method": request.method})

        return app


def tool(name: str, url: str | None = None, method: str = "POST", **endpoint: Any) -> dict[str, Any]:
    """An OpenAI function tool, with an endpoint when ``url`` is given."""
    out: dict[str, Any] = {
        "type": "function",
        "function": {
            "name": name, "description": f"The {name} tool",
            "parameters": {"type": "object", "properties": {"q": {"type": "string", "description": "input"}}},
        },
    }  # fmt: skip
    if url is not None:
        out["endpoint"] = {"url": url, "method": method, **endpoint}
    return out


# ------------------------------------------------------------------ in-process role client


class InProcessRoles:
    """A ``RoleClient`` that answers from a ``FakeRoles``' scripts in-process, with no server.

    Each request is encoded as the HTTP client encodes it and validated against umi.roleapi
    (so a request the real role services would refuse fails the test); a ``Fail`` becomes the
    ``RoleError`` the HTTP client raises for that status (no retries); a streamed request gets
    the response's words as token deltas."""

    def __init__(self, fake: FakeRoles):
        self.fake = fake

    async def _answer(self, role: str, model: Any, request: Any, on_token: Any) -> Any:
        from orchestrator.roles import RoleError, encode_body

        raw = json.loads(
            encode_body(request.tools_json, request.history, request.thought, on_token is not None, request.sampling_json)
        )
        with self.fake.lock:
            self.fake.requests[role].append(raw)
        result = getattr(self.fake, role)(model.model_validate(raw))
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, Fail):
            raise RoleError(role, "http_status", f"{role} answered {result.status}: {result.message}", result.status)
        if on_token is not None:
            for word in result.text.split(" "):
                await on_token(word, 1)
        return result

    async def plan(self, request: Any, on_token: Any = None) -> PlanResponse:
        return await self._answer("planner", PlanRequest, request, on_token)

    async def call(self, request: Any, on_token: Any = None) -> CallResponse:
        return await self._answer("caller", CallRequest, request, on_token)

    async def summarize(self, request: Any, on_token: Any = None) -> SummarizeResponse:
        return await self._answer("summarizer", SummarizeRequest, request, on_token)

    async def step(self, request: Any, on_token: Any = None) -> Any:
        return await self._answer("backbone", BackboneRequest, request, on_token)

    def urls_in_use(self) -> dict[str, str]:
        return {"planner": "in-process", "caller": "in-process", "summarizer": "in-process"}

    async def aclose(self) -> None:
        return None
