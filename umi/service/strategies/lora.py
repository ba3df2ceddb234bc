"""lora: a LoRA adapter on an engine with the :class:`~umi.engines.LoraAdapters` capability
(vLLM with UMI_ENABLE_LORA=true); the engine's base model stays.

Load the adapter under a new versioned name (``<UMI_LORA_ALIAS or role>-<version>-<n>``, never a
name used before), warm it up, switch the role's alias (the adapter name requests use), and after
the manager's drain unload the old adapter. An adapter that loads but fails the warm-up is
unloaded again.
"""

from __future__ import annotations

import contextlib

from umi.engines import Engine, EngineRequestError, LoraAdapters
from umi.service.deployment import Deployment
from umi.http_errors import HttpError
from umi.service.strategies.base import PrepareThenSwitch, SwapHost, SwapJob, target_fitter, warm


def lora_adapters(engine: Engine) -> LoraAdapters:
    """``engine`` as a LoRA loader; raises :class:`HttpError` 422 ``lora_unsupported`` (field ``kind``)."""
    if isinstance(engine, LoraAdapters) and engine.supports_lora:
        return engine
    raise HttpError(422, "lora_unsupported", "LoRA swaps need the vllm engine with UMI_ENABLE_LORA=true", "kind")


class Lora(PrepareThenSwitch):
    name = "lora"

    def check(self, engine: Engine) -> None:
        lora_adapters(engine)

    async def prepare(self, host: SwapHost, job: SwapJob) -> Deployment:
        current, target = job.current, job.target
        adapters = lora_adapters(current.engine)
        fitter = await target_fitter(host, job)
        current.engine.check_ready()
        name = host.adapter_name(target.version)
        host.phase(f"loading adapter {name}")
        try:
            await adapters.load_lora(name, target.path)
        except EngineRequestError as exc:
            raise HttpError(422, "weights_load_failed", f"the adapter {target.path} does not load: {exc}", "path") from None
        new = Deployment(current.engine, target, current.base, fitter, name, adapter=name)
        try:
            await warm(host, new)
        except BaseException:
            with contextlib.suppress(Exception):
                await adapters.unload_lora(name)
            raise
        return new
