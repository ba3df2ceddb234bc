"""reuse: the target is what the engine already holds (rolling back from an adapter to its base,
or the same base weights under another name or version): warm up and switch, no new engine.

The manager picks it for any swap whose target has the current base's path, version and engine
URL while the engine is ready; the old adapter, if any, is unloaded after the drain.
"""

from __future__ import annotations

from umi.service.deployment import Deployment
from umi.service.strategies.base import PrepareThenSwitch, SwapHost, SwapJob, target_fitter, warm


class Reuse(PrepareThenSwitch):
    name = "reuse"

    async def prepare(self, host: SwapHost, job: SwapJob) -> Deployment:
        fitter = await target_fitter(host, job)
        engine = job.current.engine
        new = Deployment(engine, job.target, job.current.base, fitter, engine.served_model)
        await warm(host, new)
        return new
