"""`umi demo up` (what `make up` runs) with tiny random models, on free loopback ports: the whole
stack starts, a chat goes through every part and its steps are in Redis, the caller is swapped
to other weights under a light load of chats with no failed request, and Ctrl-C stops every
process the stack started (engines included) and frees every port.

Random weights say nothing sensible: the test checks the plumbing, not the answers.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support.redis_server import redis_server_binary
import redis

from umi.demo.processes import descendants, pid_alive
from umi.demo.run import ask_one, swap_under_load, tool_list
from umi.demo.stack import SERVICES, port_in_use
from umi.eval.chats import TERMINAL, Task

pytestmark = [pytest.mark.engine, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")]

TOKEN = "demo-stack-test-token"
URL_LINE = re.compile(r"^\s+(\w+)\s+((?:http|redis)://127\.0\.0\.1:(\d+)\S*)")


@dataclass
class UpProcess:
    """`umi demo up` and what it printed."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    up: threading.Event = field(default_factory=threading.Event)

    def read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("the demo stack is up"):
                self.up.set()

    def urls(self) -> dict[str, str]:
        found = {}
        for line in self.lines[self.lines.index("the demo stack is up (Ctrl-C stops it):") :]:
            match = URL_LINE.match(line)
            if match and match.group(1) in SERVICES:
                found[match.group(1)] = match.group(2)
        return found

    def output(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture(scope="module")
def models(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo-models")
    for name in ("planner", "caller", "summarizer"):
        shutil.copytree(tiny_models["v1"], root / name)
    shutil.copytree(tiny_models["v2"], root / "caller-v2")
    return root


@pytest.fixture
def stack(models: Path) -> Iterator[UpProcess]:
    redis_server_binary()  # skips (fails under CI) without a redis-server
    argv = [sys.executable, "-m", "umi.cli", "demo", "up", "--models", str(models), "--free-ports",
            "--max-new-tokens", "4", "--ready-timeout-s", "150"]  # fmt: skip
    proc = subprocess.Popen(
        argv, env={**os.environ, "UMI_ADMIN_TOKEN": TOKEN}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    up = UpProcess(proc)
    reader = threading.Thread(target=up.read, daemon=True)
    reader.start()
    try:
        yield up
    finally:
        if proc.poll() is None:  # the test failed before its own Ctrl-C: stop everything
            below = descendants([proc.pid])
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            for pid in below:
                if pid_alive(pid):
                    os.kill(pid, signal.SIGKILL)
        reader.join(timeout=10)


def test_up_serves_chats_swaps_the_caller_under_load_and_stops_everything_on_ctrl_c(stack: UpProcess) -> None:
    deadline = time.monotonic() + 180
    while not stack.up.wait(0.5):
        assert stack.proc.poll() is None, f"umi demo up exited {stack.proc.returncode}:\n{stack.output()}"
        assert time.monotonic() < deadline, f"not up after 180 s:\n{stack.output()}"
    urls = stack.urls()
    assert set(urls) == set(SERVICES), stack.output()
    orchestrator, tools, caller = urls["orchestrator"], urls["tools"], urls["caller"]

    # A chat through the orchestrator, the three role services and (if the caller names one) a tool.
    outcome = asyncio.run(ask_one("What is the weather in Oslo?", orchestrator, tools, "v1", max_steps=2))
    assert outcome.chat is not None, outcome.error
    chat = outcome.chat
    assert chat["status"] in TERMINAL - {"failed"}, chat
    assert chat["steps"] and chat["steps"][0]["role"] == "planner"
    store = redis.Redis.from_url(urls["redis"])
    try:
        assert store.xlen(f"umi:chat:{chat['chat_id']}:steps") == len(chat["steps"])
    finally:
        store.close()

    # The caller swapped to caller-v2 while two clients send chats: nothing fails.
    models_v2 = Path(re.search(r'"path": "([^"]+)"', stack.output()).group(1))  # type: ignore[union-attr]
    assert models_v2.name == "caller-v2"

    async def swap() -> object:
        async with httpx.AsyncClient() as client:
            v2_tools = await tool_list(client, tools, "v2")
        load = [Task(id="load", query="What is the population of Porto?", max_steps=1)]
        return await swap_under_load(orchestrator, caller, TOKEN, models_v2, load, v2_tools, clients=2, after_switch=1)

    swapped = asyncio.run(swap())
    assert swapped.swapped, swapped.report  # type: ignore[attr-defined]
    assert swapped.report["model"]["name"] == "caller-v2"  # type: ignore[attr-defined]
    assert swapped.chats and swapped.failed_requests == 0, swapped  # type: ignore[attr-defined]
    assert swapped.caller_requests > 0  # type: ignore[attr-defined]
    new_version = swapped.report["model"]["version"]  # type: ignore[attr-defined]
    seen = [(c.chat or {}).get("status") for c in swapped.chats], [sorted(c.versions("caller")) for c in swapped.chats]  # type: ignore[attr-defined]
    assert any(new_version in c.versions("caller") for c in swapped.chats), (new_version, seen)  # type: ignore[attr-defined]
    status = httpx.get(f"{caller}/admin/weights", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert status["model"]["name"] == "caller-v2"

    # Ctrl-C: every process the stack started is gone (engines included), every port is free.
    started = descendants([stack.proc.pid])
    assert len(started) >= len(SERVICES) + 3  # the six servers and at least the three role engines
    stack.proc.send_signal(signal.SIGINT)
    assert stack.proc.wait(timeout=90) == 0, stack.output()
    assert "stopped: no process left" in stack.output()
    assert [pid for pid in started if pid_alive(pid)] == []
    ports = [int(URL_LINE.match(line).group(3)) for line in stack.lines if URL_LINE.match(line)]  # type: ignore[union-attr]
    assert len(ports) == len(SERVICES)
    assert [p for p in ports if port_in_use("127.0.0.1", p)] == []
