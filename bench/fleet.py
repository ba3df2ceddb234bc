"""Benchmark: a rolling restart and a fleet swap (`umi swap`) of one role under load, through HAProxy.

Starts ``--replicas`` planner role services (``python -m services.planner``, each on its own fake
``vllm serve``: tests/support/fake_vllm.py, ``--fake-token-delay`` seconds per token) on tiny
models, HAProxy with the shipped config in front of them (deploy/haproxy/haproxy.cfg, rendered by
tests/support/haproxy.py; chat affinity on ``X-Umi-Chat-Id``), and ``--concurrency`` clients that
run chats of ``--steps`` planner requests each, back to back, through HAProxy. Then:

1. ``before``: load only, ``--phase-s`` seconds;
2. ``restart``: a rolling restart: SIGTERM one replica, start it again on its port, wait for its
   ``/ready`` and ``--settle-s`` (HAProxy's health checks), then the next;
3. ``between``: ``--phase-s`` seconds;
4. ``swap``: ``umi swap planner --to v2 --version v2 --replicas ...`` (the real command, blue/green,
   ``--check-window`` seconds per replica);
5. ``after``: ``--phase-s`` seconds.

Reports per phase the requests, failed requests (not 200, or no answer) and p50/p99 latency of
the answered ones; the mixed-version chats (a chat answered by v1 after it was answered by v2);
and the fleet swap's own report. Prints one line per figure and writes ``bench/results/fleet.json``.
The load is bounded by ``--max-requests``.

    .venv/bin/python bench/fleet.py [--replicas 3] [--concurrency 6] [--steps 20] [--phase-s 5] \\
        [--check-window 2] [--fake-token-delay 0.005] [--max-tokens 8] [--max-requests 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import machine, write_figures  # noqa: E402
from tests.support.haproxy import run_haproxy  # noqa: E402
from umi.engines.process import free_port  # noqa: E402
from umi.models.tiny import TinyModelSpec, make_tiny_model  # noqa: E402
from umi.roleapi import CHAT_ID_HEADER  # noqa: E402

TOKEN = "bench-admin-token"
FAKE_VLLM = ROOT / "tests" / "support" / "fake_vllm.py"
PHASES = ("before", "restart", "between", "swap", "after")


@dataclass
class Sample:
    started: float
    finished: float
    status: int  # 0: no answer
    version: str | None


@dataclass
class Chat:
    versions: list[str] = field(default_factory=list)

    @property
    def mixed(self) -> bool:
        """Answered by v1 after it was answered by v2."""
        return "v2" in self.versions and "v1" in self.versions[self.versions.index("v2"):]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))], 1)


class Replica:
    """One planner role service process on a fixed port (so a restart keeps its place in HAProxy)."""

    def __init__(self, index: int, model: Path, args: argparse.Namespace, logs: Path) -> None:
        self.index, self.model, self.args, self.logs = index, model, args, logs
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        env = {**os.environ, "UMI_ADMIN_TOKEN": TOKEN, "UMI_LOG_LEVEL": "warning", "PYTHONPATH": str(ROOT),
               "UMI_CONSTRAINED_DECODING": "off"}  # routing and swaps are measured, not the fake's grammar path
        log = (self.logs / f"planner-{self.index}-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.planner", "--host", "127.0.0.1", "--port", str(self.port),
             "--engine", "vllm", "--engine-command", f"{sys.executable} {FAKE_VLLM}",
             "--engine-args", f"--fake-token-delay {self.args.fake_token_delay}",
             "--model", str(self.model), "--model-version", "v1", "--max-model-len", "2048",
             "--drain-timeout-s", "10", "--health-interval-s", "0.5"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()

    def wait_ready(self, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(self.url + "/ready", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc is None or self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"bench/fleet: replica {self.index} did not get ready (logs in {self.logs})")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Load:
    """``concurrency`` clients running chats through ``url``, until stopped or ``max_requests``."""

    def __init__(self, url: str, args: argparse.Namespace) -> None:
        self.url, self.args = url, args
        self.samples: list[Sample] = []
        self.chats: list[Chat] = []
        self.stop = asyncio.Event()

    async def client(self) -> None:
        tools = [{"Name": "get_weather", "function": "Weather by city", "input": {"city": "string, City"}}]
        async with httpx.AsyncClient(base_url=self.url, timeout=120) as http:
            while not self.stop.is_set() and len(self.samples) < self.args.max_requests:
                chat, chat_id = Chat(), uuid.uuid4().hex
                self.chats.append(chat)
                history: list[dict[str, str]] = [{"role": "user", "content": "What is the weather in Oslo?"}]
                for _ in range(self.args.steps):
                    if self.stop.is_set():
                        break
                    body = {"tools": tools, "history": history, "sampling": {"max_tokens": self.args.max_tokens}}
                    started = time.perf_counter()
                    try:
                        r = await http.post("/v1/plan", json=body, headers={CHAT_ID_HEADER: chat_id})
                        status = r.status_code
                        version = r.json().get("model", {}).get("version") if status == 200 else None
                    except httpx.HTTPError:
                        status, version = 0, None
                    self.samples.append(Sample(started, time.perf_counter(), status, version))
                    if version is not None:
                        chat.versions.append(version)
                        history = [*history, {"role": "planner", "content": r.json()["turn"]},
                                   {"role": "caller", "content": 'Action: get_weather\nAction Input: {"city": "Oslo"}'},
                                   {"role": "observation", "content": '{"temperature": 3}'}]


def rolling_restart(replicas: list[Replica], settle_s: float) -> list[dict[str, float]]:
    """Each replica in turn: SIGTERM, start again, wait until ready and ``settle_s``. Seconds per
    replica: ``stop_s`` (SIGTERM to exit) and ``start_s`` (to ready)."""
    took = []
    for replica in replicas:
        started = time.perf_counter()
        replica.stop()
        stopped = time.perf_counter()
        replica.start()
        replica.wait_ready()
        took.append({"stop_s": round(stopped - started, 2), "start_s": round(time.perf_counter() - stopped, 2)})
        time.sleep(settle_s)
    return took


def fleet_swap(replicas: list[Replica], v2: Path, check_window_s: float) -> dict[str, Any]:
    env = {**os.environ, "UMI_ADMIN_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "umi.cli", "swap", "planner", "--to", str(v2), "--version", "v2",
               "--replicas", ",".join(r.url for r in replicas), "--check-window", str(check_window_s), "--json"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"bench/fleet: umi swap exited {done.returncode}:\n{done.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(done.stdout)
    return report


async def run(lb_url: str, replicas: list[Replica], v2: Path, args: argparse.Namespace) -> dict[str, Any]:
    load = Load(lb_url, args)
    clients = [asyncio.create_task(load.client()) for _ in range(args.concurrency)]
    marks: dict[str, float] = {"before": time.perf_counter()}
    await asyncio.sleep(args.phase_s)
    marks["restart"] = time.perf_counter()
    restart_s = await asyncio.to_thread(rolling_restart, replicas, args.settle_s)
    marks["between"] = time.perf_counter()
    await asyncio.sleep(args.phase_s)
    marks["swap"] = time.perf_counter()
    report = await asyncio.to_thread(fleet_swap, replicas, v2, args.check_window)
    marks["after"] = time.perf_counter()
    await asyncio.sleep(args.phase_s)
    load.stop.set()
    await asyncio.gather(*clients)
    ends = [marks[p] for p in PHASES[1:]] + [float("inf")]

    figures: dict[str, Any] = {
        "requests": len(load.samples),
        "failed_requests": sum(1 for s in load.samples if s.status != 200),
        "chats": len(load.chats),
        "mixed_version_chats": sum(1 for c in load.chats if c.mixed),
        "chats_that_saw_both_versions": sum(1 for c in load.chats if {"v1", "v2"} <= set(c.versions)),
        "restart_per_replica": restart_s,
        "swap_s_per_replica": [round((r["swap_ms"] or 0) / 1000, 2) for r in report["replicas"]],
        "swap_total_s": round(marks["after"] - marks["swap"], 2),
        "swap_outcomes": [r["outcome"] for r in report["replicas"]],
        "versions_after": sorted({s.version for s in load.samples if s.started >= marks["after"] and s.version}),
    }
    for phase, end in zip(PHASES, ends):
        group = [s for s in load.samples if marks[phase] <= s.started < end]
        ok = [(s.finished - s.started) * 1000 for s in group if s.status == 200]
        figures[f"{phase}_requests"] = len(group)
        figures[f"{phase}_failed"] = len(group) - len(ok)
        figures[f"{phase}_p50_ms"] = percentile(ok, 50)
        figures[f"{phase}_p99_ms"] = percentile(ok, 99)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=6)
    parser.add_argument("--steps", type=int, default=20, help="planner requests per chat")
    parser.add_argument("--phase-s", type=float, default=5.0)
    parser.add_argument("--settle-s", type=float, default=3.0, help="after a restarted replica is ready")
    parser.add_argument("--check-window", type=float, default=2.0)
    parser.add_argument("--fake-token-delay", type=float, default=0.005)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--max-requests", type=int, default=50000)
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="umi-bench-fleet-") as tmp:
        v1 = make_tiny_model(Path(tmp) / "tiny-v1", spec=TinyModelSpec(seed=0))
        v2 = make_tiny_model(Path(tmp) / "tiny-v2", spec=TinyModelSpec(seed=1))
        replicas = [Replica(i, v1, args, Path(tmp)) for i in range(args.replicas)]
        try:
            for replica in replicas:
                replica.start()
            for replica in replicas:
                replica.wait_ready()
            with run_haproxy({"planner": [r.url for r in replicas]}) as frontends:
                time.sleep(args.settle_s)  # HAProxy's first health checks
                figures = asyncio.run(run(frontends["planner"], replicas, v2, args))
        finally:
            for replica in replicas:
                replica.stop()

    result = {
        "benchmark": "fleet",
        "engine": "fake vllm serve (tests/support/fake_vllm.py), tiny random Llama tokenizer",
        "load_balancer": "HAProxy, deploy/haproxy/haproxy.cfg (chat affinity on X-Umi-Chat-Id)",
        "settings": vars(args),
        "machine": machine(load_before),
        "figures": figures,
    }
    write_figures("fleet", result)
    return 1 if figures["failed_requests"] or figures["mixed_version_chats"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
