"""A stand-in for ``vllm serve`` in tests: the same command line, environment switches, endpoints
and error shapes as vLLM's OpenAI server, with weights that are only directories on disk.

    python tests/support/fake_vllm.py serve MODEL --host H --port P [vllm flags] [--fake-* flags]

What it does like vLLM:
- exits non-zero at start-up when MODEL has no readable config.json (weights that fail to load);
- ``/v1/completions`` (plain and streamed, ``stream_options.include_usage``), ``/health``;
  ``model`` must be the served model name or a loaded adapter (404 otherwise);
- LoRA: ``/v1/load_lora_adapter`` and ``/v1/unload_lora_adapter`` exist only with
  ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``; loading needs ``--enable-lora``; a name that is
  loaded already is refused (400); a directory without adapter_config.json is 404;
- sleep: ``/sleep``, ``/wake_up``, ``/is_sleeping``, ``/collective_rpc`` (update_config,
  reload_weights), ``/reset_prefix_cache`` exist only with ``VLLM_SERVER_DEV_MODE=1`` and
  ``--enable-sleep-mode``; completions while asleep answer 503 (and are counted).

Failure injection, by marker files in weight directories:
``FAKE_LOAD_FAILS`` (loading these weights or this adapter fails), ``FAKE_WARMUP_FAILS``
(generating with them answers 500), ``FAKE_SLOW_LOAD`` (its content: seconds a load takes);
and at run time ``POST /fake/inject``: ``{"crash_mid_request": true}``, the next completion
writes two tokens and the process dies; ``{"hold_streams": true|false}``, streams stop after
their first token until released. ``GET /fake/state`` shows what the fake saw.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(prog="vllm")
    p.add_argument("command", choices=["serve"])
    p.add_argument("model")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--served-model-name")
    p.add_argument("--enable-lora", action="store_true")
    p.add_argument("--max-loras", type=int, default=1)
    p.add_argument("--max-lora-rank", type=int, default=16)
    p.add_argument("--enable-sleep-mode", action="store_true")
    p.add_argument("--tensor-parallel-size", type=int, default=1)
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    p.add_argument("--max-model-len", type=int)
    p.add_argument("--dtype", default="auto")
    p.add_argument("--fake-token-delay", type=float, default=0.0)
    p.add_argument("--fake-reload-delay", type=float, default=0.0)
    return p.parse_known_args(argv)


def marker(path: str, name: str) -> str | None:
    f = Path(path) / name
    return f.read_text().strip() if f.is_file() else None


def error(status: int, message: str, err_type: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": err_type, "param": None, "code": status}}, status_code=status)


def weights_fail_to_load(path: str) -> str | None:
    if marker(path, "FAKE_LOAD_FAILS") is not None:
        return f"cannot load weights from {path}: injected failure"
    try:
        json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError) as exc:
        return f"cannot load weights from {path}: {exc}"
    return None


class Fake:
    def __init__(self, args: argparse.Namespace, unknown: list[str], argv: list[str]) -> None:
        self.args = args
        self.argv = argv
        self.unknown = unknown
        self.served_name = args.served_model_name or args.model
        self.model_path = args.model
        self.pending_model: str | None = None
        self.adapters: dict[str, str] = {}
        self.lora_env = os.environ.get("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "").lower() in ("true", "1")
        self.dev_mode = os.environ.get("VLLM_SERVER_DEV_MODE") == "1"
        self.asleep: set[str] = set()  # sleeping memory tags: weights, kv_cache
        self.weights_discarded = False
        self.calls: list[dict[str, Any]] = []  # admin calls, in order
        self.completions: list[dict[str, Any]] = []
        self.completions_while_sleeping = 0
        self.load_inplace_seen = False
        self.crash_next = False
        self.streams_released = asyncio.Event()
        self.streams_released.set()

    def state(self) -> dict[str, Any]:
        return {
            "argv": self.argv,
            "unknown_args": self.unknown,
            "env": {"lora_runtime": self.lora_env, "dev_mode": self.dev_mode},
            "pid": os.getpid(),
            "served_model_name": self.served_name,
            "model_path": self.model_path,
            "adapters": self.adapters,
            "sleeping": bool(self.asleep),
            "calls": self.calls,
            "completions": self.completions,
            "completions_while_sleeping": self.completions_while_sleeping,
            "load_inplace_seen": self.load_inplace_seen,
        }

    def weights_of(self, model: str) -> str | None:
        if model == self.served_name:
            return self.model_path
        return self.adapters.get(model)


def build_app(fake: Fake) -> FastAPI:
    app = FastAPI()
    a = fake.args

    @app.get("/health")
    async def health() -> PlainTextResponse:
        return PlainTextResponse("")

    @app.get("/fake/state")
    async def state() -> dict[str, Any]:
        return fake.state()

    @app.post("/fake/inject")
    async def inject(body: dict[str, Any]) -> dict[str, Any]:
        if "crash_mid_request" in body:
            fake.crash_next = bool(body["crash_mid_request"])
        if "hold_streams" in body:
            (fake.streams_released.clear if body["hold_streams"] else fake.streams_released.set)()
        return {"ok": True}

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        body = await request.json()
        model = body.get("model") or fake.served_name
        if fake.asleep:
            fake.completions_while_sleeping += 1
            return error(503, "The engine is sleeping", "ServiceUnavailableError")
        weights = fake.weights_of(model)
        if weights is None:
            return error(404, f"The model `{model}` does not exist.", "NotFoundError")
        fake.completions.append({"model": model, "weights": weights, "prompt": body.get("prompt", "")})
        if marker(weights, "FAKE_WARMUP_FAILS") is not None:
            return error(500, f"generation with {weights} failed: injected failure", "InternalServerError")
        words = f"Using {Path(weights).name}. Next: caller.".split(" ")
        max_tokens = int(body.get("max_tokens") or 16)
        finish = "length" if len(words) > max_tokens else "stop"
        words = words[:max_tokens]
        pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
        usage = {"prompt_tokens": len(str(body.get("prompt", "")).split()), "completion_tokens": len(pieces)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        rid = f"cmpl-{uuid.uuid4().hex}"
        crash, fake.crash_next = fake.crash_next, False
        if not body.get("stream"):
            if crash:
                os._exit(1)
            await asyncio.sleep(a.fake_token_delay * len(pieces))
            return {
                "id": rid, "object": "text_completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "text": "".join(pieces), "finish_reason": finish}], "usage": usage,
            }

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        async def events():  # type: ignore[no-untyped-def]
            for i, piece in enumerate(pieces):
                if crash and i == 2:
                    os._exit(1)
                if i == 1:
                    await fake.streams_released.wait()
                await asyncio.sleep(a.fake_token_delay)
                last = i == len(pieces) - 1
                chunk = {"id": rid, "object": "text_completion", "model": model,
                         "choices": [{"index": 0, "text": piece, "finish_reason": finish if last else None}]}
                yield f"data: {json.dumps(chunk)}\n\n"
            if include_usage:
                yield f"data: {json.dumps({'id': rid, 'object': 'text_completion', 'model': model, 'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    if fake.lora_env:

        @app.post("/v1/load_lora_adapter")
        async def load_lora(body: dict[str, Any]) -> Any:
            name, path = body.get("lora_name"), body.get("lora_path")
            fake.calls.append({"call": "load_lora_adapter", "lora_name": name, "lora_path": path})
            if body.get("load_inplace"):
                fake.load_inplace_seen = True
            if not a.enable_lora:
                return error(400, "LoRA is not enabled. Use --enable-lora to enable LoRA.", "BadRequestError")
            if not name or not path:
                return error(400, "Both 'lora_name' and 'lora_path' must be provided.", "InvalidUserInput")
            if name in fake.adapters and not body.get("load_inplace"):
                return error(400, f"The lora adapter '{name}' has already been loaded.", "InvalidUserInput")
            slow = marker(path, "FAKE_SLOW_LOAD")
            if slow:
                await asyncio.sleep(float(slow))
            if not (Path(path) / "adapter_config.json").is_file():
                return error(404, f"No adapter found for {path}", "NotFoundError")
            if marker(path, "FAKE_LOAD_FAILS") is not None:
                return error(400, f"Loading lora {name} failed: injected failure", "BadRequestError")
            fake.adapters[name] = path
            return PlainTextResponse(f"Success: LoRA adapter '{name}' added successfully.")

        @app.post("/v1/unload_lora_adapter")
        async def unload_lora(body: dict[str, Any]) -> Any:
            name = body.get("lora_name")
            fake.calls.append({"call": "unload_lora_adapter", "lora_name": name})
            if name not in fake.adapters:
                return error(404, f"The lora adapter '{name}' cannot be found.", "NotFoundError")
            del fake.adapters[name]
            return PlainTextResponse(f"Success: LoRA adapter '{name}' removed successfully.")

    if fake.dev_mode and a.enable_sleep_mode:

        @app.post("/sleep")
        async def sleep(level: int = 1) -> PlainTextResponse:
            fake.calls.append({"call": "sleep", "level": level})
            fake.asleep = {"weights", "kv_cache"}
            fake.weights_discarded = level >= 2
            return PlainTextResponse("")

        @app.post("/wake_up")
        async def wake_up(tags: list[str] | None = Query(None)) -> PlainTextResponse:
            fake.calls.append({"call": "wake_up", "tags": tags})
            fake.asleep -= set(tags or ["weights", "kv_cache"])
            return PlainTextResponse("")

        @app.get("/is_sleeping")
        async def is_sleeping() -> dict[str, bool]:
            return {"is_sleeping": bool(fake.asleep)}

        @app.post("/collective_rpc")
        async def collective_rpc(body: dict[str, Any]) -> Any:
            method = body.get("method")
            fake.calls.append({"call": "collective_rpc", "method": method, "args": body.get("args")})
            if method == "update_config":
                fake.pending_model = body["args"][0]["model_config"]["model"]
                return {"results": [None]}
            if method == "reload_weights":
                if "weights" in fake.asleep:
                    return error(500, "weights memory is not allocated: wake up weights first", "InternalServerError")
                path = fake.pending_model or fake.model_path
                await asyncio.sleep(a.fake_reload_delay)
                problem = weights_fail_to_load(path)
                if problem:
                    return error(500, problem, "InternalServerError")
                fake.model_path = path
                fake.weights_discarded = False
                return {"results": [None]}
            return error(400, f"unknown method {method}", "BadRequestError")

        @app.post("/reset_prefix_cache")
        async def reset_prefix_cache() -> PlainTextResponse:
            fake.calls.append({"call": "reset_prefix_cache"})
            return PlainTextResponse("")

    return app


def main(argv: list[str]) -> int:
    args, unknown = parse_args(argv)
    problem = weights_fail_to_load(args.model)
    if problem:
        print(f"ERROR: {problem}", file=sys.stderr, flush=True)
        return 1
    fake = Fake(args, unknown, argv)
    uvicorn.run(build_app(fake), host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
