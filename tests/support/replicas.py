"""Role-service replicas as real processes on loopback, for the load-balancer tests and benches.

A :class:`Replica` is ``umi serve ROLE --engine url`` (the product's command and its SIGTERM
drain, umi.service.drain) in front of its own ``tests/support/fake_vllm.py`` process, which
keeps running while the service is stopped and started again (as a rollout restarts a pod; the
fake also records every prompt it served: ``completions()``). Every process is stopped by
``stop()``; use :func:`replicas` to get several, always stopped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support.servers import ADMIN_TOKEN, FAKE_VLLM, READY_TIMEOUT_S, wait_ready
from umi.engines.process import free_port

ROOT = Path(__file__).resolve().parents[2]
DEMO_MODELS = ROOT / "models" / "demo"
SERVED_NAME = "fake"


def _stop(proc: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGTERM, timeout_s: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class Replica:
    """One role-service replica: ``url`` (fixed across restarts) and ``engine_url`` (its fake vLLM).

    ``env`` adds UMI_* settings of the service (e.g. ``UMI_DRAIN_DELAY_S``); ``token_delay_s``
    is the fake's delay per generated word (a generation is about 5 words)."""

    def __init__(self, role: str, log_dir: Path, name: str, env: Mapping[str, str] | None = None, token_delay_s: float = 0.02):
        self.role = role
        self.name = name
        self.log_dir = log_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        engine_port = free_port()
        self.engine_url = f"http://127.0.0.1:{engine_port}"
        self.env = {
            **os.environ, "PYTHONPATH": str(ROOT), "UMI_ENGINE": "url", "UMI_ENGINE_URL": self.engine_url,
            "UMI_ENGINE_MODEL": SERVED_NAME, "UMI_MODEL": str(DEMO_MODELS / role), "UMI_ADMIN_TOKEN": ADMIN_TOKEN,
            "UMI_HEALTH_INTERVAL_S": "0.5", "UMI_LOG_LEVEL": "info", **(env or {}),
        }  # fmt: skip
        self.starts = 0
        self._engine_log = (log_dir / f"{name}-engine.log").open("wb")
        self.engine = subprocess.Popen(
            [sys.executable, str(FAKE_VLLM), "serve", str(DEMO_MODELS / role), "--host", "127.0.0.1",
             "--port", str(engine_port), "--served-model-name", SERVED_NAME, "--fake-token-delay", str(token_delay_s)],
            stdout=self._engine_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        """The log of the service's latest start."""
        return self.log_dir / f"{self.name}-{self.starts}.log"

    def start(self) -> None:
        """Start the service (again, on the same port); returns at once: see :meth:`wait_ready`."""
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} is running"
        self.starts += 1
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "umi.cli", "serve", self.role, "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            )  # fmt: skip

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        with httpx.Client(base_url=self.url, timeout=5) as client:
            wait_ready(client, timeout_s)

    def sigterm(self) -> None:
        """Send SIGTERM, as Kubernetes does to a pod it replaces; returns at once."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout_s: float = 60) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout_s)

    def restart(self) -> None:
        """SIGTERM, wait for the exit, start again and wait until ready (one step of a rollout)."""
        self.sigterm()
        self.wait_exit()
        self.start()
        self.wait_ready()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def engine_call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(method, self.engine_url + path, timeout=10, **kwargs)
        response.raise_for_status()
        return response.json()

    def completions(self) -> list[dict[str, Any]]:
        """Every completion the fake engine served (warm-ups included): model, weights, prompt, sampling."""
        return self.engine_call("GET", "/fake/state")["completions"]

    def signal_stop(self) -> None:
        """Ask the service (SIGINT: no drain delay) and its engine to stop; returns at once."""
        for proc, sig in ((self.proc, signal.SIGINT), (self.engine, signal.SIGTERM)):
            if proc is not None and proc.poll() is None:
                proc.send_signal(sig)

    def stop(self) -> None:
        """Stop the service and its engine (killed if they do not exit within 30 s)."""
        self.signal_stop()
        if self.proc is not None:
            _stop(self.proc, signal.SIGINT)
        _stop(self.engine)
        self._engine_log.close()


@contextmanager
def replicas(counts: Mapping[str, int], log_dir: Path, **options: Any) -> Iterator[dict[str, list[Replica]]]:
    """``counts[role]`` replicas of each role, started together and ready; role -> replicas.
    ``options`` go to :class:`Replica`. Every process is stopped on the way out."""
    with ExitStack() as stack:
        fleet: dict[str, list[Replica]] = {}
        for role, count in counts.items():
            fleet[role] = []
            for i in range(1, count + 1):
                replica = Replica(role, log_dir, f"{role}-{i}", **options)
                stack.callback(replica.stop)
                fleet[role].append(replica)
        stack.callback(lambda: [r.signal_stop() for group in fleet.values() for r in group])  # all at once, first
        for replica in (r for group in fleet.values() for r in group):
            replica.start()
        for replica in (r for group in fleet.values() for r in group):
            replica.wait_ready()
        yield fleet
