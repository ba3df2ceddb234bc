"""Weights: the serving deployment, and replacing it while traffic flows.

Strategies (one swap at a time; a second one gets 409), each a unit in umi/service/strategies/
that this manager picks by name:

blue_green  full weights: a second engine on the new weights, gated on /health and a warm-up
            generation; switch; drain; stop the old engine.
in_place    full weights on one engine that reloads in place (vLLM sleep mode): pause new
            requests (they queue), drain, reload, warm up, switch, resume; on failure the old
            weights are reloaded.
lora        a LoRA adapter on an engine that loads them: load under a new versioned name, warm
            up, switch the role's alias, drain, unload the old adapter.
reuse       the target is what the engine already holds (rolling back from an adapter to its
            base): warm up and switch, no new engine.

Which one: ``lora`` for an adapter; ``reuse`` when the target is the current base weights and
the engine is ready; else the request's strategy, or UMI_SWAP_STRATEGY. A strategy the engine
lacks the capability for is refused (422) before anything happens.

Anything that fails before the switch refuses the swap: the old weights keep serving and
nothing in flight is touched. After the switch the manager drains the old deployment (up to the
drain timeout) and the strategy releases what only the old weights used.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

from pydantic import BaseModel

from umi.engines import Engine, EngineConfigError, EngineState, EngineUnavailable
from umi.roleapi import ModelInfo
from umi.service.deployment import Deployment
from umi.service.engine_factory import EngineFactory
from umi.http_errors import HttpError
from umi.service.metrics import ServiceMetrics
from umi.service.prompt_fit import PromptFitter
from umi.service.settings import ServiceSettings, SwapStrategy
from umi.service.strategies import STRATEGIES, StrategyName, SwapJob
from umi.service.tracing import swap_span
from umi.service.weights import WeightsKind, WeightsProblem, WeightsRef, check_weights_path, weights_ref

log = logging.getLogger("umi.service")

WarmUp = Callable[[Deployment], Awaitable[None]]
HISTORY_LIMIT = 20
START_RETRY_MAX_S = 30.0
_ADAPTER_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class SwapTimings(BaseModel):
    prepare_ms: float  # new weights loaded and warmed up
    ready_to_switch_ms: float  # from "new weights ready" to "requests switched"
    drain_ms: float  # in-flight requests on the old weights finishing
    total_ms: float


class SwapReport(BaseModel):
    model: ModelInfo  # now serving
    previous: ModelInfo
    weights: WeightsRef
    strategy: StrategyName
    rollback: bool = False
    drained: bool  # every in-flight request on the old weights finished within the drain timeout
    abandoned_requests: int = 0  # still running on the old weights when it was released
    timings: SwapTimings


class SwapProgress(BaseModel):
    target: WeightsRef
    strategy: StrategyName
    phase: str
    started_at: float  # unix time


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


class WeightsManager:
    """Owns the current deployment, the engines, the swap lock and the in-place pause gate; the
    :class:`~umi.service.strategies.SwapHost` of the strategies it runs."""

    def __init__(
        self, role: str, settings: ServiceSettings, factory: EngineFactory, warm_up: WarmUp, metrics: ServiceMetrics
    ) -> None:
        self.role = role
        self.settings = settings
        self.factory = factory
        self.warm_up = warm_up
        self.metrics = metrics
        self.current: Deployment | None = None
        self.fitter: PromptFitter | None = None  # the first tokenizer, usable before the engine is up
        self.history: list[WeightsRef] = []  # rollback stack: the weights that served before
        self.progress: SwapProgress | None = None
        self.last_swap: SwapReport | None = None
        self.failure: str | None = None  # why the first engine can never start (a usage error): no retries
        self.draining = False  # the process is stopping (SIGTERM): /ready answers 503, requests are still served
        self._lock = asyncio.Lock()
        self._not_paused = asyncio.Event()
        self._not_paused.set()
        self._engines: set[Engine] = set()
        self._adapter_seq = itertools.count(1)

    # ------------------------------------------------------------ start-up
    def initial_weights(self) -> WeightsRef:
        s = self.settings
        path = s.model or s.tokenizer
        assert path is not None, "settings validation guarantees a model or tokenizer"
        return weights_ref(path, "full", s.model_name, s.model_version)

    async def load_fitter(self, tokenizer_path: str, model_path: str) -> PromptFitter:
        s = self.settings
        return await asyncio.to_thread(PromptFitter.load, tokenizer_path, model_path, s.max_model_len, s.context_margin)

    async def load_first_tokenizer(self) -> None:
        weights = self.initial_weights()
        self.fitter = await self.load_fitter(self.settings.tokenizer or weights.path, weights.path)

    async def run(self) -> None:
        """Start the first engine, retrying with backoff until it is up and warmed.

        An engine that refuses its command line (:class:`EngineConfigError`) is not retried: the
        reason is kept in :attr:`failure`, and requests get 503 with it.
        """
        assert self.fitter is not None, "load_first_tokenizer() first"
        weights = self.initial_weights()
        delay = self.settings.restart_backoff_s or 1.0
        while True:
            engine = self.new_engine(weights)
            deployment = Deployment(engine, weights, weights, self.fitter, engine.served_model)
            try:
                await engine.start()
                await self.warm_up(deployment)
            except EngineConfigError as exc:
                log.error("%s: the engine cannot start with these settings; not retrying: %s", self.role, exc)
                self.failure = str(exc)
                await self.stop_engine(engine)
                return
            except Exception as exc:  # noqa: BLE001 - keep trying; /ready says 503 meanwhile
                log.error("%s: the engine did not start: %s; retrying in %.0fs", self.role, exc, delay)
                await self.stop_engine(engine)
                await asyncio.sleep(delay)
                delay = min(delay * 2, START_RETRY_MAX_S)
                continue
            self.switch(deployment)
            log.info("%s: serving %s version %s on the %s engine", self.role, weights.name, weights.version, engine.kind)
            return

    async def close(self) -> None:
        self._not_paused.set()
        await asyncio.gather(*(self.stop_engine(e) for e in list(self._engines)), return_exceptions=True)

    def new_engine(self, weights: WeightsRef) -> Engine:
        engine = self.factory(weights)
        self._engines.add(engine)

        def state_changed(state: EngineState) -> None:
            if self.current is not None and engine is self.current.engine:
                self.metrics.set_engine_state(state.value)

        engine.add_state_listener(state_changed)
        engine.add_restart_listener(lambda: self.metrics.engine_restarts.labels(self.role).inc())
        return engine

    async def stop_engine(self, engine: Engine) -> None:
        self._engines.discard(engine)
        await engine.stop()

    # ------------------------------------------------------------- serving
    @property
    def paused(self) -> bool:
        return not self._not_paused.is_set()

    def drain(self) -> None:
        """The process is stopping: :meth:`ready` is False from now on (umi.service.drain)."""
        self.draining = True

    def state(self) -> str:
        if self.draining:
            return "draining"
        if self.current is None:
            return "failed" if self.failure else EngineState.STARTING.value
        if self.paused:
            return "paused"
        return self.current.engine.state.value

    def ready(self) -> bool:
        return self.state() == EngineState.READY.value

    def retry_after_s(self) -> int:
        return self.current.engine.retry_after_s() if self.current else self.settings.retry_after_s

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[Deployment]:
        """Lease the current deployment for one request (waiting while an in-place swap pauses)."""
        if self.paused:
            try:
                await asyncio.wait_for(self._not_paused.wait(), timeout=self.settings.pause_timeout_s)
            except TimeoutError:
                raise EngineUnavailable("the weights are being replaced in place", self.retry_after_s()) from None
        deployment = self.current
        if deployment is None:
            raise EngineUnavailable(self.failure or "the engine is starting", self.retry_after_s())
        deployment.engine.check_ready()
        deployment.enter()
        self.metrics.in_flight.labels(self.role).inc()
        try:
            yield deployment
        finally:
            deployment.leave()
            self.metrics.in_flight.labels(self.role).dec()

    def switch(self, deployment: Deployment) -> None:
        self.current = deployment
        self.metrics.set_weights(deployment.weights.name, deployment.weights.version, deployment.weights.kind)
        self.metrics.set_engine_state(deployment.engine.state.value)

    @contextmanager
    def pause(self) -> Iterator[None]:
        """New requests wait in :meth:`serving` (up to ``pause_timeout_s``) while inside."""
        self._not_paused.clear()
        try:
            yield
        finally:
            self._not_paused.set()

    # --------------------------------------------------------------- swaps
    async def swap(
        self,
        path: str,
        kind: WeightsKind = "full",
        version: str | None = None,
        name: str | None = None,
        strategy: SwapStrategy | None = None,
        engine_url: str | None = None,
        tokenizer: str | None = None,
        drain_timeout_s: float | None = None,
    ) -> SwapReport:
        async with self._exclusive():
            current = self._require_current()
            self._check_request(current, kind, strategy, engine_url)
            try:
                check_weights_path(path, kind)
            except WeightsProblem as exc:
                self.metrics.swaps.labels(self.role, self._requested(kind, strategy), "refused").inc()
                raise HttpError(422, "weights_not_found", str(exc), field="path") from None
            target = weights_ref(path, kind, name, version, engine_url)
            chosen = self._strategy_for(current, target, strategy)
            with swap_span(self.role, target.name, current.weights.version, target.version, chosen):
                report = await self._apply(current, target, chosen, tokenizer, drain_timeout_s)
            self.history.append(current.weights)
            del self.history[:-HISTORY_LIMIT]
            return report

    async def rollback(self, drain_timeout_s: float | None = None, strategy: SwapStrategy | None = None) -> SwapReport:
        """Back to the last weights of the history; ``strategy`` as for :meth:`swap` (full weights only).

        Raises HttpError 409 ``no_previous_weights`` or ``swap_in_progress``, 422 when ``strategy``
        does not suit this engine, 503 while the service starts.
        """
        async with self._exclusive():
            current = self._require_current()
            if not self.history:
                raise HttpError(409, "no_previous_weights", "there are no previous weights to roll back to")
            self._check_request(current, self.history[-1].kind, strategy, None)
            target = self.history.pop()
            chosen = self._strategy_for(current, target, strategy)
            try:
                with swap_span(self.role, target.name, current.weights.version, target.version, chosen):
                    report = await self._apply(current, target, chosen, None, drain_timeout_s)
            except BaseException:
                self.history.append(target)
                raise
            report.rollback = True
            return report

    @asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        if self._lock.locked():
            target = self.progress.target if self.progress else None
            what = f" (to {target.name} {target.version})" if target else ""
            raise HttpError(409, "swap_in_progress", f"another weight swap is in progress{what}; try again when it ends")
        async with self._lock:
            yield

    def _require_current(self) -> Deployment:
        if self.current is None:
            raise HttpError(503, "engine_unavailable", "the service is still starting", headers={"Retry-After": str(self.retry_after_s())})
        return self.current

    def _requested(self, kind: WeightsKind, strategy: SwapStrategy | None) -> StrategyName:
        return "lora" if kind == "lora" else strategy or self.settings.swap_strategy

    def _check_request(self, current: Deployment, kind: WeightsKind, strategy: SwapStrategy | None, engine_url: str | None) -> None:
        engine_kind = self.factory.kind
        if engine_url and engine_kind != "url":
            raise HttpError(422, "invalid_request", f"engine_url is for the url engine; this service runs {engine_kind}", "engine_url")
        STRATEGIES[self._requested(kind, strategy)].check(current.engine)

    def _strategy_for(self, current: Deployment, target: WeightsRef, requested: SwapStrategy | None) -> StrategyName:
        same_base = (target.path, target.version, target.engine_url) == (
            current.base.path, current.base.version, current.base.engine_url
        )
        if target.kind == "full" and same_base and current.engine.state is EngineState.READY:
            return "reuse"
        return self._requested(target.kind, requested)

    async def _apply(
        self,
        current: Deployment,
        target: WeightsRef,
        strategy: StrategyName,
        tokenizer: str | None,
        drain_timeout_s: float | None,
    ) -> SwapReport:
        unit = STRATEGIES[strategy]
        job = SwapJob(current, target, tokenizer, drain_timeout_s or self.settings.drain_timeout_s)
        started = time.perf_counter()
        self.progress = SwapProgress(target=target, strategy=strategy, phase="preparing", started_at=time.time())
        log.info("%s: swapping %s %s -> %s %s (%s)", self.role, current.weights.name, current.weights.version,
                 target.name, target.version, strategy)
        try:
            try:
                switched = await unit.run(self, job)
            except HttpError:
                self.metrics.swaps.labels(self.role, strategy, "refused").inc()
                raise
            new, ready_at, switched_at = switched.new, switched.ready_at_s, switched.switched_at_s
            self.phase("draining")
            drained = await current.drained(job.drain_timeout_s)
            abandoned = current.in_flight
            drained_at = time.perf_counter()
            await unit.release(self, current, new)
        finally:
            self.progress = None
        finished = time.perf_counter()
        self.metrics.swaps.labels(self.role, strategy, "ok").inc()
        self.metrics.switch_seconds.labels(self.role).observe(switched_at - ready_at)
        self.metrics.swap_seconds.labels(self.role, strategy).observe(finished - started)
        report = SwapReport(
            model=new.weights.model_info(),
            previous=current.weights.model_info(),
            weights=new.weights,
            strategy=strategy,
            drained=drained,
            abandoned_requests=abandoned,
            timings=SwapTimings(
                prepare_ms=_ms(ready_at - started),
                ready_to_switch_ms=_ms(switched_at - ready_at),
                drain_ms=_ms(drained_at - switched_at),
                total_ms=_ms(finished - started),
            ),
        )
        self.last_swap = report
        log.info("%s: now serving %s %s (%s, ready->switched %.3f ms)", self.role, target.name, target.version,
                 strategy, report.timings.ready_to_switch_ms)
        return report

    def phase(self, phase: str) -> None:
        if self.progress is not None:
            self.progress = self.progress.model_copy(update={"phase": phase})

    def adapter_name(self, version: str) -> str:
        alias = self.settings.lora_alias or self.role
        return _ADAPTER_NAME.sub("-", f"{alias}-{version}-{next(self._adapter_seq)}")
