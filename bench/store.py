"""How many chat steps one Redis primary takes through the orchestrator's own write path
(``orchestrator.store.RedisChatStore``: the same Lua scripts, pipelining and ``WAIT`` as a
running orchestrator), with and without a replica acknowledging every write.

    .venv/bin/python bench/store.py [--processes 1 2] [--writers 256] [--chats 3000] [--reps 3]

Starts its own ``redis-server`` primary on loopback (no persistence, as scripts/with-redis.sh)
and, for the ``WAIT`` runs, one replica of it (``--replicaof``); the writers use
``UMI_REDIS_WAIT_REPLICAS=1``'s path (``RedisChatStore(wait_replicas=1)``). Each writer process
(``--processes``, each its own Python process with one store, as one orchestrator process has)
runs ``--chats`` chats, ``--writers`` at a time on one event loop, over a pool of
``--connections`` Redis connections. A chat is what an orchestrator writes for the five-step chat
of bench/overhead.py: ``create``, then one ``append`` per step (planner, caller with its tool call
``started``, observation with it ``finished``, planner, summarizer with ``completed``): six script
calls per five steps, the 1.2 EVALSHA per step that bench/overhead.py counts in a real
orchestrator.

Figures per configuration (median over ``--reps`` runs, with the range): steps/s achieved;
the primary's CPU per step (its process's user + system time over the run, microseconds) and the
cores it used (CPU seconds over wall seconds); steps/s per Redis core (steps over the primary's CPU
seconds: what the primary would take with its core saturated, since Redis runs commands and Lua
on one thread); the writers' CPU per step, to show which side was the bottleneck. Prints one
line per figure and writes bench/results/store.json (with ``nproc`` and the load average before
and after: on a shared machine the figures are noisy).
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
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.report import write_json  # noqa: E402
_spec = importlib.util.spec_from_file_location("bench_overhead", ROOT / "bench" / "overhead.py")
overhead = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(overhead)  # type: ignore[union-attr]

from orchestrator.metrics import Metrics  # noqa: E402
from orchestrator.models import ChatRequest, Step, Usage  # noqa: E402
from orchestrator.store import ChatUpdate, Lease, NewChat, RedisChatStore, connect  # noqa: E402

STEPS_PER_CHAT = 5
USAGE = Usage(prompt_tokens=100, completion_tokens=20)


# ---------------------------------------------------------------- one writer process


def _steps() -> list[Step]:
    """The five steps of bench/overhead.py's chat, with the fields an orchestrator fills."""
    common: dict[str, Any] = {"started_at": time.time(), "latency_ms": 20.0, "model_version": "v1", "usage": USAGE}
    caller_turn = 'Action: t\nAction Input: {"q": "x"}'
    return [
        Step(index=0, role="planner", thought="Call.", next="caller", turn="Call.\n Next: caller.", **common),
        Step(index=1, role="caller", name="t", arguments={"q": "x"}, tool_call_id="call_1", turn=caller_turn, **common),
        Step(index=2, role="observation", tool_call_id="call_1", content='{"result": 42}', turn='{"result": 42}',
             started_at=time.time(), latency_ms=20.0),
        Step(index=3, role="planner", thought="Done.", next="conclusion", turn="Done.\n Next: conclusion.", **common),
        Step(index=4, role="summarizer", answer="The answer.", turn="The answer.", **common),
    ]  # fmt: skip


UPDATES = [None, ChatUpdate(tool_calls={1: "started"}), ChatUpdate(tool_calls={1: "finished"}), None,
           ChatUpdate(status="completed", answer="The answer.")]  # fmt: skip


async def one_chat(store: RedisChatStore, owner: str, steps: list[Step]) -> None:
    chat_id = uuid.uuid4().hex
    request = ChatRequest(query="What time is it in Tokyo?", chat_id=chat_id)
    created = await store.create(chat_id, owner, NewChat(request=request, fingerprint=request.fingerprint(), owner=""))
    lease = Lease(owner, created.token)
    for step, update in zip(steps, UPDATES, strict=True):
        await store.append(chat_id, lease, step.index, [step], update)


async def writer(args: argparse.Namespace) -> dict[str, float]:
    """Waits for "go" on stdin after a warm-up, runs ``--chats`` chats, prints its figures."""
    client = connect(args.redis_url, 10.0, args.connections)
    store = RedisChatStore(client, args.prefix, 600, 30, Metrics(), wait_replicas=args.wait_replicas, wait_timeout_ms=1000)
    owner, steps = f"bench-{os.getpid()}", _steps()
    sem = asyncio.Semaphore(args.writers)

    async def bounded() -> None:
        async with sem:
            await one_chat(store, owner, steps)

    await asyncio.gather(*(bounded() for _ in range(min(args.writers, 64))))  # warm-up: pool, script cache
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(bounded() for _ in range(args.chats)))
    out = {"seconds": time.perf_counter() - started, "cpu_s": time.process_time() - cpu, "steps": args.chats * STEPS_PER_CHAT}
    await store.close()
    return out


# ---------------------------------------------------------------- servers


class RedisNode:
    """One private ``redis-server`` on loopback (a replica of ``primary_port`` when given)."""

    def __init__(self, binary: str, primary_port: int | None = None):
        self.port, self.dir = overhead.free_port(), tempfile.mkdtemp(prefix="umi-bench-store.")
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", self.dir]
        if primary_port is not None:
            args += ["--replicaof", "127.0.0.1", str(primary_port)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        self.client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"redis-server on port {self.port} did not start") from None
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cpu_seconds(self) -> float:
        return overhead.cpu_seconds(self.proc.pid)

    def wait_linked(self) -> None:
        deadline = time.monotonic() + 10
        while self.client.info("replication").get("master_link_status") != "up":
            if time.monotonic() > deadline:
                raise SystemExit("the replica did not connect to the primary")
            time.sleep(0.05)

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- one run


def run_once(args: argparse.Namespace, primary: RedisNode, replica: RedisNode | None, processes: int, wait: int) -> dict[str, float]:
    """``processes`` writer processes against ``primary``; figures of that run."""
    prefix = f"umi-bench-store:{uuid.uuid4().hex[:8]}:"
    command = [sys.executable, __file__, "--writer", "--redis-url", primary.url, "--prefix", prefix,
               "--wait-replicas", str(wait), "--writers", str(args.writers), "--chats", str(args.chats),
               "--connections", str(args.connections)]  # fmt: skip
    procs = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(processes)]
    try:
        for proc in procs:
            if proc.stdout is None or proc.stdout.readline().strip() != "ready":
                raise SystemExit("a writer process failed to start")
        primary_cpu, replica_cpu = primary.cpu_seconds(), replica.cpu_seconds() if replica else 0.0
        started = time.perf_counter()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outs = [json.loads(proc.communicate(timeout=600)[0].strip().splitlines()[-1]) for proc in procs]
        wall = time.perf_counter() - started
        primary_cpu = primary.cpu_seconds() - primary_cpu
        replica_cpu = (replica.cpu_seconds() - replica_cpu) if replica else 0.0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if any(proc.returncode != 0 for proc in procs):
        raise SystemExit("a writer process failed")
    steps = sum(o["steps"] for o in outs)
    fig = {
        "steps_per_s": steps / wall, "redis_cpu_us_per_step": 1e6 * primary_cpu / steps,
        "redis_cores_used": primary_cpu / wall, "steps_per_redis_cpu_s": steps / primary_cpu if primary_cpu else float("inf"),
        "writer_cpu_us_per_step": 1e6 * sum(o["cpu_s"] for o in outs) / steps, "writers_cores_used": sum(o["cpu_s"] for o in outs) / wall,
    }  # fmt: skip
    if replica is not None:
        fig["replica_cores_used"] = replica_cpu / wall
    primary.client.flushdb()
    return fig


def report(results: dict[str, Any]) -> None:
    for name, config in results["configs"].items():
        for figure, m in config["figures"].items():
            print(f"{figure}_{name} {m['median']:.4g}  [{m['min']:.4g}, {m['max']:.4g}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="writer processes, one configuration each (default: 1 2)")
    parser.add_argument("--writers", type=int, default=256, help="chats in flight per process (default 256)")
    parser.add_argument("--chats", type=int, default=3000, help="chats per process per run (default 3000)")
    parser.add_argument("--connections", type=int, default=8, help="Redis connections per process (default 8)")
    parser.add_argument("--reps", type=int, default=3, help="runs per configuration (default 3)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "store.json", help="the JSON written")
    parser.add_argument("--writer", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--wait-replicas", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.writer:
        print(json.dumps(overhead.run(writer(args))))
        return

    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("no Redis: run scripts/ensure-redis-server.sh or put redis-server on PATH")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.split()[2].removeprefix("v=")
    load_before = overhead.load_average()
    primary = RedisNode(binary)
    replica: RedisNode | None = None
    results: dict[str, Any] = {"configs": {}}
    try:
        for wait in (0, 1):
            if wait:
                replica = RedisNode(binary, primary.port)
                replica.wait_linked()
            for processes in args.processes:
                name = f"p{processes}_wait{wait}"
                runs = [run_once(args, primary, replica, processes, wait) for _ in range(args.reps)]
                results["configs"][name] = {
                    "processes": processes, "wait_replicas": wait,
                    "figures": {k: overhead.median_range([r[k] for r in runs]) for k in runs[0]}, "runs": runs,
                }  # fmt: skip
                print(f"done: {name}", file=sys.stderr, flush=True)
    finally:
        primary.stop()
        if replica is not None:
            replica.stop()
    results["config"] = {
        "writers_per_process": args.writers, "chats_per_process": args.chats, "connections_per_process": args.connections,
        "steps_per_chat": STEPS_PER_CHAT, "script_calls_per_chat": STEPS_PER_CHAT + 1, "reps": args.reps,
        "redis_version": version, "nproc": os.cpu_count(), "load_average_before": load_before,
        "load_average_after": overhead.load_average(), "python": sys.version.split()[0],
    }  # fmt: skip
    report(results)
    write_json(args.out, results)


if __name__ == "__main__":
    main()
