"""blue_green: full weights on a second engine.

Start a second engine on the new weights, gate it on /health and a warm-up generation, switch
new requests to it atomically, let in-flight requests finish on the old one (the manager's drain,
with a timeout), stop the old engine. Any engine kind can do it; it needs room for two copies of
the model while it runs: when the engine says a second copy cannot start now
(:meth:`~umi.engines.Engine.second_copy_problem`: vLLM's share of a shared GPU is not free) the swap
is refused up front (422 ``blue_green_unsupported``, field ``strategy``) with the strategies that
work there. A new engine that does not start or fails the warm-up is stopped again.
"""

from __future__ import annotations

from umi.engines import Engine, EngineStartError
from umi.service.deployment import Deployment
from umi.http_errors import HttpError
from umi.service.strategies.base import PrepareThenSwitch, SwapHost, SwapJob, target_fitter, warm


class BlueGreen(PrepareThenSwitch):
    name = "blue_green"

    def check(self, engine: Engine) -> None:
        problem = engine.second_copy_problem()
        if problem is not None:
            raise HttpError(
                422, "blue_green_unsupported",
                f"no room for a second engine: {problem}. Swap with \"strategy\": \"in_place\" "
                "(UMI_ENABLE_SLEEP_MODE=true) or with LoRA adapters (\"kind\": \"lora\", UMI_ENABLE_LORA=true)",
                "strategy",
            )

    async def prepare(self, host: SwapHost, job: SwapJob) -> Deployment:
        target = job.target
        self.check(job.current.engine)  # rollbacks come here without the manager's check
        fitter = await target_fitter(host, job)
        host.phase("starting engine")
        engine = host.new_engine(target)
        new = Deployment(engine, target, target, fitter, engine.served_model)
        try:
            try:
                await engine.start()
            except EngineStartError as exc:
                raise HttpError(422, "weights_load_failed", f"the new engine did not start on {target.path}: {exc}", "path") from None
            await warm(host, new)
        except BaseException:
            await host.stop_engine(engine)
            raise
        return new

    async def release(self, host: SwapHost, old: Deployment, new: Deployment) -> None:
        host.phase("stopping the old engine")
        await host.stop_engine(old.engine)
