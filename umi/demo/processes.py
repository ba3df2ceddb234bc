"""The server processes a demo stack starts, and how they are stopped.

Each server runs in its own process group and gets SIGTERM when this process dies (Linux
``PR_SET_PDEATHSIG``, as the role services do with their engines). Stopping sends SIGTERM to the
group, then SIGKILL after a grace period. Processes a server started in groups of their own (a
role service's engines) are found through ``/proc`` before the stop and killed if they outlive
it, so nothing the stack started survives it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from umi.engines.process import die_with_parent

_PROC = Path("/proc")


class ServerProcess:
    """One started server: its command, environment, log file and process group."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self._popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._popen = subprocess.Popen(
                self.argv, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=die_with_parent,
            )  # fmt: skip

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    @property
    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen else None

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def signal_group(self, sig: signal.Signals) -> None:
        if self._popen is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._popen.pid, sig)

    def wait(self, timeout_s: float) -> bool:
        """Whether the process has exited within ``timeout_s``."""
        if self._popen is None:
            return True
        try:
            self._popen.wait(timeout=max(0.0, timeout_s))
        except subprocess.TimeoutExpired:
            return False
        return True

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process from /proc, or None when it is gone."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # the name may hold spaces and parentheses
    return fields[0], int(fields[1])


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is not)."""
    if _PROC.is_dir():
        stat = _stat(pid)
        return stat is not None and stat[0] not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def descendants(roots: Iterable[int]) -> set[int]:
    """Every live process below ``roots`` (Linux ``/proc``; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    if not _PROC.is_dir():
        return set()
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[0] not in ("Z", "X"):
                children.setdefault(stat[1], []).append(int(entry.name))
    found: set[int] = set()
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def stop_processes(servers: Sequence[ServerProcess], grace_s: float) -> list[int]:
    """SIGTERM to every server's group, SIGKILL to those still running after ``grace_s``, then
    SIGKILL to anything they had started that outlived them. Returns the pids still alive after
    that (none, unless a process cannot be killed)."""
    roots = [s.pid for s in servers if s.pid is not None and s.running]
    below = descendants(roots)
    for server in servers:
        if server.running:
            server.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for server in servers:
        if not server.wait(deadline - time.monotonic()):
            server.signal_group(signal.SIGKILL)
            server.wait(5.0)
    for server in servers:  # helpers left in a server's group
        server.signal_group(signal.SIGKILL)
    leftover_deadline = time.monotonic() + 5.0
    while True:
        alive = sorted(pid for pid in below if pid_alive(pid))
        if not alive or time.monotonic() > leftover_deadline:
            return alive
        for pid in alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
