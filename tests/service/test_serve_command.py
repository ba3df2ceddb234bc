"""One command starts a role service on `transformers serve` with a tiny model, and stopping the
service stops its engine; bad settings exit 2 with one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tests.support.servers import ADMIN, ADMIN_TOKEN, pid_alive, wait_ready

from umi.engines.process import free_port

pytestmark = pytest.mark.engine
UMI = [sys.executable, "-m", "umi.cli"]


def test_umi_serve_planner_runs_on_the_cpu_engine_and_stops_it(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "UMI_ADMIN_TOKEN": ADMIN_TOKEN}
    log = (tmp_path / "service.log").open("wb")
    proc = subprocess.Popen(
        [*UMI, "serve", "planner", "--host", "127.0.0.1", "--port", str(port), "--model", str(tiny_models["v1"])],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    engine_pid = None
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            wait_ready(client)
            status = client.get("/admin/weights", headers=ADMIN).json()
            assert status["engine"]["kind"] == "transformers"  # the default without a GPU
            engine_pid = status["engine"]["pid"]
            r = client.post("/v1/plan", json={"tools": [], "history": [{"role": "user", "content": "hi"}],
                                              "sampling": {"max_tokens": 4}})
            assert r.status_code == 200 and r.json()["model"]["name"] == "tiny-v1"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)  # uvicorn shuts down, then exits by the signal it caught
        assert "Application shutdown complete" in (tmp_path / "service.log").read_text()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and pid_alive(engine_pid):
            time.sleep(0.1)
        assert not pid_alive(engine_pid), "the engine outlived its service"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.parametrize("role", ["planner", "caller", "summarizer", "backbone"])
def test_bad_settings_exit_2_with_one_line(role: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UMI_")}
    r = subprocess.run([*UMI, "serve", role, "--port", "1"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip() == f"umi serve {role}: error: UMI_MODEL (--model) is required: a local model directory or a hub id"


def test_python_m_service_lists_its_settings() -> None:
    r = subprocess.run([sys.executable, "-m", "services.caller", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0
    for flag in ("--engine", "--model", "--engine-url", "--admin-token", "--prompt-variant", "--enable-lora"):
        assert flag in r.stdout
