"""Helpers for tests that run role services: in-process uvicorn on a free loopback port, always
stopped; waiting for readiness; bounded concurrent load; reading metrics."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from umi.engines.process import free_port
from umi.service.app import create_app
from umi.service.roles import RoleSpec
from umi.service.settings import ServiceSettings
from umi.sse import Event
from umi.sse import read_events as decode_events

from tests.support.metrics import metric_value as read_metric

ADMIN_TOKEN = "test-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FAKE_VLLM = Path(__file__).parent / "fake_vllm.py"
FAKE_VLLM_COMMAND = f"{sys.executable} {FAKE_VLLM}"
READY_TIMEOUT_S = 180.0


def service_settings(**overrides: Any) -> ServiceSettings:
    """Settings for tests: quick supervision, the admin token, and what the test overrides."""
    values: dict[str, Any] = {
        "admin_token": ADMIN_TOKEN,
        "health_interval_s": 0.5,
        "restart_backoff_s": 1.0,
        "engine_start_timeout_s": 120.0,
        "engine_stop_grace_s": 10.0,
        "drain_timeout_s": 30.0,
        "request_timeout_s": 60.0,
    }
    values.update(overrides)
    return ServiceSettings(**values)


@contextmanager
def running_app(app: FastAPI, host: str = "127.0.0.1", port: int | None = None) -> Iterator[str]:
    """Serve ``app`` on ``host`` (a loopback address) and ``port`` (default: a free one) in a
    thread; yields its base URL; stops it (and its engines) after."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the app did not start (see the log above)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the app did not start within 120 s")
        time.sleep(0.02)
    try:
        yield f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=120)


@contextmanager
def role_service(
    spec: RoleSpec, settings: ServiceSettings, wait: bool = True, host: str = "127.0.0.1", port: int | None = None
) -> Iterator[httpx.Client]:
    """A running role service and a client for it; waits until /ready unless ``wait`` is False."""
    with running_app(create_app(spec, settings), host, port) as url, httpx.Client(base_url=url, timeout=120) as client:
        if wait:
            wait_ready(client)
        yield client


def read_events(response: httpx.Response, out: list[Event] | None = None) -> list[Event]:
    """The server-sent events of a streamed answer, appended to ``out`` as they arrive."""
    events = out if out is not None else []
    for event in decode_events(response.iter_lines()):
        events.append(event)
    return events


def lora_adapter(root: Path, name: str, *markers: tuple[str, str]) -> Path:
    """A LoRA adapter directory as the fake vLLM reads it, with failure-marker files (name, content)."""
    path = root / name
    path.mkdir()
    (path / "adapter_config.json").write_text(json.dumps({"r": 8, "lora_alpha": 16, "target_modules": ["q_proj"]}))
    for filename, content in markers:
        (path / filename).write_text(content)
    return path


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(interval_s)


def wait_ready(client: httpx.Client, timeout_s: float = READY_TIMEOUT_S) -> None:
    def ready() -> bool:
        try:
            return client.get("/ready").status_code == 200
        except httpx.TransportError:  # not listening yet
            return False

    wait_until(ready, timeout_s, f"{client.base_url}/ready", interval_s=0.1)


def admin_status(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/admin/weights", headers=ADMIN)
    response.raise_for_status()
    return response.json()


def metric_value(client: httpx.Client, name: str, /, **labels: str) -> float:
    """The sum of the samples of ``name`` in ``client``'s `/metrics` whose labels include ``labels``."""
    return read_metric(client.get("/metrics").text, name, **labels)


@dataclass
class LoadResult:
    """What each client thread saw, in order: (status code, weights version or None)."""

    per_worker: list[list[tuple[int, str | None]]] = field(default_factory=list)

    @property
    def all(self) -> list[tuple[int, str | None]]:
        return [r for worker in self.per_worker for r in worker]

    @property
    def failures(self) -> list[tuple[int, str | None]]:
        return [r for r in self.all if r[0] != 200]


@contextmanager
def steady_load(
    base_url: str, path: str, body: dict[str, Any], workers: int = 3, max_requests: int = 600, max_seconds: float = 180
) -> Iterator[LoadResult]:
    """``workers`` threads send ``body`` to ``path`` one after the other until the block ends
    (then each sends one more), bounded by ``max_requests`` in all and ``max_seconds``."""
    result = LoadResult(per_worker=[[] for _ in range(workers)])
    stop = threading.Event()
    deadline = time.monotonic() + max_seconds
    per_worker_cap = max(1, max_requests // workers)

    def work(index: int) -> None:
        seen = result.per_worker[index]
        with httpx.Client(base_url=base_url, timeout=120) as client:
            while len(seen) < per_worker_cap and time.monotonic() < deadline:
                last = stop.is_set()
                response = client.post(path, json=body)
                version = response.json().get("model", {}).get("version") if response.status_code == 200 else None
                seen.append((response.status_code, version))
                if last:
                    return

    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(work, i) for i in range(workers)]
        try:
            yield result
        finally:
            stop.set()
            for f in futures:
                f.result()
