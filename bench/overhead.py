"""What the orchestrator adds to a chat's latency: (a) chats through an orchestrator process
against (b) a bare loop that calls the same fake role services directly, with no persistence. Both
sides use the same HTTP client (aiohttp, as the orchestrator does).

    .venv/bin/python bench/overhead.py [--delay 0.25] [--tool-delay 0.02] [--levels 1 64 256 1024]
        [--workers 1 2 4] [--reps 3] [--chats-c1 8]

The fake role services and the tool answer after a fixed delay (a raw asyncio HTTP server in its
own process, so that its cost is small and the same for both sides). Every chat takes the same
five steps: planner -> caller -> tool -> planner -> summarizer. Runs (a) and (b) alternate at
each concurrency, ``--reps`` times; each figure is computed per repetition (against the bare loop
of the same repetition) and reported as the median over repetitions, with the range. Concurrency
1 runs ``--chats-c1`` chats per repetition, concurrency c > 1 runs max(256, 2c) chats. Prints one
line per figure and writes bench/results/overhead.json (with ``nproc`` and the load average
before and after: on a shared machine the figures are noisy).

``--workers`` values are passed to ``umi serve orchestrator --workers``: 1 (and 0) is the
single-process server, uvicorn without its multi-process supervisor; N > 1 is the supervisor with
N worker processes sharing the port (``orchestrator/__init__.py``).

Figures per concurrency and orchestrator configuration: mean and p50 end-to-end latency ratio
a/b; the orchestrator's CPU time per step (all its processes' user + system time over the batch);
steps/s achieved (steps over the batch's wall time) and steps per orchestrator CPU-second (what
one fully used core would carry); Redis round trips per step (the orchestrator's own count of
round trips, and Redis' INFO commandstats delta of EVALSHA calls, which is what every hot-path
round trip is).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.report import write_json  # noqa: E402

from orchestrator.roles import encode_body  # noqa: E402
from umi.roleapi import CallResponse, ModelInfo, PlanResponse, SummarizeResponse, Usage  # noqa: E402

TOOLS = [{"type": "function", "function": {"name": "t", "description": "a tool", "parameters": {"type": "object"}}}]
STEPS_PER_CHAT = 5
JSON = {"content-type": "application/json"}


# ---------------------------------------------------------------- the fakes (own process)


def _payloads() -> dict[str, bytes]:
    meta = {"model": ModelInfo(name="fake", version="v1"), "usage": Usage(prompt_tokens=100, completion_tokens=20), "latency_ms": 1.0}
    caller_turn = 'Action: t\nAction Input: {"q": "x"}'
    return {
        "plan_call": PlanResponse(text="Call.\n Next: caller.", thought="Call.", next="caller", turn="Call.\n Next: caller.", **meta).model_dump_json().encode(),
        "plan_done": PlanResponse(text="Done.\n Next: conclusion.", thought="Done.", next="conclusion", turn="Done.\n Next: conclusion.", **meta).model_dump_json().encode(),
        "call": CallResponse(text=caller_turn, name="t", arguments={"q": "x"}, arguments_raw='{"q": "x"}', valid=True, hallucinated=False, turn=caller_turn, **meta).model_dump_json().encode(),
        "summary": SummarizeResponse(text="The answer.", answer="The answer.", **meta).model_dump_json().encode(),
        "tool": b'{"result": 42}',
    }  # fmt: skip


class FakeProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive and Content-Length bodies: just enough for the clients here."""

    payloads: dict[str, bytes] = {}
    delay = 0.0
    tool_delay = 0.0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buf = b""
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1").split("\r\n")
            length = next((int(h.split(":", 1)[1]) for h in head[1:] if h.lower().startswith("content-length:")), 0)
            if len(self.buf) < end + 4 + length:
                return
            body, self.buf = self.buf[end + 4 : end + 4 + length], self.buf[end + 4 + length :]
            asyncio.get_running_loop().create_task(self.answer(head[0].split(" ")[1], body))

    async def answer(self, path: str, body: bytes) -> None:
        if path.startswith("/tool"):
            await asyncio.sleep(self.tool_delay)
            payload = self.payloads["tool"]
        else:
            await asyncio.sleep(self.delay)
            if path == "/v1/plan":
                payload = self.payloads["plan_done" if b'"role":"observation"' in body else "plan_call"]
            else:
                payload = self.payloads["call" if path == "/v1/call" else "summary"]
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        if not self.transport.is_closing():
            self.transport.write(head.encode() + payload)


def serve_fakes(port: int, tool_port: int, delay: float, tool_delay: float) -> None:
    """The fakes on ``port`` and, for the tool (the orchestrator refuses tool calls to its role
    services' port), on ``tool_port`` too."""
    FakeProtocol.payloads, FakeProtocol.delay, FakeProtocol.tool_delay = _payloads(), delay, tool_delay

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(FakeProtocol, "127.0.0.1", port, backlog=4096)
        tools = await loop.create_server(FakeProtocol, "127.0.0.1", tool_port, backlog=4096)
        async with server, tools:
            await asyncio.gather(server.serve_forever(), tools.serve_forever())

    run(main())


# ---------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric_sum(text: str, prefix: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))



def start_redis() -> tuple[str, subprocess.Popen[bytes] | None, str | None]:
    url = os.environ.get("UMI_TEST_REDIS_URL")
    if url:
        return url, None, None
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("no Redis: run with `make bench` or put redis-server on PATH")
    port, directory = free_port(), tempfile.mkdtemp(prefix="umi-bench-redis.")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", directory],
                            stdout=subprocess.DEVNULL)  # fmt: skip
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    return f"redis://127.0.0.1:{port}/0", proc, directory


# ---------------------------------------------------------------- the two sides


async def via_orchestrator(session: aiohttp.ClientSession, url: str, tool_url: str) -> float:
    tools = [{**TOOLS[0], "endpoint": {"url": tool_url}}]
    body = json.dumps({"query": "q", "tools": tools}).encode()
    started = time.perf_counter()
    async with session.post(url + "/chat", data=body, headers=JSON) as response:
        raw = await response.read()
    elapsed = time.perf_counter() - started
    doc = json.loads(raw)
    if response.status != 200 or doc["status"] != "completed" or len(doc["steps"]) != STEPS_PER_CHAT:
        raise SystemExit(f"orchestrator chat failed: {response.status} {raw[:500]!r}")
    return elapsed


async def _post(session: aiohttp.ClientSession, url: str, body: bytes) -> bytes:
    async with session.post(url, data=body, headers=JSON) as response:
        return await response.read()


async def bare_loop(session: aiohttp.ClientSession, fakes: str, tool_url: str) -> float:
    """The same role calls and tool call with the same HTTP client, and no persistence or checks."""
    tools_json = json.dumps(TOOLS, separators=(",", ":"))
    history = [{"role": "user", "content": "q"}]
    started = time.perf_counter()
    while True:
        plan = PlanResponse.model_validate_json(await _post(session, fakes + "/v1/plan", encode_body(tools_json, history, None, False)))
        history.append({"role": "planner", "content": plan.turn})
        if plan.next == "conclusion":
            SummarizeResponse.model_validate_json(await _post(session, fakes + "/v1/summarize", encode_body(None, history, None, False)))
            return time.perf_counter() - started
        call = CallResponse.model_validate_json(await _post(session, fakes + "/v1/call", encode_body(tools_json, history, plan.turn, False)))
        history.append({"role": "caller", "content": call.turn})
        observation = (await _post(session, tool_url, json.dumps(call.arguments).encode())).decode()
        history.append({"role": "observation", "content": observation[:1024]})


async def get_text(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as response:
        return await response.text()


async def run_batch(fn: Any, chats: int, concurrency: int) -> list[float]:
    sem = asyncio.Semaphore(concurrency)

    async def one() -> float:
        async with sem:
            return await fn()

    return list(await asyncio.gather(*(one() for _ in range(chats))))


def summarize(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "mean_s": statistics.fmean(values), "p50_s": statistics.median(values),
        "p95_s": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], "n": len(values),
    }  # fmt: skip


class Orchestrator:
    """One `umi serve orchestrator` under test, with its CPU and Redis figures."""

    def __init__(
        self, workers: int, redis_url: str, fakes_url: str, log_dir: Path, *, name: str | None = None,
        extra_env: dict[str, str] | None = None, drop_env_prefix: str | None = None,
    ):  # fmt: skip
        """``name`` names its log (default ``overhead-orchestrator-w<workers>``); ``extra_env`` is
        added to its environment, from which variables starting ``drop_env_prefix`` are left out."""
        self.workers = workers
        self.url = f"http://127.0.0.1:{free_port()}"
        inherited = {k: v for k, v in os.environ.items() if not (drop_env_prefix and k.startswith(drop_env_prefix))}
        env = {
            **inherited, "UMI_REDIS_URL": redis_url, "UMI_PLANNER_URL": fakes_url, "UMI_CALLER_URL": fakes_url,
            "UMI_SUMMARIZER_URL": fakes_url, "UMI_KEY_PREFIX": f"umi-bench:{uuid.uuid4().hex[:8]}:",
            "UMI_CHAT_TTL_S": "600", "UMI_TOOL_ALLOWLIST": "127.0.0.1", **(extra_env or {}),
        }  # fmt: skip
        self.log = (log_dir / f"{name or f'overhead-orchestrator-w{workers}'}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "umi.cli", "serve", "orchestrator", "--host", "127.0.0.1",
             "--port", self.url.rsplit(":", 1)[1], "--workers", str(workers)],
            env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_http(self.url + "/health", self.proc, f"the orchestrator ({workers} workers)")

    def cpu_seconds(self) -> float:
        """The process and its worker processes."""
        children = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        return sum(cpu_seconds(pid) for pid in [self.proc.pid, *map(int, children)])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)
        self.log.close()


def chats_at(concurrency: int, chats_c1: int) -> int:
    """Chats per repetition: enough for every slot to run at least twice (bounded)."""
    return chats_c1 if concurrency == 1 else max(256, 2 * concurrency)


def median_range(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


async def measure(
    args: argparse.Namespace, orchs: list[Orchestrator], fakes: str, tool_url: str, redis_url: str
) -> dict[str, Any]:
    results: dict[str, Any] = {"levels": {}}
    rc = redis.Redis.from_url(redis_url)
    round_trips = "umi_orchestrator_redis_round_trips_total"

    def evalsha_calls() -> int:
        return int(rc.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))

    connector = aiohttp.TCPConnector(limit=4000, keepalive_timeout=3)  # under uvicorn's 5 s
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=600)) as client:
        bare = lambda: bare_loop(client, fakes, tool_url)  # noqa: E731
        warm = min(256, max(args.levels))
        for orch in orchs:  # warm-up: connections on every side, imports, script cache
            await run_batch(lambda o=orch: via_orchestrator(client, o.url, tool_url), warm, warm)
        await run_batch(bare, warm, warm)
        for concurrency in args.levels:
            chats = chats_at(concurrency, args.chats_c1)
            steps = chats * STEPS_PER_CHAT
            reps: dict[str, list[dict[str, float]]] = {f"orchestrator_w{o.workers}": [] for o in orchs}
            reps["bare_loop"] = []
            lat: dict[str, list[float]] = {key: [] for key in reps}
            for _ in range(args.reps):  # the sides alternate
                this_rep: dict[str, dict[str, float]] = {}
                for orch in orchs:
                    key = f"orchestrator_w{orch.workers}"
                    single = orch.workers <= 1  # /metrics of a multi-worker server is one worker's
                    before = await get_text(client, orch.url + "/metrics") if single else ""
                    evalsha_before, cpu_before, started = evalsha_calls(), orch.cpu_seconds(), time.perf_counter()
                    values = await run_batch(lambda o=orch: via_orchestrator(client, o.url, tool_url), chats, concurrency)
                    wall, cpu = time.perf_counter() - started, orch.cpu_seconds() - cpu_before
                    fig = {
                        "mean_s": statistics.fmean(values), "p50_s": statistics.median(values),
                        "cpu_ms_per_step": 1000 * cpu / steps, "steps_per_s": steps / wall,
                        "steps_per_cpu_s": steps / cpu if cpu > 0 else float("inf"),
                        "redis_evalsha_per_step": (evalsha_calls() - evalsha_before) / steps,
                    }  # fmt: skip
                    if single:
                        after = await get_text(client, orch.url + "/metrics")
                        fig["redis_round_trips_per_step"] = (metric_sum(after, round_trips) - metric_sum(before, round_trips)) / steps
                    this_rep[key] = fig
                    lat[key] += values
                cpu_before, started = time.process_time(), time.perf_counter()
                values = await run_batch(bare, chats, concurrency)
                wall, cpu = time.perf_counter() - started, time.process_time() - cpu_before
                this_rep["bare_loop"] = {
                    "mean_s": statistics.fmean(values), "p50_s": statistics.median(values),
                    "client_cpu_ms_per_step": 1000 * cpu / steps, "steps_per_s": steps / wall,
                }  # fmt: skip
                lat["bare_loop"] += values
                bare_rep = this_rep["bare_loop"]
                for key, fig in this_rep.items():
                    if key != "bare_loop":
                        fig["ratio_mean"] = fig["mean_s"] / bare_rep["mean_s"]
                        fig["ratio_p50"] = fig["p50_s"] / bare_rep["p50_s"]
                    reps[key].append(fig)
            level: dict[str, Any] = {"chats_per_rep": chats}
            for key, figs in reps.items():
                level[key] = {
                    "latency": summarize(lat[key]),
                    **{name: median_range([f[name] for f in figs]) for name in figs[0]},
                    "reps": figs,
                }  # fmt: skip
            results["levels"][str(concurrency)] = level
            print(f"done: concurrency {concurrency}", file=sys.stderr, flush=True)
    rc.close()
    return results


def run(main: Any) -> Any:
    """uvloop when installed (uvicorn runs the orchestrator on it), so both sides run the same loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def report(results: dict[str, Any]) -> None:
    """One line per figure: the median over repetitions, then [min, max]."""
    for c, level in results["levels"].items():
        bare = level["bare_loop"]
        print(f"bare_loop_c{c} mean {bare['mean_s']['median'] * 1000:.1f} ms, steps/s {bare['steps_per_s']['median']:.0f},"
              f" client CPU {bare['client_cpu_ms_per_step']['median']:.3f} ms/step ({level['chats_per_rep']} chats per rep)")  # fmt: skip
        for key in sorted(k for k in level if k.startswith("orchestrator_w")):
            a, w = level[key], key.removeprefix("orchestrator_")
            for name in ("ratio_mean", "ratio_p50", "cpu_ms_per_step", "steps_per_s", "steps_per_cpu_s",
                         "redis_evalsha_per_step", "redis_round_trips_per_step"):  # fmt: skip
                if name in a:
                    m = a[name]
                    print(f"{name}_c{c}_{w} {m['median']:.4g}  [{m['min']:.4g}, {m['max']:.4g}]")


def raise_open_files_limit() -> int:
    """The soft RLIMIT_NOFILE up to the hard one (children inherit it): c1024 holds thousands of
    sockets in the client, the orchestrator and the fakes. Returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        new = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        return new
    return soft


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delay", type=float, default=0.25, help="seconds each fake role call takes (default 0.25)")
    parser.add_argument("--tool-delay", type=float, default=0.02, help="seconds the fake tool takes (default 0.02)")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 64, 256, 1024],
                        help="concurrency levels (chats in flight) to measure (default: 1 64 256 1024)")  # fmt: skip
    parser.add_argument("--chats-c1", type=int, default=8, help="chats per repetition at concurrency 1")
    parser.add_argument("--reps", type=int, default=3, help="alternating a/b repetitions per concurrency (default 3)")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2, 4],
        help="orchestrator configurations to measure: `--workers` of each (1: single process; default: 1 2 4)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "overhead.json", help="the JSON written")
    parser.add_argument("--serve-fakes", type=int, nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fakes is not None:
        return serve_fakes(*args.serve_fakes, args.delay, args.tool_delay)

    nofile = raise_open_files_limit()
    load_before = load_average()
    redis_url, redis_proc, redis_dir = start_redis()
    fakes_url, tool_port = f"http://127.0.0.1:{free_port()}", free_port()
    tool_url = f"http://127.0.0.1:{tool_port}/tool"
    log_dir = ROOT / "bench" / "results"
    log_dir.mkdir(parents=True, exist_ok=True)
    fakes: subprocess.Popen[bytes] | None = None
    orchs: list[Orchestrator] = []
    try:
        fakes = subprocess.Popen([sys.executable, __file__, "--serve-fakes", fakes_url.rsplit(":", 1)[1], str(tool_port),
                                  "--delay", str(args.delay), "--tool-delay", str(args.tool_delay)])  # fmt: skip
        wait_http(tool_url, fakes, "the fake role services")
        for workers in args.workers:
            orchs.append(Orchestrator(workers, redis_url, fakes_url, log_dir))
        results = run(measure(args, orchs, fakes_url, tool_url, redis_url))
    finally:
        for orch in orchs:
            orch.stop()
        if fakes is not None:
            fakes.terminate()
            fakes.wait(timeout=10)
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(timeout=10)
            shutil.rmtree(redis_dir or "", ignore_errors=True)

    results["config"] = {
        "role_delay_s": args.delay, "tool_delay_s": args.tool_delay, "steps_per_chat": STEPS_PER_CHAT,
        "reps": args.reps, "workers": args.workers, "levels": args.levels, "nproc": os.cpu_count(),
        "load_average_before": load_before, "load_average_after": load_average(), "rlimit_nofile": nofile,
        "python": sys.version.split()[0],
        "event_loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
    }  # fmt: skip
    report(results)
    write_json(args.out, results)


if __name__ == "__main__":
    main()
