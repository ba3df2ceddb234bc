"""in_place: full weights on one engine with the :class:`~umi.engines.InPlaceReload` capability
(vLLM with UMI_ENABLE_SLEEP_MODE=true and LoRA off; no room for two copies).

Pause new requests (they queue, they do not fail), drain the ones in flight (if they do not finish
within the drain timeout: 409 ``drain_timeout``, nothing changed), reload the engine on the new
weights, warm up, switch, resume. If the reload or the warm-up fails, the old weights are reloaded
the same way (and if that fails too, a :class:`~umi.engines.Restartable` engine is restarted on
them) and the swap is refused.
"""

from __future__ import annotations

import logging
import time

from umi.engines import Engine, EngineRequestError, EngineUnavailable, InPlaceReload, Restartable
from umi.service.deployment import Deployment
from umi.http_errors import HttpError
from umi.service.strategies.base import Strategy, SwapHost, SwapJob, Switched, target_fitter, warm

log = logging.getLogger("umi.service")


def in_place_reload(engine: Engine) -> InPlaceReload:
    """``engine`` as an in-place reloader; raises :class:`HttpError` 422 ``in_place_unsupported`` (field ``strategy``)."""
    if isinstance(engine, InPlaceReload) and engine.supports_in_place:
        return engine
    raise HttpError(
        422, "in_place_unsupported",
        "in-place swaps need the vllm engine with UMI_ENABLE_SLEEP_MODE=true and UMI_ENABLE_LORA=false "
        "(vLLM's weight reload fails with LoRA enabled: vLLM #39934)", "strategy",
    )


class InPlace(Strategy):
    name = "in_place"

    def check(self, engine: Engine) -> None:
        in_place_reload(engine)

    async def run(self, host: SwapHost, job: SwapJob) -> Switched:
        current, target = job.current, job.target
        engine = current.engine
        reloader = in_place_reload(engine)
        engine.check_ready()
        fitter = await target_fitter(host, job)
        host.phase("pausing")
        with host.pause():  # new requests queue from here
            if not await current.drained(job.drain_timeout_s):
                raise HttpError(
                    409, "drain_timeout",
                    f"{current.in_flight} requests were still running after {job.drain_timeout_s:.0f}s; the weights were not replaced",
                )
            host.phase("reloading weights")
            new = Deployment(engine, target, target, fitter, engine.served_model)
            try:
                await reloader.reload_weights(target.path)
                await warm(host, new)
            except (EngineRequestError, EngineUnavailable, HttpError) as exc:
                await restore(host, reloader, current)
                if isinstance(exc, HttpError):
                    raise
                raise HttpError(422, "weights_load_failed", f"the engine did not reload {target.path}: {exc}", "path") from None
            ready_at_s = time.perf_counter()
            host.switch(new)
            return Switched(new, ready_at_s, time.perf_counter())


async def restore(host: SwapHost, reloader: InPlaceReload, previous: Deployment) -> None:
    """Reload ``previous``'s weights in place; when that fails, restart the engine on them."""
    host.phase("restoring the old weights")
    try:
        await reloader.reload_weights(previous.base.path)
        await host.warm_up(previous)
    except Exception as exc:  # noqa: BLE001 - the last resort is a restart on the old weights
        engine = previous.engine
        if not isinstance(engine, Restartable):
            log.error("%s: restoring %s in place failed (%s); the engine cannot be restarted", host.role, previous.base.path, exc)
            return
        log.error("%s: restoring %s in place failed (%s); restarting the engine", host.role, previous.base.path, exc)
        await engine.restart_on(previous.base.path)  # the supervisor starts it again
