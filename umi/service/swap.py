"""Weights: the serving deployment, and replacing it while traffic flows.

Strategies (one swap at a time; a second one gets 409):

blue_green  full weights: start a second engine on the new weights, gate it on /health and a
            warm-up generation, switch new requests to it atomically, let in-flight requests
            finish on the old one (drain, with a timeout), stop the old engine.
in_place    full weights on one vLLM engine (no room for two copies): pause new requests (they
            queue, they do not fail), drain, sleep/reload/wake the engine on the new weights,
            warm up, switch, resume. On failure the old weights are reloaded.
lora        a LoRA adapter on vLLM: load it under a new versioned name, warm it up, switch the
            role's alias (the adapter name requests use), drain, unload the old adapter.
reuse       the target is what the engine already holds (rolling back from an adapter to its
            base): warm up and switch, no new engine.

Anything that fails before the switch refuses the swap: the old weights keep serving and
nothing in flight is touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Literal

from pydantic import BaseModel

from umi.engines import Engine, EngineRequestError, EngineStartError, EngineState, EngineUnavailable, VllmEngine
from umi.roleapi import ModelInfo
from umi.service.deployment import Deployment
from umi.service.engine_factory import EngineFactory
from umi.service.errors import ServiceError
from umi.service.metrics import ServiceMetrics
from umi.service.prompt_fit import PromptFitter
from umi.service.settings import ServiceSettings, SwapStrategy
from umi.service.weights import WeightsKind, WeightsProblem, WeightsRef, check_weights_path, weights_ref

log = logging.getLogger("umi.service")

StrategyName = Literal["blue_green", "in_place", "lora", "reuse"]
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
    """Owns the current deployment, the engines, the swap lock and the in-place pause gate."""

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
        """Start the first engine, retrying with backoff until it is up and warmed."""
        assert self.fitter is not None, "load_first_tokenizer() first"
        weights = self.initial_weights()
        delay = self.settings.restart_backoff_s or 1.0
        while True:
            engine = self._new_engine(weights)
            deployment = Deployment(engine, weights, weights, self.fitter, engine.served_model)
            try:
                await engine.start()
                await self.warm_up(deployment)
            except Exception as exc:  # noqa: BLE001 - keep trying; /ready says 503 meanwhile
                log.error("%s: the engine did not start: %s; retrying in %.0fs", self.role, exc, delay)
                await self._stop_engine(engine)
                await asyncio.sleep(delay)
                delay = min(delay * 2, START_RETRY_MAX_S)
                continue
            self._switch(deployment)
            log.info("%s: serving %s version %s on the %s engine", self.role, weights.name, weights.version, engine.kind)
            return

    async def close(self) -> None:
        self._not_paused.set()
        await asyncio.gather(*(self._stop_engine(e) for e in list(self._engines)), return_exceptions=True)

    def _new_engine(self, weights: WeightsRef) -> Engine:
        engine = self.factory(weights)
        self._engines.add(engine)

        def state_changed(state: EngineState) -> None:
            if self.current is not None and engine is self.current.engine:
                self.metrics.set_engine_state(state.value)

        engine.add_state_listener(state_changed)
        engine.add_restart_listener(lambda: self.metrics.engine_restarts.labels(self.role).inc())
        return engine

    async def _stop_engine(self, engine: Engine) -> None:
        self._engines.discard(engine)
        await engine.stop()

    # ------------------------------------------------------------- serving
    @property
    def paused(self) -> bool:
        return not self._not_paused.is_set()

    def state(self) -> str:
        if self.current is None:
            return EngineState.STARTING.value
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
            raise EngineUnavailable("the engine is starting", self.retry_after_s())
        deployment.engine.check_ready()
        deployment.enter()
        self.metrics.in_flight.labels(self.role).inc()
        try:
            yield deployment
        finally:
            deployment.leave()
            self.metrics.in_flight.labels(self.role).dec()

    def _switch(self, deployment: Deployment) -> None:
        self.current = deployment
        self.metrics.set_weights(deployment.weights.name, deployment.weights.version, deployment.weights.kind)
        self.metrics.set_engine_state(deployment.engine.state.value)

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
            self._check_request(kind, strategy, engine_url)
            try:
                check_weights_path(path, kind)
            except WeightsProblem as exc:
                requested = "lora" if kind == "lora" else strategy or self.settings.swap_strategy
                self.metrics.swaps.labels(self.role, requested, "refused").inc()
                raise ServiceError(422, "weights_not_found", str(exc), field="path") from None
            target = weights_ref(path, kind, name, version, engine_url)
            report = await self._apply(current, target, self._strategy_for(current, target, strategy), tokenizer, drain_timeout_s)
            self.history.append(current.weights)
            del self.history[:-HISTORY_LIMIT]
            return report

    async def rollback(self, drain_timeout_s: float | None = None) -> SwapReport:
        async with self._exclusive():
            current = self._require_current()
            if not self.history:
                raise ServiceError(409, "no_previous_weights", "there are no previous weights to roll back to")
            target = self.history.pop()
            try:
                report = await self._apply(current, target, self._strategy_for(current, target, None), None, drain_timeout_s)
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
            raise ServiceError(409, "swap_in_progress", f"another weight swap is in progress{what}; try again when it ends")
        async with self._lock:
            yield

    def _require_current(self) -> Deployment:
        if self.current is None:
            raise ServiceError(503, "engine_unavailable", "the service is still starting", headers={"Retry-After": str(self.retry_after_s())})
        return self.current

    def _check_request(self, kind: WeightsKind, strategy: SwapStrategy | None, engine_url: str | None) -> None:
        engine_kind = self.factory.kind
        if engine_url and engine_kind != "url":
            raise ServiceError(422, "invalid_request", f"engine_url is for the url engine; this service runs {engine_kind}", "engine_url")
        if kind == "lora" and not self._vllm_with("supports_lora"):
            raise ServiceError(422, "lora_unsupported", "LoRA swaps need the vllm engine with UMI_ENABLE_LORA=true", "kind")
        if kind == "full" and (strategy or self.settings.swap_strategy) == "in_place" and not self._vllm_with("supports_in_place"):
            raise ServiceError(
                422, "in_place_unsupported", "in-place swaps need the vllm engine with UMI_ENABLE_SLEEP_MODE=true", "strategy"
            )

    def _vllm_with(self, capability: str) -> bool:
        engine = self.current.engine if self.current else None
        return isinstance(engine, VllmEngine) and bool(getattr(engine, capability))

    def _strategy_for(self, current: Deployment, target: WeightsRef, requested: SwapStrategy | None) -> StrategyName:
        if target.kind == "lora":
            return "lora"
        same_base = (target.path, target.version, target.engine_url) == (
            current.base.path, current.base.version, current.base.engine_url
        )
        if same_base and current.engine.state is EngineState.READY:
            return "reuse"
        return requested or self.settings.swap_strategy

    async def _apply(
        self,
        current: Deployment,
        target: WeightsRef,
        strategy: StrategyName,
        tokenizer: str | None,
        drain_timeout_s: float | None,
    ) -> SwapReport:
        drain_timeout = drain_timeout_s or self.settings.drain_timeout_s
        started = time.perf_counter()
        self.progress = SwapProgress(target=target, strategy=strategy, phase="preparing", started_at=time.time())
        log.info("%s: swapping %s %s -> %s %s (%s)", self.role, current.weights.name, current.weights.version,
                 target.name, target.version, strategy)
        try:
            try:
                if strategy == "in_place":
                    new, ready_at, switched_at = await self._in_place(current, target, tokenizer, drain_timeout)
                else:
                    new = await self._prepare(current, target, strategy, tokenizer)
                    ready_at = time.perf_counter()
                    self._switch(new)
                    switched_at = time.perf_counter()
            except ServiceError:
                self.metrics.swaps.labels(self.role, strategy, "refused").inc()
                raise
            self._phase("draining")
            drained = await current.drained(drain_timeout)
            abandoned = current.in_flight
            drained_at = time.perf_counter()
            await self._release(current, new)
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

    def _phase(self, phase: str) -> None:
        if self.progress is not None:
            self.progress = self.progress.model_copy(update={"phase": phase})

    async def _target_fitter(self, current: Deployment, target: WeightsRef, tokenizer: str | None) -> PromptFitter:
        if target.kind == "lora" and tokenizer is None:
            return current.fitter
        self._phase("loading tokenizer")
        try:
            return await self.load_fitter(tokenizer or target.path, target.path if target.kind == "full" else current.base.path)
        except Exception as exc:  # noqa: BLE001 - any loader failure refuses the swap
            raise ServiceError(
                422, "weights_load_failed", f"the tokenizer of {tokenizer or target.path} does not load: {exc}",
                "tokenizer" if tokenizer else "path",
            ) from None

    async def _warm(self, deployment: Deployment) -> None:
        self._phase("warming up")
        try:
            await self.warm_up(deployment)
        except Exception as exc:  # noqa: BLE001 - whatever fails the warm-up refuses the swap
            raise ServiceError(422, "warmup_failed", f"the warm-up generation on the new weights failed: {exc}") from None

    async def _prepare(self, current: Deployment, target: WeightsRef, strategy: StrategyName, tokenizer: str | None) -> Deployment:
        fitter = await self._target_fitter(current, target, tokenizer)
        if strategy == "reuse":
            engine = current.engine
            new = Deployment(engine, target, current.base, fitter, engine.served_model)
            await self._warm(new)
            return new
        if strategy == "lora":
            return await self._prepare_adapter(current, target, fitter)
        return await self._prepare_engine(target, fitter)

    async def _prepare_engine(self, target: WeightsRef, fitter: PromptFitter) -> Deployment:
        self._phase("starting engine")
        engine = self._new_engine(target)
        new = Deployment(engine, target, target, fitter, engine.served_model)
        try:
            try:
                await engine.start()
            except EngineStartError as exc:
                raise ServiceError(422, "weights_load_failed", f"the new engine did not start on {target.path}: {exc}", "path") from None
            await self._warm(new)
        except BaseException:
            await self._stop_engine(engine)
            raise
        return new

    def _adapter_name(self, version: str) -> str:
        alias = self.settings.lora_alias or self.role
        return _ADAPTER_NAME.sub("-", f"{alias}-{version}-{next(self._adapter_seq)}")

    async def _prepare_adapter(self, current: Deployment, target: WeightsRef, fitter: PromptFitter) -> Deployment:
        engine = current.engine
        assert isinstance(engine, VllmEngine)
        engine.check_ready()
        name = self._adapter_name(target.version)
        self._phase(f"loading adapter {name}")
        try:
            await engine.load_lora(name, target.path)
        except EngineRequestError as exc:
            raise ServiceError(422, "weights_load_failed", f"the adapter {target.path} does not load: {exc}", "path") from None
        new = Deployment(engine, target, current.base, fitter, name, adapter=name)
        try:
            await self._warm(new)
        except BaseException:
            with contextlib.suppress(Exception):
                await engine.unload_lora(name)
            raise
        return new

    async def _in_place(
        self, current: Deployment, target: WeightsRef, tokenizer: str | None, drain_timeout: float
    ) -> tuple[Deployment, float, float]:
        engine = current.engine
        assert isinstance(engine, VllmEngine)
        engine.check_ready()
        fitter = await self._target_fitter(current, target, tokenizer)
        self._phase("pausing")
        self._not_paused.clear()  # new requests queue from here
        try:
            if not await current.drained(drain_timeout):
                raise ServiceError(
                    409, "drain_timeout",
                    f"{current.in_flight} requests were still running after {drain_timeout:.0f}s; the weights were not replaced",
                )
            self._phase("reloading weights")
            new = Deployment(engine, target, target, fitter, engine.served_model)
            try:
                await engine.reload_weights(target.path)
                await self._warm(new)
            except (EngineRequestError, EngineUnavailable, ServiceError) as exc:
                await self._restore_in_place(engine, current)
                if isinstance(exc, ServiceError):
                    raise
                raise ServiceError(422, "weights_load_failed", f"the engine did not reload {target.path}: {exc}", "path") from None
            ready_at = time.perf_counter()
            self._switch(new)
            return new, ready_at, time.perf_counter()
        finally:
            self._not_paused.set()

    async def _restore_in_place(self, engine: VllmEngine, previous: Deployment) -> None:
        self._phase("restoring the old weights")
        try:
            await engine.reload_weights(previous.base.path)
            await self.warm_up(previous)
        except Exception as exc:  # noqa: BLE001 - the last resort is a restart on the old weights
            log.error("%s: restoring %s in place failed (%s); restarting the engine", self.role, previous.base.path, exc)
            engine.model_path = previous.base.path
            if engine.process is not None:
                await engine.process.stop(engine.options.stop_grace_s)  # the supervisor restarts it

    async def _release(self, old: Deployment, new: Deployment) -> None:
        if old.engine is not new.engine:
            self._phase("stopping the old engine")
            await self._stop_engine(old.engine)
        elif old.adapter and old.adapter != new.adapter:
            self._phase(f"unloading adapter {old.adapter}")
            assert isinstance(old.engine, VllmEngine)
            try:
                await old.engine.unload_lora(old.adapter)
            except (EngineRequestError, EngineUnavailable) as exc:
                log.warning("%s: unloading adapter %s failed: %s", self.role, old.adapter, exc)
