"""Benchmark: weights swapped under a steady load, on the CPU engine.

Starts the planner role service (``python -m services.planner``, engine ``transformers serve``)
on a tiny model, keeps ``--concurrency`` clients sending ``POST /v1/plan`` back to back, swaps
the weights blue/green to a second tiny model half-way, and reports failed requests, p50 and
p99 latency before, during and after the swap, and the time from "new engine ready" to
"switched" (from the swap report). Prints one line per figure and writes
``bench/results/swap.json``.

    .venv/bin/python bench/swap.py [--concurrency 4] [--before-s 10] [--after-s 10] [--max-tokens 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import machine, write_figures  # noqa: E402
from umi.engines.process import free_port  # noqa: E402
from umi.models.tiny import TinyModelSpec, make_tiny_model  # noqa: E402

TOKEN = "bench-admin-token"


@dataclass
class Sample:
    started: float
    finished: float
    status: int
    version: str | None

    @property
    def ms(self) -> float:
        return (self.finished - self.started) * 1000


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return round(ordered[index], 1)


async def client_loop(url: str, body: dict, stop: asyncio.Event, out: list[Sample]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                r = await client.post("/v1/plan", json=body)
                status = r.status_code
                version = r.json().get("model", {}).get("version") if status == 200 else None
            except httpx.HTTPError:
                status, version = 0, None
            out.append(Sample(started, time.perf_counter(), status, version))


async def run_load(url: str, args: argparse.Namespace, v2: Path) -> dict:
    body = {"tools": [{"Name": "get_weather", "function": "Weather by city", "input": {"city": "string, City"}}],
            "history": [{"role": "user", "content": "What is the weather in Oslo?"}],
            "sampling": {"max_tokens": args.max_tokens}}
    samples: list[Sample] = []
    stop = asyncio.Event()
    clients = [asyncio.create_task(client_loop(url, body, stop, samples)) for _ in range(args.concurrency)]
    await asyncio.sleep(args.before_s)
    async with httpx.AsyncClient(base_url=url, timeout=900) as admin:
        swap_sent = time.perf_counter()
        r = await admin.post("/admin/weights", json={"path": str(v2), "version": "v2"},
                             headers={"Authorization": f"Bearer {TOKEN}"})
        swap_done = time.perf_counter()
    report = r.json()
    if r.status_code != 200:
        raise SystemExit(f"bench/swap: the swap failed: {r.status_code} {r.text}")
    await asyncio.sleep(args.after_s)
    stop.set()
    await asyncio.gather(*clients)

    phases = {
        "before": [s for s in samples if s.started < swap_sent],
        "during": [s for s in samples if swap_sent <= s.started < swap_done],
        "after": [s for s in samples if s.started >= swap_done],
    }
    figures: dict = {
        "requests": len(samples),
        "failed_requests": sum(1 for s in samples if s.status != 200),
        "ready_to_switch_ms": report["timings"]["ready_to_switch_ms"],
        "swap_prepare_ms": report["timings"]["prepare_ms"],
        "swap_drain_ms": report["timings"]["drain_ms"],
        "swap_total_ms": report["timings"]["total_ms"],
        "versions_after_swap": sorted({s.version for s in phases["after"] if s.version}),
    }
    for name, group in phases.items():
        ok = [s.ms for s in group if s.status == 200]
        figures[f"{name}_requests"] = len(group)
        figures[f"{name}_p50_ms"] = percentile(ok, 50)
        figures[f"{name}_p99_ms"] = percentile(ok, 99)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--before-s", type=float, default=10.0)
    parser.add_argument("--after-s", type=float, default=10.0)
    parser.add_argument("--max-tokens", type=int, default=16)
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="umi-bench-") as tmp:
        v1 = make_tiny_model(Path(tmp) / "tiny-v1", spec=TinyModelSpec(seed=0))
        v2 = make_tiny_model(Path(tmp) / "tiny-v2", spec=TinyModelSpec(seed=1))
        port = free_port()
        env = {**os.environ, "UMI_ADMIN_TOKEN": TOKEN, "UMI_LOG_LEVEL": "warning"}
        log = (Path(tmp) / "service.log").open("wb")
        service = subprocess.Popen(
            [sys.executable, "-m", "services.planner", "--port", str(port), "--model", str(v1), "--model-version", "v1",
             "--engine", "transformers"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 300
            while True:
                try:
                    if httpx.get(url + "/ready", timeout=5).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if service.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    raise SystemExit("bench/swap: the service did not get ready:\n" + (Path(tmp) / "service.log").read_text()[-3000:])
                time.sleep(0.2)
            figures = asyncio.run(run_load(url, args, v2))
        finally:
            service.send_signal(signal.SIGTERM)
            try:
                service.wait(timeout=60)
            except subprocess.TimeoutExpired:
                service.kill()
                service.wait()
            log.close()

    result = {
        "benchmark": "swap",
        "engine": "transformers serve (CPU), tiny random Llama",
        "strategy": "blue_green",
        "settings": vars(args),
        "machine": machine(load_before),
        "figures": figures,
    }
    write_figures("swap", result)
    return 1 if figures["failed_requests"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
