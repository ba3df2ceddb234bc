"""One engine server process: spawn it in its own process group, keep the tail of its log, stop it.

The process dies with the service: it gets SIGTERM when the thread that started it ends
(Linux ``PR_SET_PDEATHSIG``), and :meth:`EngineProcess.stop` signals the whole group, so
helper processes (vLLM's workers) go too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections import deque
from collections.abc import Callable, Mapping, Sequence

log = logging.getLogger("umi.engine")

LOG_TAIL_LINES = 200
_READ_CHUNK = 8192


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl  # resolved here, so the child only calls it
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:  # runs in the child between fork and exec: no imports, no loading
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EngineProcess:
    """A started server process and the last lines it wrote."""

    def __init__(
        self, argv: Sequence[str], env: Mapping[str, str] | None = None, label: str = "engine", unset: Sequence[str] = ()
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env or {})  # on top of the service's environment
        self.unset = frozenset(unset)  # names of the service's environment the process does not get
        self.label = label
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc else None

    async def spawn(self) -> None:
        env = {**{k: v for k, v in os.environ.items() if k not in self.unset}, **self.env}
        log.info("%s: starting %s", self.label, " ".join(self.argv))
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        except OSError as exc:
            self._tail.append(f"cannot start {self.argv[0]!r}: {exc}")
            raise
        self._reader = asyncio.create_task(self._read_output(), name=f"{self.label}-log")

    async def _read_output(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        pending = ""
        while True:
            chunk = await self._proc.stdout.read(_READ_CHUNK)
            if not chunk:
                break
            pending += chunk.decode("utf-8", errors="replace").replace("\r", "\n")
            *lines, pending = pending.split("\n")
            for line in lines:
                if line.strip():
                    self._tail.append(line)
                    log.debug("%s| %s", self.label, line)
        if pending.strip():
            self._tail.append(pending)

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(list(self._tail)[-lines:])

    async def wait(self) -> int:
        assert self._proc is not None
        code = await self._proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._reader), timeout=2)
        return code

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self._proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    async def stop(self, grace_s: float) -> None:
        """SIGTERM to the process group, SIGKILL after ``grace_s``; returns when it has exited."""
        if self._proc is None:
            return
        if self._proc.returncode is None:
            log.info("%s: stopping pid %s", self.label, self._proc.pid)
            self._signal_group(signal.SIGTERM)
            try:
                await asyncio.wait_for(self._proc.wait(), timeout=grace_s)
            except TimeoutError:
                log.warning("%s: pid %s did not stop within %.0fs; killing it", self.label, self._proc.pid, grace_s)
                self._signal_group(signal.SIGKILL)
                await self._proc.wait()
        # Helpers left in the group (if any) go too.
        self._signal_group(signal.SIGKILL)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
