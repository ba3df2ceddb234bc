"""The shipped HAProxy config (deploy/haproxy/haproxy.cfg) run for real on loopback.

``run_haproxy({"planner": ["http://127.0.0.1:8201", ...], ...})`` renders the config with one
``server`` line per given replica in place of each backend's DNS ``server-template`` (what
docs/deployment.md tells a team with a fixed list to do), binds every frontend and the stats
page on free ports of 127.0.0.1, starts ``haproxy -db -f`` (scripts/ensure-haproxy.sh installs
it), waits until the frontends listen, and yields role -> base URL of that role's frontend.
HAProxy is always stopped on the way out. A role that is not given has no servers (503).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from umi.engines.process import free_port

HAPROXY_CFG = Path(__file__).resolve().parents[2] / "deploy" / "haproxy" / "haproxy.cfg"
ROLES = ("planner", "caller", "summarizer", "backbone")
START_TIMEOUT_S = 20.0
_TEMPLATE = re.compile(r"^(\s*)server-template (\w+)- .*$", re.MULTILINE)


def haproxy_binary() -> str:
    path = shutil.which("haproxy")
    if path is None:
        raise RuntimeError("haproxy is not installed: run scripts/ensure-haproxy.sh (make test does)")
    return path


def render_config(backends: Mapping[str, Sequence[str]], source: Path = HAPROXY_CFG) -> str:
    """The shipped config with each backend's ``server-template`` line replaced by one
    ``server ROLE-N HOST:PORT`` line per URL of ``backends[ROLE]`` (none for a role not given).
    Raises ValueError for a role the config does not have or a URL without host and port."""
    unknown = set(backends) - set(ROLES)
    if unknown:
        raise ValueError(f"backends: no such role in {source.name}: {', '.join(sorted(unknown))}")

    def servers(match: re.Match[str]) -> str:
        indent, role = match.group(1), match.group(2)
        lines = []
        for i, url in enumerate(backends.get(role, ()), start=1):
            parts = urlsplit(url)
            if not parts.hostname or not parts.port:
                raise ValueError(f"backends[{role!r}]: {url!r} has no host and port")
            lines.append(f"{indent}server {role}-{i} {parts.hostname}:{parts.port}")
        return "\n".join(lines)

    text, count = _TEMPLATE.subn(servers, source.read_text(encoding="utf-8"))
    if count != len(ROLES):
        raise ValueError(f"{source}: expected one server-template line per role, found {count}")
    return text


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def run_haproxy(backends: Mapping[str, Sequence[str]]) -> Iterator[dict[str, str]]:
    """HAProxy with the shipped config in front of ``backends`` (role -> replica base URLs);
    yields role -> base URL of that role's frontend (every role of the config). Raises
    RuntimeError when haproxy is missing or does not start (its log in the message)."""
    binary = haproxy_binary()
    ports = {role: free_port() for role in ROLES}
    env = {**os.environ, "LB_STATS_BIND": f"127.0.0.1:{free_port()}"}
    env.update({f"LB_{role.upper()}_BIND": f"127.0.0.1:{port}" for role, port in ports.items()})
    with tempfile.TemporaryDirectory(prefix="umi-haproxy-") as tmp:
        cfg = Path(tmp) / "haproxy.cfg"
        cfg.write_text(render_config(backends), encoding="utf-8")
        log_path = Path(tmp) / "haproxy.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen([binary, "-db", "-f", str(cfg)], env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + START_TIMEOUT_S
                while not all(_listening(port) for port in ports.values()):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"haproxy did not start: {log_path.read_text(errors='replace')[-2000:]}")
                    time.sleep(0.05)
                yield {role: f"http://127.0.0.1:{port}" for role, port in ports.items()}
            finally:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(timeout=10)
