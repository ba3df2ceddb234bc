"""deploy/haproxy/haproxy.cfg, the load balancer in front of role-service replicas, checked by
HAProxy itself (Debian's package, installed by scripts/ensure-haproxy.sh): as shipped, and as
tests/support/haproxy.py renders it for a fixed list of replicas."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.haproxy import HAPROXY_CFG, haproxy_binary, render_config


def haproxy_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([haproxy_binary(), "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)


def test_the_shipped_config_is_valid() -> None:
    result = haproxy_check(HAPROXY_CFG)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_config_rendered_for_fixed_replicas_is_valid(tmp_path: Path) -> None:
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(render_config({"planner": ["http://127.0.0.1:8201", "http://127.0.0.1:8202"], "caller": ["http://127.0.0.1:8203"]}))
    result = haproxy_check(cfg)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "server planner-2 127.0.0.1:8202" in cfg.read_text()


def test_a_backend_url_without_a_port_is_refused() -> None:
    with pytest.raises(ValueError, match="planner.*no host and port"):
        render_config({"planner": ["http://127.0.0.1"]})
