"""blue_green: full weights on a second engine.

Start a second engine on the new weights, gate it on /health and a warm-up generation, switch
new requests to it atomically, let in-flight requests finish on the old one (the manager's drain,
with a timeout), stop the old engine. Any engine kind can do it; it needs room for two copies of
the model while it runs. A new engine that does not start or fails the warm-up is stopped again.
"""

from __future__ import annotations

from umi.engines import EngineStartError
from umi.service.deployment import Deployment
from umi.http_errors import HttpError
from umi.service.strategies.base import PrepareThenSwitch, SwapHost, SwapJob, target_fitter, warm


class BlueGreen(PrepareThenSwitch):
    name = "blue_green"

    async def prepare(self, host: SwapHost, job: SwapJob) -> Deployment:
        target = job.target
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
