"""The interface of a swap strategy, what it may ask of the weights manager, and the steps the
strategies share (loading the new tokenizer, the warm-up gate, unloading an old adapter).

A strategy makes the target weights serve (:meth:`Strategy.run`), then, after the manager has
drained the old deployment, frees what only the old weights used (:meth:`Strategy.release`).
Whatever fails in ``run`` raises :class:`HttpError` (the swap is refused) after the strategy has
undone its own work: the old weights keep serving and nothing in flight is touched.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol

from umi.engines import Engine, EngineRequestError, EngineUnavailable, LoraAdapters
from umi.service.deployment import Deployment
from umi.http_errors import HttpError
from umi.service.prompt_fit import PromptFitter
from umi.service.weights import WeightsRef

log = logging.getLogger("umi.service")

StrategyName = Literal["blue_green", "in_place", "lora", "reuse"]


class SwapHost(Protocol):
    """What a strategy may ask of the weights manager that runs it."""

    role: str

    def phase(self, phase: str) -> None:
        """Show ``phase`` as the swap's progress (``GET /admin/weights``)."""

    async def load_fitter(self, tokenizer_path: str, model_path: str) -> PromptFitter:
        """The tokenizer of ``tokenizer_path`` for a model at ``model_path``; raises what the loader raises."""

    def warm_up(self, deployment: Deployment) -> Awaitable[None]:
        """One short generation on ``deployment``; raises when it fails."""

    def new_engine(self, weights: WeightsRef) -> Engine:
        """A configured engine for ``weights``, not started; the host watches it until stopped."""

    async def stop_engine(self, engine: Engine) -> None: ...

    def switch(self, deployment: Deployment) -> None:
        """From now on new requests lease ``deployment`` (one assignment: atomic)."""

    def pause(self) -> AbstractContextManager[None]:
        """Inside this block new requests queue (up to UMI_PAUSE_TIMEOUT_S); they do not fail."""

    def adapter_name(self, version: str) -> str:
        """A LoRA adapter name for ``version`` that no adapter had before."""


@dataclass(frozen=True)
class SwapJob:
    current: Deployment  # serving now
    target: WeightsRef
    tokenizer: str | None  # where the new tokenizer loads from (None: the target, or the current one for an adapter)
    drain_timeout_s: float


@dataclass(frozen=True)
class Switched:
    new: Deployment  # serving now
    ready_at_s: float  # time.perf_counter() when the new weights were loaded and warmed up
    switched_at_s: float  # time.perf_counter() when new requests went to them


class Strategy(ABC):
    """One way of replacing the weights; stateless (the host holds the state)."""

    name: ClassVar[StrategyName]

    def check(self, engine: Engine) -> None:
        """Refuse at once (:class:`HttpError` 422 naming the capability) what ``engine`` cannot do."""

    @abstractmethod
    async def run(self, host: SwapHost, job: SwapJob) -> Switched:
        """Make ``job.target`` serve, or raise :class:`HttpError` with the old weights serving."""

    async def release(self, host: SwapHost, old: Deployment, new: Deployment) -> None:
        """After the drain: free what only ``old`` used (here: its LoRA adapter, on the same engine)."""
        if old.adapter is None or old.adapter == new.adapter:
            return
        host.phase(f"unloading adapter {old.adapter}")
        if not isinstance(old.engine, LoraAdapters):
            return
        try:
            await old.engine.unload_lora(old.adapter)
        except (EngineRequestError, EngineUnavailable) as exc:
            log.warning("%s: unloading adapter %s failed: %s", host.role, old.adapter, exc)


class PrepareThenSwitch(Strategy):
    """A strategy that readies the new weights beside the old ones, then switches."""

    async def run(self, host: SwapHost, job: SwapJob) -> Switched:
        new = await self.prepare(host, job)
        ready_at_s = time.perf_counter()
        host.switch(new)
        return Switched(new, ready_at_s, time.perf_counter())

    @abstractmethod
    async def prepare(self, host: SwapHost, job: SwapJob) -> Deployment:
        """The new deployment, loaded and warmed up; on failure undo, then raise :class:`HttpError`."""


async def target_fitter(host: SwapHost, job: SwapJob) -> PromptFitter:
    """The tokenizer of the new weights (an adapter keeps the current one unless ``job.tokenizer``).

    Raises :class:`HttpError` 422 ``weights_load_failed`` on ``tokenizer`` or ``path``.
    """
    current, target, tokenizer = job.current, job.target, job.tokenizer
    if target.kind == "lora" and tokenizer is None:
        return current.fitter
    host.phase("loading tokenizer")
    try:
        return await host.load_fitter(tokenizer or target.path, target.path if target.kind == "full" else current.base.path)
    except Exception as exc:  # noqa: BLE001 - any loader failure refuses the swap
        raise HttpError(
            422, "weights_load_failed", f"the tokenizer of {tokenizer or target.path} does not load: {exc}",
            "tokenizer" if tokenizer else "path",
        ) from None


async def warm(host: SwapHost, deployment: Deployment) -> None:
    """The gate before a switch. Raises :class:`HttpError` 422 ``warmup_failed``."""
    host.phase("warming up")
    try:
        await host.warm_up(deployment)
    except Exception as exc:  # noqa: BLE001 - whatever fails the warm-up refuses the swap
        raise HttpError(422, "warmup_failed", f"the warm-up generation on the new weights failed: {exc}") from None
