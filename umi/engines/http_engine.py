"""Engines reached over HTTP: the shared request path and health watch, the ``url`` engine, and
the supervised subprocess engines' restart loop (they are
:class:`~umi.engines.base.Restartable`).

Health is probed every ``health_interval_s``; a failed request triggers a probe at once. An engine
whose probes fail ``health_failures`` times in a row (or whose process exits) is unavailable:
requests get :class:`EngineUnavailable` (503 + Retry-After) at once, never a hang. A supervised
engine is then killed and restarted with backoff; a ``url`` engine is probed until it answers.

What vLLM does that this watch answers (docs/role-services.md, "vLLM behaviours"):
- a dead engine core answers 500 to requests (in streams: an ``{"error": ...}`` event) and 503 to
  ``/health`` for a few seconds before the process exits: after a 5xx answer or an in-stream
  error ``/health`` is probed at once; when it fails the engine is dead at once (no
  ``health_failures`` count), the request gets :class:`EngineUnavailable` and the engine restarts;
- a hung engine still answers 200 to ``/health`` (it only reports a dead engine): every request
  that times out counts as a failed probe, and a successful request clears the count;
- an engine that exits before it is healthy with status 2 and a usage message refused its command
  line: :class:`EngineConfigError`, which the service does not retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from umi.engines.base import (
    RESTART_BACKOFF_MAX_S,
    Completion,
    CompletionParams,
    Engine,
    EngineConfigError,
    EngineError,
    EngineInfo,
    EngineOptions,
    EngineRequestError,
    EngineStartError,
    EngineState,
    EngineTimeout,
    EngineUnavailable,
    StreamEvent,
)
from umi.engines.openai_http import CompletionsClient
from umi.engines.process import EngineProcess, free_port

log = logging.getLogger("umi.engine")

USAGE_ERROR_STATUS = 2  # argparse's exit status for a command line it refuses (vLLM's FlexibleArgumentParser too)


class HttpEngine(Engine):
    """Requests and the health watch; subclasses say how the server comes up and recovers."""

    def __init__(self, model_path: str, options: EngineOptions, base_url: str) -> None:
        super().__init__(model_path, options)
        self.client = CompletionsClient(base_url, options.request_timeout_s, self.retry_after_s)
        self._watcher: asyncio.Task[None] | None = None
        self._probe_now = asyncio.Event()
        self._stopping = False
        self._dead = False  # a failed request's probe found the engine dead: recover without counting probes
        self._timeouts = 0  # requests timed out since the last answered one

    @property
    def base_url(self) -> str:
        return self.client.base_url

    # ------------------------------------------------------------ requests
    async def complete(self, model: str, prompt: str, params: CompletionParams) -> Completion:
        self.check_ready()
        try:
            completion = await self.client.complete(model, prompt, params)
        except EngineError as exc:
            await self._request_failed(exc)
            raise
        self._timeouts = 0
        return completion

    async def stream(self, model: str, prompt: str, params: CompletionParams) -> AsyncIterator[StreamEvent]:
        self.check_ready()
        try:
            async for event in self.client.stream(model, prompt, params):
                yield event
        except EngineError as exc:
            await self._request_failed(exc)
            raise
        self._timeouts = 0

    async def _request_failed(self, exc: EngineError) -> None:
        """Note a failed request; raise :class:`EngineUnavailable` (from ``exc``) when the engine is dead.

        A 5xx answer (or an in-stream error) probes ``/health`` at once: vLLM answers 500 when its
        engine core died and then exits, so a failing probe means the engine is gone now.
        """
        if isinstance(exc, EngineTimeout):
            self._timeouts += 1
        if isinstance(exc, EngineUnavailable):
            self._probe_now.set()
            return
        if isinstance(exc, EngineRequestError) and exc.status >= 500 and not await self.client.health():
            if self.state is EngineState.READY:
                log.error("%s engine at %s failed a request (%s) and its /health fails: it is dead", self.kind, self.base_url, exc)
                self._dead = True
                self._set_state(EngineState.UNAVAILABLE)
                self._probe_now.set()
            raise EngineUnavailable(f"the engine failed ({exc}) and is being restarted", self.retry_after_s()) from exc

    # --------------------------------------------------------------- health
    async def wait_healthy(self, timeout_s: float, process: EngineProcess | None = None) -> None:
        """Poll ``/health`` until 200; fail early when ``process`` exits."""
        deadline = time.monotonic() + timeout_s
        delay = 0.1
        while True:
            if process is not None and not process.running:
                await process.wait()  # its last lines
                tail = process.log_tail()
                message = f"engine exited with status {process.returncode} before it was healthy:\n{tail}"
                if process.returncode == USAGE_ERROR_STATUS and "usage:" in tail:
                    raise EngineConfigError(f"the engine refused its command line; fix the settings:\n{tail}")
                raise EngineStartError(message)
            if await self.client.health():
                return
            if time.monotonic() >= deadline:
                tail = f":\n{process.log_tail()}" if process is not None else ""
                raise EngineStartError(f"engine at {self.base_url} was not healthy within {timeout_s:.0f}s{tail}")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    def _start_watching(self) -> None:
        self._watcher = asyncio.create_task(self._watch(), name=f"{self.kind}-watch")

    async def _wait_for_probe(self) -> bool:
        """Sleep until the next probe is due; True when something says the engine is gone."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._probe_now.wait(), timeout=self.options.health_interval_s)
        self._probe_now.clear()
        return False

    async def _watch(self) -> None:
        failures = 0
        while not self._stopping:
            try:
                gone = await self._wait_for_probe() or self._dead
                if self._stopping:
                    return
                hung = self._timeouts >= self.options.health_failures
                if not gone and not hung and await self.client.health():
                    failures = 0
                    self._on_healthy()
                    continue
                if hung:
                    log.error("%s engine at %s: %d requests in a row timed out; it counts as dead", self.kind, self.base_url, self._timeouts)
                failures = self.options.health_failures if gone or hung else failures + 1
                if failures >= self.options.health_failures:
                    failures = 0
                    self._dead = False
                    self._timeouts = 0
                    await self._recover()
            except asyncio.CancelledError:
                raise
            except Exception:  # the watch must outlive any one failure
                log.exception("%s engine watch: unexpected error; watching on", self.kind)
                await asyncio.sleep(self.options.health_interval_s)

    def _on_healthy(self) -> None:
        """A probe answered 200."""

    @abstractmethod
    async def _recover(self) -> None:
        """The engine is gone: bring it back (or wait for it)."""

    async def _close(self) -> None:
        self._stopping = True
        self._probe_now.set()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watcher
        await self.client.aclose()


class UrlEngine(HttpEngine):
    """An OpenAI-compatible server somebody else runs (``UMI_ENGINE_URL``)."""

    kind = "url"

    def __init__(self, model_path: str, options: EngineOptions, url: str, served_model: str | None = None) -> None:
        super().__init__(model_path, options, url)
        self._served_model = served_model or model_path

    @property
    def served_model(self) -> str:
        return self._served_model

    async def start(self) -> None:
        self._set_state(EngineState.STARTING)
        started = time.monotonic()
        await self.wait_healthy(self.options.start_timeout_s)
        self.last_start_seconds = time.monotonic() - started
        self._set_state(EngineState.READY)
        self._start_watching()

    def _on_healthy(self) -> None:
        if self.state is EngineState.UNAVAILABLE:
            log.info("url engine %s answers again", self.base_url)
            self._set_state(EngineState.READY)

    async def _recover(self) -> None:
        if self.state is EngineState.READY:
            log.warning("url engine %s stopped answering /health", self.base_url)
        self._set_state(EngineState.UNAVAILABLE)

    async def stop(self) -> None:
        await self._close()
        self._set_state(EngineState.STOPPED)

    def info(self) -> EngineInfo:
        return EngineInfo(kind=self.kind, url=self.base_url, state=self.state.value, model=self.model_path)


@dataclass(frozen=True)
class LaunchSpec:
    """How to start an engine server process."""

    command: tuple[str, ...] | None = None  # the executable (argv prefix); None: the engine's default
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port
    extra_args: tuple[str, ...] = ()  # UMI_ENGINE_ARGS, appended last
    dtype: str | None = None


class SupervisedEngine(HttpEngine):
    """An engine server this service starts as a subprocess, watches and restarts."""

    def __init__(self, model_path: str, options: EngineOptions, launch: LaunchSpec) -> None:
        self.host = launch.host
        self.port = launch.port or free_port(launch.host)
        self.launch = launch
        super().__init__(model_path, options, f"http://{self.host}:{self.port}")
        self.process: EngineProcess | None = None

    @abstractmethod
    def command(self) -> list[str]:
        """The full argv of the server process."""

    def environment(self) -> dict[str, str]:
        return {}

    def unset_environment(self) -> tuple[str, ...]:
        """Variables of the service's environment the server must not inherit."""
        return ()

    async def _after_launch(self) -> None:
        """Runs once the process is healthy (on start and on every restart)."""

    async def _launch(self) -> None:
        started = time.monotonic()
        process = EngineProcess(
            self.command(), self.environment(), label=f"{self.kind}:{self.port}", unset=self.unset_environment()
        )
        self.process = process
        try:
            await process.spawn()
        except OSError as exc:
            raise EngineStartError(f"cannot start the {self.kind} engine: {exc}") from exc
        try:
            await self.wait_healthy(self.options.start_timeout_s, process)
            try:
                await self._after_launch()
            except (EngineUnavailable, EngineRequestError) as exc:
                raise EngineStartError(f"the {self.kind} engine came up but its set-up failed: {exc}") from exc
        except BaseException:
            await process.stop(self.options.stop_grace_s)
            raise
        self.last_start_seconds = time.monotonic() - started
        log.info("%s engine on port %s healthy after %.1fs (pid %s)", self.kind, self.port, self.last_start_seconds, process.pid)

    async def start(self) -> None:
        self._set_state(EngineState.STARTING)
        try:
            await self._launch()
        except BaseException:
            self._set_state(EngineState.STOPPED)
            raise
        self._set_state(EngineState.READY)
        self._start_watching()

    async def _wait_for_probe(self) -> bool:
        assert self.process is not None
        if not self.process.running:
            return True
        exit_wait = asyncio.ensure_future(self.process.wait())
        probe = asyncio.ensure_future(self._probe_now.wait())
        try:
            await asyncio.wait({exit_wait, probe}, timeout=self.options.health_interval_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (exit_wait, probe):
                task.cancel()
        self._probe_now.clear()
        return not self.process.running

    async def _recover(self) -> None:
        assert self.process is not None
        self._set_state(EngineState.RESTARTING)
        self._restarting()
        code = self.process.returncode
        log.error(
            "%s engine on port %s is gone (%s); restarting. Last output:\n%s",
            self.kind, self.port, f"exit status {code}" if code is not None else "not answering /health",
            self.process.log_tail(),
        )
        await self.process.stop(self.options.stop_grace_s)
        delay = self.options.restart_backoff_s
        while not self._stopping:
            await asyncio.sleep(delay)
            try:
                await self._launch()
            except EngineStartError as exc:
                log.error("%s engine restart failed: %s", self.kind, exc)
                delay = min(delay * 2, RESTART_BACKOFF_MAX_S)
                continue
            self._set_state(EngineState.READY)
            return

    async def stop(self) -> None:
        await self._close()
        if self.process is not None:
            await self.process.stop(self.options.stop_grace_s)
        self._set_state(EngineState.STOPPED)

    async def restart_on(self, model_path: str) -> None:
        """:class:`~umi.engines.base.Restartable`: stop the process; the watch restarts it on ``model_path``."""
        self.model_path = model_path
        if self.process is not None:
            await self.process.stop(self.options.stop_grace_s)

    def info(self) -> EngineInfo:
        return EngineInfo(
            kind=self.kind,
            url=self.base_url,
            state=self.state.value,
            model=self.model_path,
            pid=self.process.pid if self.process else None,
            restarts=self.restarts,
        )

    def _base_argv(self, default_command: Sequence[str]) -> list[str]:
        """``<command> serve <model> --host H --port P``, the start of both servers' command lines."""
        command = list(self.launch.command or default_command)
        return [*command, "serve", self.model_path, "--host", self.host, "--port", str(self.port)]
