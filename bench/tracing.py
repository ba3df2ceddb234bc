"""What tracing costs the orchestrator: CPU per step with traces off (the default) and on
(exported over OTLP/HTTP to a receiver on loopback), side by side in one run.

    .venv/bin/python bench/tracing.py [--chats 64] [--concurrency 8] [--reps 3] [--delay 0.05]

Two `umi serve orchestrator` processes share one Redis and the fake role services and tool of
bench/overhead.py (a raw asyncio server in its own process); one has no ``OTEL_*`` variables,
the other ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at an OTLP/HTTP receiver in its own process
(it answers every export and counts the spans). Batches of chats alternate between the two.
Every chat takes five steps (planner -> caller -> tool -> planner -> summarizer). Figures: the
orchestrator's CPU per step (its process's user + system time over the batch, divided by the
steps), the difference, the mean chat latency, and spans received per chat. Prints one line per
figure and writes bench/results/tracing.json.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("bench_overhead", ROOT / "bench" / "overhead.py")
overhead = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(overhead)  # type: ignore[union-attr]


# ---------------------------------------------------------------- the OTLP receiver (own process)


def serve_receiver(port: int) -> None:
    """POST /v1/traces (protobuf): answers an empty ExportTraceServiceResponse; GET /count: spans so far."""
    from aiohttp import web
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    spans = 0

    async def traces(request: web.Request) -> web.Response:
        nonlocal spans
        body = ExportTraceServiceRequest()
        body.ParseFromString(await request.read())
        spans += sum(len(ss.spans) for rs in body.resource_spans for ss in rs.scope_spans)
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def count(request: web.Request) -> web.Response:
        return web.json_response({"spans": spans})

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.add_routes([web.post("/v1/traces", traces), web.get("/count", count)])
    web.run_app(app, host="127.0.0.1", port=port, print=None)


# ---------------------------------------------------------------- orchestrators


def orchestrator(name: str, redis_url: str, fakes_url: str, extra_env: dict[str, str], log_dir: Path) -> overhead.Orchestrator:
    """One orchestrator process (``bench/overhead.py``'s), without the caller's ``OTEL_*`` variables."""
    return overhead.Orchestrator(1, redis_url, fakes_url, log_dir, name=f"tracing-orchestrator-{name}",
                                 extra_env=extra_env, drop_env_prefix="OTEL_")  # fmt: skip


async def measure(args: argparse.Namespace, orchs: dict[str, overhead.Orchestrator], tool_url: str, receiver_url: str) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=1000, keepalive_timeout=3)
    steps_per_batch = args.chats * overhead.STEPS_PER_CHAT
    cpu = dict.fromkeys(orchs, 0.0)
    latencies: dict[str, list[float]] = {name: [] for name in orchs}
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as client:

        async def batch(orch: overhead.Orchestrator, chats: int) -> list[float]:
            return await overhead.run_batch(lambda: overhead.via_orchestrator(client, orch.url, tool_url), chats, args.concurrency)

        for orch in orchs.values():  # warm-up: connections, imports, scripts, the exporter
            await batch(orch, args.concurrency * 2)
        await asyncio.sleep(1.0)  # the warm-up's spans leave before the first measured batch
        spans_before = await received(client, receiver_url)
        for _ in range(args.reps):  # the sides alternate
            for name, orch in orchs.items():
                before = orch.cpu_seconds()
                latencies[name] += await batch(orch, args.chats)
                await asyncio.sleep(0.5)  # the batch's last spans are exported within this run's CPU
                cpu[name] += orch.cpu_seconds() - before
        spans = await received(client, receiver_url) - spans_before
    steps = steps_per_batch * args.reps
    out: dict[str, Any] = {}
    for name in orchs:
        out[name] = {"cpu_ms_per_step": 1000 * cpu[name] / steps, "latency": overhead.summarize(latencies[name])}
    out["tracing_cost_cpu_ms_per_step"] = out["on"]["cpu_ms_per_step"] - out["off"]["cpu_ms_per_step"]
    out["tracing_cost_ratio"] = out["on"]["cpu_ms_per_step"] / out["off"]["cpu_ms_per_step"]
    out["spans_per_chat"] = spans / (args.chats * args.reps)
    return out


async def received(client: aiohttp.ClientSession, receiver_url: str) -> int:
    async with client.get(receiver_url + "/count") as response:
        return int((await response.json())["spans"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chats", type=int, default=64, help="chats per batch (default 64)")
    parser.add_argument("--concurrency", type=int, default=8, help="chats in flight (default 8)")
    parser.add_argument("--reps", type=int, default=3, help="alternating off/on batches each (default 3)")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds each fake role call takes (default 0.05)")
    parser.add_argument("--serve-receiver", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_receiver is not None:
        return serve_receiver(args.serve_receiver)

    redis_url, redis_proc, redis_dir = overhead.start_redis()
    fakes_url, tool_port = f"http://127.0.0.1:{overhead.free_port()}", overhead.free_port()
    tool_url = f"http://127.0.0.1:{tool_port}/tool"
    receiver_url = f"http://127.0.0.1:{overhead.free_port()}"
    log_dir = ROOT / "bench" / "results"
    log_dir.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    orchs: dict[str, overhead.Orchestrator] = {}
    try:
        procs.append(subprocess.Popen([sys.executable, str(ROOT / "bench" / "overhead.py"), "--serve-fakes",
                                       fakes_url.rsplit(":", 1)[1], str(tool_port), "--delay", str(args.delay), "--tool-delay", "0.005"]))  # fmt: skip
        overhead.wait_http(tool_url, procs[-1], "the fake role services")
        procs.append(subprocess.Popen([sys.executable, __file__, "--serve-receiver", receiver_url.rsplit(":", 1)[1]]))
        overhead.wait_http(receiver_url + "/count", procs[-1], "the OTLP receiver")
        orchs["off"] = orchestrator("off", redis_url, fakes_url, {}, log_dir)
        orchs["on"] = orchestrator("on", redis_url, fakes_url, {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver_url, "OTEL_SERVICE_NAME": "umi-orchestrator-bench",
        }, log_dir)  # fmt: skip
        results = overhead.run(measure(args, orchs, tool_url, receiver_url))
    finally:
        for orch in orchs.values():
            orch.stop()
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(timeout=10)
            shutil.rmtree(redis_dir or "", ignore_errors=True)

    results["config"] = {
        "chats_per_batch": args.chats, "concurrency": args.concurrency, "reps": args.reps, "role_delay_s": args.delay,
        "steps_per_chat": overhead.STEPS_PER_CHAT, "exporter": "otlp http/protobuf, BatchSpanProcessor defaults",
        "cpus": os.cpu_count(), "python": sys.version.split()[0],
    }  # fmt: skip
    for name in ("off", "on"):
        r = results[name]
        print(f"orchestrator_cpu_ms_per_step_tracing_{name} {r['cpu_ms_per_step']:.3f}"
              f"  (mean chat {r['latency']['mean_s'] * 1000:.1f} ms, {r['latency']['n']} chats)")  # fmt: skip
    print(f"tracing_cost_cpu_ms_per_step {results['tracing_cost_cpu_ms_per_step']:.3f}")
    print(f"tracing_cost_ratio {results['tracing_cost_ratio']:.3f}")
    print(f"spans_per_chat {results['spans_per_chat']:.2f}")
    out = ROOT / "bench" / "results" / "tracing.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
