"""A private Redis with Sentinel on loopback: a primary, two replicas and three Sentinels, for
tests that kill the primary (``RedisSentinelGroup``). Debian's ``redis-server`` binary runs a
Sentinel with ``--sentinel``; no other package is needed. Every process is stopped by ``stop``.

Two replicas, not one: after the failover the promoted replica is the primary and the other one
replicates from it, so ``WAIT 1`` still has a replica to wait for.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis

from umi.engines.process import free_port

SERVICE = "umi"
DOWN_AFTER_MS = 1000
"""How long a primary must not answer before the Sentinels call it down (the failover's first part)."""


def _wait_until(check, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return
        except redis.RedisError:
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class RedisSentinelGroup:
    """Primary + 2 replicas + 3 Sentinels (quorum 2) on 127.0.0.1, files under ``directory``."""

    def __init__(self, binary: str, directory: Path):
        self.binary, self.dir = binary, directory
        self.node_ports = [free_port() for _ in range(3)]
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """``UMI_REDIS_URL`` of the group (``redis+sentinel://``)."""
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def _spawn(self, port: int, args: list[str]) -> None:
        log = self.dir / f"{port}.log"
        self.procs[port] = subprocess.Popen([self.binary, *args, "--logfile", str(log)])

    def start(self) -> None:
        primary = self.node_ports[0]
        for port in self.node_ports:
            node_dir = self.dir / f"node-{port}"
            node_dir.mkdir()
            args = ["--bind", "127.0.0.1", "--port", str(port), "--dir", str(node_dir), "--save", "", "--appendonly", "no"]
            if port != primary:
                args += ["--replicaof", "127.0.0.1", str(primary)]
            self._spawn(port, args)
        for port in self.node_ports[1:]:
            client = redis.Redis(port=port, socket_timeout=1)
            _wait_until(lambda c=client: c.info("replication").get("master_link_status") == "up", 20, "a replica's link")
            client.close()
        for port in self.sentinel_ports:
            conf = self.dir / f"sentinel-{port}.conf"  # a Sentinel rewrites its own config file
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.dir}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {primary} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} 10000\n"
                f"sentinel parallel-syncs {SERVICE} 2\n"
            )
            self._spawn(port, [str(conf), "--sentinel"])
        for port in self.sentinel_ports:  # each Sentinel knows both replicas and the other Sentinels
            client = redis.Redis(port=port, socket_timeout=1, decode_responses=True)
            _wait_until(
                lambda c=client: (m := c.sentinel_master(SERVICE))["num-slaves"] == 2 and m["num-other-sentinels"] == 2,
                30, "the Sentinels to see the group",
            )  # fmt: skip
            client.close()

    def primary_port(self) -> int:
        """The port of the node the Sentinels name primary now."""
        client = redis.Redis(port=self.sentinel_ports[0], socket_timeout=1)
        try:
            return int(client.sentinel_get_master_addr_by_name(SERVICE)[1])
        finally:
            client.close()

    def kill_primary(self) -> int:
        """kill -9 the primary (no shutdown, no last fsync); returns its port."""
        port = self.primary_port()
        self.procs[port].kill()
        self.procs[port].wait(timeout=10)
        return port

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
