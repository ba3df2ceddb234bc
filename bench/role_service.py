"""What a role service adds to each request: (a) ``POST /v1/plan`` through the planner role service
(``python -m services.planner``, engine ``url``) in front of a fake OpenAI-compatible engine that
answers at once, against (b) the same completion asked of that engine directly, with the prompt
the role service rendered.

    .venv/bin/python bench/role_service.py [--levels 1 64] [--requests 500] [--reps 3]

The fake engine is bench/overhead.py's raw asyncio HTTP server in its own process (``GET /health``,
``POST /v1/completions`` with a fixed planner turn, ``GET /fake/last`` the last completion request
it got), so that its cost is small and the same for both sides. The role service renders the
prompt with the demo planner's tokenizer (models/demo/planner), fits it to the context, calls the
engine and parses the turn. (a) and (b) alternate ``--reps`` times at each concurrency; figures
are medians over repetitions, with the range: latency per request of each side and the
difference (a - b, the role service's added latency), the role service's CPU per request (its
process's user + system time over the batch), and requests per role-service CPU-second (what
one fully used core of the service carries; the GPU engine is a separate process). Prints one
line per figure and writes bench/results/role_service.json (with ``nproc`` and the load average
before and after: on a shared machine the figures are noisy).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.report import write_json  # noqa: E402
_spec = importlib.util.spec_from_file_location("bench_overhead", ROOT / "bench" / "overhead.py")
overhead = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(overhead)  # type: ignore[union-attr]

from orchestrator.roles import encode_body  # noqa: E402

MODEL = ROOT / "models" / "demo" / "planner"
TOOLS = json.dumps(overhead.TOOLS, separators=(",", ":"))
HISTORY = [{"role": "user", "content": "What time is it in Tokyo?"}]
COMPLETION = json.dumps({
    "id": "cmpl-bench", "object": "text_completion", "model": str(MODEL),
    "choices": [{"index": 0, "text": "Call the clock.\n Next: caller.", "finish_reason": "stop", "logprobs": None}],
    "usage": {"prompt_tokens": 100, "completion_tokens": 8, "total_tokens": 108},
}).encode()  # fmt: skip


class FakeEngine(overhead.FakeProtocol):
    """An OpenAI-compatible engine that answers every completion at once."""

    last = b"{}"

    async def answer(self, path: str, body: bytes) -> None:
        if path == "/v1/completions":
            FakeEngine.last, payload = body, COMPLETION
        else:  # /health, /fake/last
            payload = FakeEngine.last if path == "/fake/last" else b"{}"
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        if not self.transport.is_closing():
            self.transport.write(head.encode() + payload)


def serve_engine(port: int) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(FakeEngine, "127.0.0.1", port, backlog=4096)
        async with server:
            await server.serve_forever()

    overhead.run(main())


async def post(session: aiohttp.ClientSession, url: str, body: bytes) -> float:
    started = time.perf_counter()
    async with session.post(url, data=body, headers=overhead.JSON) as response:
        raw = await response.read()
    if response.status != 200:
        raise SystemExit(f"{url} answered {response.status}: {raw[:300]!r}")
    return time.perf_counter() - started


async def measure(args: argparse.Namespace, service_url: str, service_pid: int, engine_url: str) -> dict[str, Any]:
    plan_body = encode_body(TOOLS, HISTORY, None, False)
    connector = aiohttp.TCPConnector(limit=4000, keepalive_timeout=3)
    results: dict[str, Any] = {"levels": {}}
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as client:
        via_service = lambda: post(client, service_url + "/v1/plan", plan_body)  # noqa: E731
        await overhead.run_batch(via_service, 256, 64)  # warm-up; the engine keeps the last request
        async with client.get(engine_url + "/fake/last") as response:
            engine_body = await response.read()
        direct = lambda: post(client, engine_url + "/v1/completions", engine_body)  # noqa: E731
        await overhead.run_batch(direct, 256, 64)
        for concurrency in args.levels:
            reps: list[dict[str, float]] = []
            for _ in range(args.reps):
                cpu, started = overhead.cpu_seconds(service_pid), time.perf_counter()
                a = await overhead.run_batch(via_service, args.requests, concurrency)
                wall, cpu = time.perf_counter() - started, overhead.cpu_seconds(service_pid) - cpu
                b = await overhead.run_batch(direct, args.requests, concurrency)
                reps.append({
                    "service_mean_ms": 1000 * statistics.fmean(a), "direct_mean_ms": 1000 * statistics.fmean(b),
                    "added_mean_ms": 1000 * (statistics.fmean(a) - statistics.fmean(b)),
                    "added_p50_ms": 1000 * (statistics.median(a) - statistics.median(b)),
                    "service_cpu_ms_per_request": 1000 * cpu / args.requests,
                    "requests_per_service_cpu_s": args.requests / cpu if cpu else float("inf"),
                    "service_requests_per_s": args.requests / wall,
                })  # fmt: skip
            results["levels"][str(concurrency)] = {
                **{k: overhead.median_range([r[k] for r in reps]) for k in reps[0]}, "reps": reps,
            }  # fmt: skip
            print(f"done: concurrency {concurrency}", file=sys.stderr, flush=True)
    results["prompt_chars"] = len(json.loads(engine_body)["prompt"])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 64], help="concurrency levels (default: 1 64)")
    parser.add_argument("--requests", type=int, default=500, help="requests per side per repetition (default 500)")
    parser.add_argument("--reps", type=int, default=3, help="alternating a/b repetitions (default 3)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "role_service.json", help="the JSON written")
    parser.add_argument("--serve-engine", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_engine is not None:
        return serve_engine(args.serve_engine)

    load_before = overhead.load_average()
    engine_port, service_port = overhead.free_port(), overhead.free_port()
    engine_url, service_url = f"http://127.0.0.1:{engine_port}", f"http://127.0.0.1:{service_port}"
    log_dir = ROOT / "bench" / "results"
    log_dir.mkdir(parents=True, exist_ok=True)
    engine = subprocess.Popen([sys.executable, __file__, "--serve-engine", str(engine_port)])
    service: subprocess.Popen[bytes] | None = None
    try:
        overhead.wait_http(engine_url + "/health", engine, "the fake engine")
        env = {**os.environ, "UMI_LOG_LEVEL": "warning"}
        with (log_dir / "role-service-planner.log").open("wb") as log:
            service = subprocess.Popen(
                [sys.executable, "-m", "services.planner", "--host", "127.0.0.1", "--port", str(service_port),
                 "--engine", "url", "--engine-url", engine_url, "--model", str(MODEL)],
                env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        overhead.wait_http(service_url + "/health", service, "the planner role service")
        deadline = time.monotonic() + 60
        while overhead.httpx.get(service_url + "/ready").status_code != 200:
            if service.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the planner role service did not become ready")
            time.sleep(0.1)
        results = overhead.run(measure(args, service_url, service.pid, engine_url))
    finally:
        for proc in (service, engine):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=20)
    results["config"] = {
        "requests_per_rep": args.requests, "reps": args.reps, "levels": args.levels, "model": str(MODEL.relative_to(ROOT)),
        "nproc": os.cpu_count(), "load_average_before": load_before, "load_average_after": overhead.load_average(),
        "python": sys.version.split()[0],
    }  # fmt: skip
    for c, level in results["levels"].items():
        for name, m in level.items():
            if name != "reps":
                print(f"{name}_c{c} {m['median']:.4g}  [{m['min']:.4g}, {m['max']:.4g}]")
    print(f"prompt_chars {results['prompt_chars']}")
    write_json(args.out, results)


if __name__ == "__main__":
    main()
