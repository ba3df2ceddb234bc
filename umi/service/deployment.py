"""A deployment: the engine, the weights and the tokenizer that serve requests together.

Requests lease the deployment that is current when they start and keep it to the end, so a swap
can switch new requests to new weights while in-flight ones finish on the old (the drain).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from umi.engines import Engine
from umi.service.prompt_fit import PromptFitter
from umi.service.weights import WeightsRef


@dataclass(eq=False)
class Deployment:
    engine: Engine
    weights: WeightsRef  # what responses report
    base: WeightsRef  # the full weights the engine has loaded (== weights unless a LoRA adapter serves)
    fitter: PromptFitter
    served_model: str  # the `model` field of the engine requests: the base name or an adapter name
    adapter: str | None = None  # the LoRA adapter this deployment added to the engine
    in_flight: int = 0
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._idle.set()

    def enter(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    async def drained(self, timeout_s: float) -> bool:
        """Wait until no request uses this deployment; False when ``timeout_s`` passed first."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout=timeout_s)
        return self.in_flight == 0
