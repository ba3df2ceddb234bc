"""The demo stack: Redis, the planner, caller and summarizer role services (CPU engine), the
demo tools server and the orchestrator, as child processes on loopback ports. They start
together; the stack is ready when each answers its readiness check; they stop together, and
nothing they started outlives the stack (:mod:`umi.demo.processes`).

``umi demo up`` (``make up``) runs it in the foreground on the documented ports until Ctrl-C;
``umi demo run`` (``make demo``) starts it on free ports for the scripted demo.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import ClassVar

import httpx

from umi.demo.processes import ServerProcess, stop_processes
from umi.engines.process import free_port

Say = Callable[[str], None]

ROLES = ("planner", "caller", "summarizer")
# Start order (all start at once; this is also the order of the readiness report).
SERVICES = ("redis", *ROLES, "tools", "orchestrator")
DEFAULT_MODELS_DIR = "models/demo"
MODELS_DIR_ENV = "UMI_DEMO_MODELS"
REDIS_SERVER_ENV = "UMI_REDIS_SERVER"
# The demo models' turns fit in 128 tokens; a model that rambles stops there instead of at the
# role's 512 (slow on a CPU).
DEMO_MAX_NEW_TOKENS = 128
# How each HTTP service says it is ready (Redis answers PING).
READY_PATHS = {"planner": "/ready", "caller": "/ready", "summarizer": "/ready", "tools": "/health", "orchestrator": "/ready"}


@dataclass(frozen=True)
class StackPorts:
    """Where each part listens. The defaults are the documented ports of ``make up`` and of
    docker-compose.yml (docs/demo.md)."""

    orchestrator: int = 8000
    planner: int = 8101
    caller: int = 8102
    summarizer: int = 8103
    tools: int = 8300
    redis: int = 6390

    @classmethod
    def free(cls, host: str = "127.0.0.1") -> StackPorts:
        ports: set[int] = set()
        while len(ports) < len(SERVICES):
            ports.add(free_port(host))
        return cls(**dict(zip(SERVICES, sorted(ports))))

    def of(self, service: str) -> int:
        return int(getattr(self, service))

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


DOCUMENTED_PORTS = StackPorts()


@dataclass(frozen=True)
class DemoModels:
    """The model directories the stack serves: one per role, and the caller it swaps to."""

    planner: Path
    caller: Path
    summarizer: Path
    caller_v2: Path

    # directory names under the models directory (the stage names of recipes/demo.toml)
    DIRS: ClassVar[dict[str, str]] = {"planner": "planner", "caller": "caller", "summarizer": "summarizer", "caller_v2": "caller-v2"}

    @classmethod
    def in_dir(cls, root: str | Path, caller_v2: str | Path | None = None) -> DemoModels:
        base = Path(root).resolve()
        paths = {key: base / name for key, name in cls.DIRS.items()}
        if caller_v2 is not None:
            paths["caller_v2"] = Path(caller_v2).resolve()
        return cls(**paths)

    def role(self, role: str) -> Path:
        return Path(getattr(self, role))

    def missing(self) -> list[Path]:
        """Directories that are not Hugging Face model directories (no ``config.json``)."""
        return [p for p in (self.planner, self.caller, self.summarizer, self.caller_v2) if not (p / "config.json").is_file()]


def default_models_dir() -> Path:
    return Path(os.environ.get(MODELS_DIR_ENV) or DEFAULT_MODELS_DIR)


@dataclass
class StackConfig:
    models: DemoModels
    work_dir: Path  # logs/ and redis/ go here
    admin_token: str  # the role services' /admin/* token
    ports: StackPorts = DOCUMENTED_PORTS
    host: str = "127.0.0.1"
    engine: str = "transformers"  # the CPU engine
    temperature: float | None = 0.0  # greedy, as the demo models' quality is measured
    max_new_tokens: int | None = DEMO_MAX_NEW_TOKENS
    ready_timeout_s: float = 600.0
    stop_grace_s: float = 30.0
    extra_env: dict[str, str] = field(default_factory=dict)


class StackError(RuntimeError):
    """The stack cannot start or a part of it died; the message says which and why."""


def redis_server_binary() -> str:
    found = os.environ.get(REDIS_SERVER_ENV) or shutil.which("redis-server")
    if not found:
        raise StackError(
            "redis-server is required: `make demo` and `make up` install it with apt-get when run as root on "
            "Debian/Ubuntu (scripts/ensure-redis-server.sh); elsewhere install it (brew install redis, "
            "dnf install redis, apt-get install redis-server)"
        )
    return found


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


class Stack:
    """The six servers of the demo. Use as a context manager, or call :meth:`start` and :meth:`stop`."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.servers: dict[str, ServerProcess] = {}
        self.leftover: list[int] = []

    # ------------------------------------------------------------------ addresses
    def url(self, service: str) -> str:
        if service == "redis":
            return self.redis_url
        return f"http://{self.config.host}:{self.config.ports.of(service)}"

    @property
    def redis_url(self) -> str:
        return f"redis://{self.config.host}:{self.config.ports.redis}/0"

    @property
    def log_dir(self) -> Path:
        return self.config.work_dir / "logs"

    # ------------------------------------------------------------------ what runs
    def _serve(self, name: str) -> list[str]:
        port = str(self.config.ports.of(name))
        return [sys.executable, "-m", "umi.cli", "serve", name, "--host", self.config.host, "--port", port]

    def _commands(self) -> dict[str, tuple[list[str], dict[str, str]]]:
        c = self.config
        base = {**os.environ, "PYTHONUNBUFFERED": "1", **c.extra_env}
        redis_dir = c.work_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        redis = [
            redis_server_binary(), "--bind", c.host, "--port", str(c.ports.redis), "--dir", str(redis_dir),
            "--save", "", "--appendonly", "no", "--daemonize", "no",
        ]  # fmt: skip
        commands: dict[str, tuple[list[str], dict[str, str]]] = {"redis": (redis, base)}
        for role in ROLES:
            env = {**base, "UMI_MODEL": str(c.models.role(role)), "UMI_ENGINE": c.engine, "UMI_ADMIN_TOKEN": c.admin_token}
            if c.temperature is not None:
                env["UMI_TEMPERATURE"] = str(c.temperature)
            if c.max_new_tokens is not None:
                env["UMI_MAX_NEW_TOKENS"] = str(c.max_new_tokens)
            commands[role] = (self._serve(role), env)
        commands["tools"] = (self._serve("tools"), {**base, "UMI_TOOLS_PUBLIC_URL": self.url("tools")})
        orchestrator_env = {
            **base, "UMI_REDIS_URL": self.redis_url, "UMI_PLANNER_URL": self.url("planner"),
            "UMI_CALLER_URL": self.url("caller"), "UMI_SUMMARIZER_URL": self.url("summarizer"),
            "UMI_BACKBONE_URL": "", "UMI_ADMIN_TOKEN": "",
            "UMI_TOOL_ALLOWLIST": c.host,  # its own tools server; the stack's other ports stay refused
        }  # fmt: skip
        commands["orchestrator"] = (self._serve("orchestrator"), orchestrator_env)
        return commands

    # ------------------------------------------------------------------ life cycle
    def start(self, say: Say = print) -> None:
        """Start every server and wait until each is ready. Raises :class:`StackError` (or
        KeyboardInterrupt); what started is then still to be stopped: use :func:`running_stack`,
        or the stack as a context manager."""
        missing = self.config.models.missing()
        if missing:
            raise StackError(
                "no model in " + ", ".join(str(p) for p in missing)
                + ": build the demo models with `make models`, or point --models (UMI_DEMO_MODELS) at a directory "
                "with planner/, caller/, summarizer/ and caller-v2/"
            )
        taken = [f"{name} {self.config.ports.of(name)}" for name in SERVICES if port_in_use(self.config.host, self.config.ports.of(name))]
        if taken:
            raise StackError(f"port(s) in use on {self.config.host}: {', '.join(taken)}: stop what uses them, or use free ports (umi demo up --free-ports; make up DEMO_ARGS=--free-ports)")
        commands = self._commands()
        say(f"starting {', '.join(SERVICES)} (logs: {self.log_dir})")
        for name in SERVICES:
            argv, env = commands[name]
            server = ServerProcess(name, argv, env, self.log_dir / f"{name}.log")
            self.servers[name] = server
            server.start()
        self.wait_ready(say)

    def _ready(self, name: str, client: httpx.Client) -> bool:
        try:
            if name == "redis":
                import redis

                conn = redis.Redis.from_url(self.redis_url, socket_timeout=1, socket_connect_timeout=1)
                try:
                    return bool(conn.ping())
                finally:
                    conn.close()
            return client.get(self.url(name) + READY_PATHS[name]).status_code == 200
        except Exception:  # noqa: BLE001 - not listening yet, or still starting
            return False

    def wait_ready(self, say: Say = print, report_every_s: float = 15.0) -> None:
        started = time.monotonic()
        waiting = list(self.servers)
        next_report = started + report_every_s
        with httpx.Client(timeout=2.0) as client:
            while waiting:
                self.check_running()
                for name in list(waiting):
                    if self._ready(name, client):
                        waiting.remove(name)
                        say(f"  {name:<13} ready after {time.monotonic() - started:5.1f} s   {self.url(name)}")
                now = time.monotonic()
                if waiting and now > started + self.config.ready_timeout_s:
                    raise StackError(
                        f"not ready after {self.config.ready_timeout_s:.0f} s: {', '.join(waiting)}\n" + self._tails(waiting)
                    )
                if waiting and now > next_report:
                    say(f"  ... waiting for {', '.join(waiting)} ({now - started:.0f} s; the CPU engines load the models)")
                    next_report = now + report_every_s
                time.sleep(0.25)

    def check_running(self) -> None:
        """Raise :class:`StackError` with the log tail of every server that has exited."""
        dead = [name for name, server in self.servers.items() if not server.running]
        if dead:
            codes = ", ".join(f"{name} (exit status {self.servers[name].returncode})" for name in dead)
            raise StackError(f"stopped unexpectedly: {codes}\n" + self._tails(dead))

    def _tails(self, names: list[str]) -> str:
        return "\n".join(f"--- {self.servers[n].log_path} (last lines)\n{self.servers[n].log_tail()}" for n in names)

    def stop(self) -> list[int]:
        """Stop every server (SIGTERM, then SIGKILL after the grace period) and what they started.
        Returns the pids still alive afterwards (normally none). Neither Ctrl-C nor SIGTERM or SIGHUP can interrupt it."""
        with _sigint_ignored():
            self.leftover = stop_processes(list(self.servers.values()), self.config.stop_grace_s)
        return self.leftover

    def pids(self) -> dict[str, int]:
        return {name: s.pid for name, s in self.servers.items() if s.pid is not None}

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""Ignored while the stack stops: a second Ctrl-C, or the SIGTERM that make passes on after its
own, must not cut the clean-up short."""


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in _STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def interrupt_on_termination() -> Iterator[None]:
    """SIGTERM and SIGHUP raise KeyboardInterrupt, as Ctrl-C does, so the same clean-up runs; and
    SIGINT does even when the process started with it ignored (a job a non-interactive shell put
    in the background), so `kill -INT` stops the stack as Ctrl-C does."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def new_work_dir() -> Path:
    """A fresh directory for one stack's logs and Redis files."""
    return Path(tempfile.mkdtemp(prefix="umi-demo-"))


def keep_logs(work_dir: Path, say: Say = print) -> None:
    """After a failure: say where the logs are, or remove ``work_dir`` when no part had started
    yet (a taken port, missing models), so that no empty directory is pointed to."""
    logs = work_dir / "logs"
    if logs.is_dir() and any(logs.iterdir()):
        say(f"logs kept in {logs}")
    else:
        shutil.rmtree(work_dir, ignore_errors=True)


@contextlib.contextmanager
def running_stack(stack: Stack, say: Say = print) -> Iterator[Stack]:
    """``stack`` started; stopped on the way out, whatever happens (Ctrl-C, SIGTERM, SIGHUP, an
    error). ``stack.leftover`` then lists the pids that survived the stop (normally none)."""
    with interrupt_on_termination():
        try:
            stack.start(say)
            yield stack
        finally:
            if stack.servers:
                say("stopping the stack ...")
                leftover = stack.stop()
                say("stopped: no process left" if not leftover else f"WARNING: still alive after the stop: pids {leftover}")
