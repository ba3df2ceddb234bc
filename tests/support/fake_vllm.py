"""A stand-in for ``vllm serve`` in tests: the same command line, environment switches, endpoints
and error shapes as vLLM's OpenAI server at the pinned version (``umi.engines.vllm_serve.VLLM_VERSION``),
with weights that are only directories on disk. Each behaviour below cites the vLLM source it
imitates (paths in the vllm repository), so it can be re-checked against a newer vLLM.

    python tests/support/fake_vllm.py serve MODEL --host H --port P [vllm flags] [--fake-* flags]

What it does like vLLM:
- exits with status 2 and a usage message for a flag it does not know or a value outside a
  flag's choices (``--max-lora-rank``: vllm/config/lora.py ``MaxLoRARanks``), as argparse does;
- exits non-zero at start-up when MODEL has no readable config.json (weights that fail to load),
  or when the GPU's free memory (``nvidia-smi``, when there is one) is below
  ``--gpu-memory-utilization`` of its total (vllm/v1/worker/gpu_worker.py ``Worker.init_device``);
- ``VLLM_API_KEY`` or ``--api-key``: every ``/v1`` route answers 401 without that bearer
  (vllm/entrypoints/openai/api_server.py ``AuthenticationMiddleware``); ``/health`` does not;
- ``--generation-config auto`` (the default): the model's generation_config.json fills the sampling
  fields a request omits (vllm/config/model.py ``ModelConfig.get_diff_sampling_param``, applied in
  vllm/entrypoints/openai/protocol.py ``CompletionRequest.to_sampling_params``); ``vllm``: vLLM's own
  defaults; the sampling that ran is recorded;
- 400 for a ``seed`` outside int64 (protocol.py ``CompletionRequest.seed``, ``torch.iinfo(torch.long)``)
  and for prompt tokens + ``max_tokens`` over ``--max-model-len`` ("maximum context length":
  vllm/entrypoints/openai/serving_engine.py ``_validate_input``); prompt tokens are words here;
- ``logprobs``: ``token_logprobs`` per generated token, a function of the weights;
- ``/v1/completions`` (plain and streamed, ``stream_options.include_usage``), ``/health``;
  ``model`` must be the served model name or a loaded adapter (404 otherwise);
- LoRA: ``/v1/load_lora_adapter`` and ``/v1/unload_lora_adapter`` exist only with
  ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``; loading needs ``--enable-lora``; a name that is
  loaded already is refused (400); a directory without adapter_config.json is 404;
- sleep: ``/sleep``, ``/wake_up``, ``/is_sleeping``, ``/collective_rpc`` (update_config,
  reload_weights), ``/reset_prefix_cache`` exist only with ``VLLM_SERVER_DEV_MODE=1`` and
  ``--enable-sleep-mode`` (vllm/entrypoints/openai/api_server.py, ``if envs.VLLM_SERVER_DEV_MODE``);
  completions while asleep answer 503 (and are counted); ``reload_weights`` takes
  ``kwargs.weights_path`` (the documented form), or reloads the ``update_config`` path without it;
  with ``--enable-lora`` it fails with a KeyError (vLLM #39934; the pinned version is treated as
  affected);
- a dead engine core (``POST /fake/inject {"engine_dies": true}``): the next completion fails
  (plain: 500 with an empty body, vllm/entrypoints/launcher.py ``_add_shutdown_handlers``; stream:
  two tokens, then ``data: {"error": ...}`` and ``data: [DONE]``,
  vllm/entrypoints/openai/serving_completion.py ``completion_stream_generator``), every later one
  answers 500, ``/health`` answers 503 (api_server.py ``health``: ``EngineDeadError``), and the
  process exits ``exit_after_s`` later (launcher.py ``terminate_if_errored`` / ``watchdog_loop``);
- structured outputs: ``--structured-outputs-config.backend`` (vllm/config/structured_outputs.py:
  auto, xgrammar, guidance, outlines, lm-format-enforcer) and the request field
  ``structured_outputs`` (vllm/sampling_params.py ``StructuredOutputsParams``: exactly one of
  json, regex, choice, grammar, json_object, structural_tag, else 400); compiled as vLLM's guidance
  backend does (vllm/v1/structured_output/backend_guidance.py: ``llguidance.grammar_from``, a
  grammar error is a 400). Only the guidance backend is imitated: under ``auto`` the request is
  compiled by it, under another backend a constrained request answers 400. The old ``guided_*``
  fields are ignored, as vLLM >= 0.12 ignores them;
- a hung engine (``{"hang": true}``): completions never answer while ``/health`` says 200, as
  vLLM's does (vllm/v1/engine/async_llm.py ``check_health`` only checks the dead-error flag).

Failure injection, by marker files in weight directories:
``FAKE_LOAD_FAILS`` (loading these weights or this adapter fails), ``FAKE_WARMUP_FAILS``
(generating with them answers 500), ``FAKE_SLOW_LOAD`` (its content: seconds a load takes),
``FAKE_RELOAD_STALE`` (an in-place reload of them reports success and keeps the old weights:
vLLM #32718);
and at run time ``POST /fake/inject``: ``{"script": [TEXT, ...]}``, what the weights "would" write
(the greedy model: at each step it prefers the first token, in the model directory's tokenizer, of
the rest of each TEXT the output so far is a prefix of, in order, then the end of sequence; unconstrained, the first
TEXT comes out, and under ``structured_outputs`` the most preferred token the grammar allows is
chosen at each step, as vLLM's logits mask does; ``[]`` goes back to the default text);
``{"crash_mid_request": true}``, the next completion
writes two tokens and the process dies; ``{"hold_streams": true|false}``, streams stop after
their first token until released. ``GET /fake/state`` shows what the fake saw.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse


# vllm/config/lora.py MaxLoRARanks (the choices of --max-lora-rank).
MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# Real vLLM flags the fake accepts and ignores (recorded as unknown_args); any other unknown flag is a usage error.
IGNORED_VLLM_FLAGS = {"--enforce-eager"}
# vllm/sampling_params.py SamplingParams defaults for the fields generation_config.json may set.
VLLM_SAMPLING_DEFAULTS = {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "repetition_penalty": 1.0}
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(prog="vllm serve")
    p.add_argument("command", choices=["serve"])
    p.add_argument("model")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--served-model-name")
    p.add_argument("--enable-lora", action="store_true")
    p.add_argument("--max-loras", type=int, default=1)
    p.add_argument("--max-lora-rank", type=int, default=16, choices=MAX_LORA_RANKS)
    p.add_argument("--enable-sleep-mode", action="store_true")
    p.add_argument("--tensor-parallel-size", type=int, default=1)
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    p.add_argument("--max-model-len", type=int)
    p.add_argument("--dtype", default="auto")
    p.add_argument("--generation-config", default="auto")
    p.add_argument("--api-key")
    p.add_argument("--structured-outputs-config.backend", dest="structured_outputs_backend", default="auto",
                   choices=["auto", "xgrammar", "guidance", "outlines", "lm-format-enforcer"])
    p.add_argument("--fake-token-delay", type=float, default=0.0)
    p.add_argument("--fake-reload-delay", type=float, default=0.0)
    args, unknown = p.parse_known_args(argv)
    refused = [flag for flag in unknown if flag.startswith("-") and flag not in IGNORED_VLLM_FLAGS]
    if refused:
        p.error(f"unrecognized arguments: {' '.join(refused)}")  # status 2 and the usage, like vLLM's parser
    return args, unknown


def gpu_memory_problem(utilization: float) -> str | None:
    """vllm/v1/worker/gpu_worker.py Worker.init_device: refuse when free memory < utilization * total."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    out = subprocess.run([smi, "--query-gpu=memory.free,memory.total", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, check=True).stdout
    free, total = (float(x) for x in out.splitlines()[0].split(","))
    if free < utilization * total:
        return (f"ValueError: Free memory on device ({free / 1024:.2f}/{total / 1024:.2f} GiB) on startup is less than "
                f"desired GPU memory utilization ({utilization}, {utilization * total / 1024:.2f} GiB). Decrease GPU "
                "memory utilization or reduce GPU memory used by other processes.")
    return None


def generation_defaults(model: str, mode: str) -> dict[str, Any]:
    """vllm/config/model.py get_diff_sampling_param: generation_config.json's sampling fields ("auto")."""
    if mode != "auto":
        return {}
    try:
        config = json.loads((Path(model) / "generation_config.json").read_text())
    except (OSError, ValueError):
        return {}
    return {k: config[k] for k in VLLM_SAMPLING_DEFAULTS if k in config}


def token_logprobs(weights: str, n: int) -> list[float]:
    """Log-probabilities that depend on the weights (their path) only."""
    digest = hashlib.sha256(weights.encode()).digest()
    return [-(digest[i % len(digest)] + 1) / 64 for i in range(n)]


def marker(path: str, name: str) -> str | None:
    f = Path(path) / name
    return f.read_text().strip() if f.is_file() else None


def error(status: int, message: str, err_type: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": err_type, "param": None, "code": status}}, status_code=status)


# vllm/sampling_params.py StructuredOutputsParams: the mutually exclusive kinds.
STRUCTURED_OUTPUT_KINDS = ("json", "regex", "choice", "grammar", "json_object", "structural_tag")


def structured_outputs_problem(value: Any, backend: str) -> str | None:
    """Why vLLM would answer 400 to this ``structured_outputs`` (StructuredOutputsParams.__post_init__), or None."""
    if not isinstance(value, dict):
        return "1 validation error: structured_outputs: Input should be a valid dictionary"
    given = [k for k in STRUCTURED_OUTPUT_KINDS if value.get(k) is not None]
    if len(given) > 1:
        return f"You can only use one kind of structured outputs constraint but multiple are specified: {value}"
    if not given:
        return f"You must use one kind of structured outputs constraint but none are specified: {value}"
    if backend not in ("auto", "guidance"):
        return f"the fake imitates the guidance structured-outputs backend only, not {backend}"
    if given[0] == "structural_tag":
        return "the fake does not imitate structural_tag"
    return None


def guidance_grammar(value: dict[str, Any]) -> str:
    """backend_guidance.py serialize_guidance_grammar: llguidance.grammar_from(kind, spec)."""
    import llguidance

    kind = next(k for k in STRUCTURED_OUTPUT_KINDS if value.get(k) is not None)
    spec = value[kind]
    if kind == "json_object":
        return llguidance.LLMatcher.grammar_from_json_schema('{"type": "object"}')
    if kind in ("json", "choice") and not isinstance(spec, str):
        spec = json.dumps(spec)
    return llguidance.grammar_from(kind, spec)


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
        self.dies_next = False  # the next completion kills the engine core
        self.dead = False
        self.exit_after_s = 2.0
        self.hang = asyncio.Event()  # set: completions never answer
        self.api_keys = [k for k in (args.api_key, os.environ.get("VLLM_API_KEY")) if k]
        self.sampling_defaults = generation_defaults(args.model, args.generation_config)
        self.streams_released = asyncio.Event()
        self.streams_released.set()
        self.script: list[str] = []  # POST /fake/inject {"script": [...]}: what the weights write, by preference
        self._ll_tokenizer: Any = None

    def ll_tokenizer(self) -> Any:
        """llguidance's view of the model directory's tokenizer (loaded on the first constrained request)."""
        if self._ll_tokenizer is None:
            import llguidance.hf
            from transformers import AutoTokenizer

            self._ll_tokenizer = llguidance.hf.from_tokenizer(AutoTokenizer.from_pretrained(self.args.model))
        return self._ll_tokenizer

    def constrained_pieces(self, grammar: str, texts: list[str], max_tokens: int) -> tuple[list[str], str] | str:
        """Greedy generation of the scripted model under ``grammar``: (pieces, finish_reason), or the
        grammar's error."""
        import llguidance

        tok = self.ll_tokenizer()
        matcher = llguidance.LLMatcher(tok, grammar, log_level=0)
        if matcher.is_error():
            return f"Grammar error: {matcher.get_error()}"
        scripts = [t.encode() for t in texts]
        out: list[int] = []
        while len(out) < max_tokens:
            allowed = matcher.compute_bitmask()
            so_far = tok.decode_bytes(out)
            preferred = [tok.tokenize_bytes(s[len(so_far):])[0] for s in scripts if s.startswith(so_far) and len(s) > len(so_far)]
            preferred.append(tok.eos_token)
            choices = [t for t in preferred if allowed[t // 8] >> (t % 8) & 1]
            if not choices:  # nothing the weights prefer is allowed: the lowest allowed token
                choices = [next(t for t in range(len(allowed) * 8) if allowed[t // 8] >> (t % 8) & 1)]
            if choices[0] == tok.eos_token:
                return [tok.decode_str([t]) for t in out], "stop"
            matcher.consume_token(choices[0])
            out.append(choices[0])
        return [tok.decode_str([t]) for t in out], "length"

    def state(self) -> dict[str, Any]:
        return {
            "argv": self.argv,
            "unknown_args": self.unknown,
            "env": {"lora_runtime": self.lora_env, "dev_mode": self.dev_mode, "api_key": bool(self.api_keys)},
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

    if fake.api_keys:

        @app.middleware("http")
        async def authenticate(request: Request, call_next: Any) -> Any:
            # vllm/entrypoints/openai/api_server.py AuthenticationMiddleware: /v1 routes only.
            if request.url.path.startswith("/v1") and request.headers.get("authorization") not in {
                f"Bearer {key}" for key in fake.api_keys
            }:
                return JSONResponse({"error": "Unauthorized"}, status_code=401)
            return await call_next(request)

    def die() -> None:
        # launcher.py terminate_if_errored / watchdog_loop: the server exits a little after the engine died.
        fake.dead = True
        asyncio.get_running_loop().call_later(fake.exit_after_s, os._exit, 1)

    @app.get("/health")
    async def health() -> PlainTextResponse:
        # api_server.py health: 503 once the engine core is dead; a hung engine still answers 200.
        return PlainTextResponse("", status_code=503 if fake.dead else 200)

    @app.get("/fake/state")
    async def state() -> dict[str, Any]:
        return fake.state()

    @app.post("/fake/inject")
    async def inject(body: dict[str, Any]) -> dict[str, Any]:
        if "crash_mid_request" in body:
            fake.crash_next = bool(body["crash_mid_request"])
        if "hold_streams" in body:
            (fake.streams_released.clear if body["hold_streams"] else fake.streams_released.set)()
        if "engine_dies" in body:
            fake.dies_next = bool(body["engine_dies"])
            fake.exit_after_s = float(body.get("exit_after_s", fake.exit_after_s))
        if "script" in body:
            fake.script = [str(t) for t in body["script"]]
        if "hang" in body:
            (fake.hang.set if body["hang"] else fake.hang.clear)()
        return {"ok": True}

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        body = await request.json()
        model = body.get("model") or fake.served_name
        if fake.dead:
            return PlainTextResponse("", status_code=500)  # launcher.py: EngineDeadError -> empty 500
        if fake.hang.is_set():
            await asyncio.Event().wait()  # a wedged GPU: no answer, ever
        if fake.asleep:
            fake.completions_while_sleeping += 1
            return error(503, "The engine is sleeping", "ServiceUnavailableError")
        seed = body.get("seed")
        if seed is not None and not INT64_MIN <= int(seed) <= INT64_MAX:
            return error(400, f"1 validation error: seed: Input should be less than or equal to {INT64_MAX}", "BadRequestError")
        weights = fake.weights_of(model)
        if weights is None:
            return error(404, f"The model `{model}` does not exist.", "NotFoundError")
        prompt_tokens = len(str(body.get("prompt", "")).split())
        requested = int(body.get("max_tokens") or 16)
        if a.max_model_len is not None and prompt_tokens + requested > a.max_model_len:
            return error(400, (
                f"This model's maximum context length is {a.max_model_len} tokens. However, you requested "
                f"{prompt_tokens + requested} tokens ({prompt_tokens} in the messages, {requested} in the completion). "
                "Please reduce the length of the messages or completion."), "BadRequestError")
        grammar = None
        structured = body.get("structured_outputs")
        if structured is not None:
            problem = structured_outputs_problem(structured, a.structured_outputs_backend)
            if problem:
                return error(400, problem, "BadRequestError")
            grammar = guidance_grammar(structured)
        sampling = {k: body.get(k, fake.sampling_defaults.get(k, default)) for k, default in VLLM_SAMPLING_DEFAULTS.items()}
        fake.completions.append({"model": model, "weights": weights, "prompt": body.get("prompt", ""), "sampling": sampling,
                                 "structured_outputs": structured})
        if marker(weights, "FAKE_WARMUP_FAILS") is not None:
            return error(500, f"generation with {weights} failed: injected failure", "InternalServerError")
        texts = fake.script or [f"Using {Path(weights).name}. Next: caller."]
        max_tokens = int(body.get("max_tokens") or 16)
        if grammar is not None:
            generated = fake.constrained_pieces(grammar, texts, max_tokens)
            if isinstance(generated, str):
                return error(400, generated, "BadRequestError")
            pieces, finish = generated
        else:
            words = texts[0].split(" ")
            finish = "length" if len(words) > max_tokens else "stop"
            words = words[:max_tokens]
            pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
        usage = {"prompt_tokens": len(str(body.get("prompt", "")).split()), "completion_tokens": len(pieces)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        rid = f"cmpl-{uuid.uuid4().hex}"
        crash, fake.crash_next = fake.crash_next, False
        dies, fake.dies_next = fake.dies_next, False
        logprobs = body.get("logprobs")
        if not body.get("stream"):
            if crash:
                os._exit(1)
            if dies:
                die()
                return PlainTextResponse("", status_code=500)
            await asyncio.sleep(a.fake_token_delay * len(pieces))
            choice: dict[str, Any] = {"index": 0, "text": "".join(pieces), "finish_reason": finish}
            if logprobs is not None:
                choice["logprobs"] = {"tokens": pieces, "token_logprobs": token_logprobs(weights, len(pieces))}
            return {
                "id": rid, "object": "text_completion", "created": int(time.time()), "model": model,
                "choices": [choice], "usage": usage,
            }

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        async def events():  # type: ignore[no-untyped-def]
            for i, piece in enumerate(pieces):
                if crash and i == 2:
                    os._exit(1)
                if dies and i == 2:
                    # serving_completion.py completion_stream_generator: the error as an event, then [DONE].
                    die()
                    failed = {"error": {"message": "EngineCore encountered an issue. See stack trace for the root cause.",
                                        "type": "InternalServerError", "param": None, "code": 500}}
                    yield f"data: {json.dumps(failed)}\n\n"
                    yield "data: [DONE]\n\n"
                    return
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
            fake.calls.append({"call": "collective_rpc", "method": method, "args": body.get("args"), "kwargs": body.get("kwargs")})
            if method == "update_config":
                fake.pending_model = body["args"][0]["model_config"]["model"]
                return {"results": [None]}
            if method == "reload_weights":
                if "weights" in fake.asleep:
                    return error(500, "weights memory is not allocated: wake up weights first", "InternalServerError")
                if a.enable_lora:  # vLLM #39934: LoRA wraps the layers under base_layer
                    return error(500, "KeyError: 'model.layers.0.self_attn.qkv_proj.weight'", "InternalServerError")
                path = (body.get("kwargs") or {}).get("weights_path") or fake.pending_model or fake.model_path
                await asyncio.sleep(a.fake_reload_delay)
                problem = weights_fail_to_load(path)
                if problem:
                    return error(500, problem, "InternalServerError")
                if marker(path, "FAKE_RELOAD_STALE") is not None:
                    return {"results": [None]}  # vLLM #32718: success, and the old weights still serve
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
    problem = weights_fail_to_load(args.model) or gpu_memory_problem(args.gpu_memory_utilization)
    if problem:
        print(f"ERROR: {problem}", file=sys.stderr, flush=True)
        return 1
    fake = Fake(args, unknown, argv)
    uvicorn.run(build_app(fake), host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
