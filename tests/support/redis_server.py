"""A private `redis-server` for tests that must stop or restart Redis (the shared server of
`make test` is never stopped): loopback, a free port, an append-only file so data survives a
restart, always stopped by the fixture that made it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis

from umi.engines.process import free_port


def redis_server_binary() -> str:
    """The `redis-server` that `make test` found (UMI_REDIS_SERVER) or the one on PATH.

    Skips the test when there is none, and fails it under CI (where `make test` installs it)."""
    found = os.environ.get("UMI_REDIS_SERVER") or shutil.which("redis-server")
    if not found:
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing: run the suite with `make test`")
        pytest.skip("redis-server is not installed: run the suite with `make test`")
    return found


class RedisServer:
    """A private redis-server on 127.0.0.1 with an append-only file in ``directory``."""

    def __init__(self, binary: str, directory: Path):
        self.binary, self.dir, self.port = binary, directory, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 20.0) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.dir), "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--logfile", str(self.dir / "redis.log")],
        )  # fmt: skip
        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    assert time.monotonic() < deadline and self.proc.poll() is None, "redis-server did not start"
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        """SIGTERM: Redis fsyncs the append-only file and exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
