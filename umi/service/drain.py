"""The graceful stop of a role service behind a load balancer (Kubernetes, HAProxy).

On SIGTERM, in this order:

1. ``GET /ready`` answers 503 with state ``draining`` (:meth:`WeightsManager.drain`): health
   checks (HAProxy's, a Kubernetes readiness probe) take the replica out of the pool;
2. for ``UMI_DRAIN_DELAY_S`` the service still listens and serves what arrives (requests a
   balancer sent before it noticed), as a Kubernetes preStop sleep lets endpoint removal spread;
3. uvicorn's graceful shutdown: the listener closes, idle keep-alive connections close, in-flight
   requests finish within ``UMI_DRAIN_TIMEOUT_S`` (uvicorn's ``timeout_graceful_shutdown``; later
   ones are cancelled);
4. the app's lifespan ends: the engines stop; the process exits by the signal, as uvicorn does.

SIGINT (Ctrl-C) and a second SIGTERM skip the delay. docs/role-services.md#stopping.
"""

from __future__ import annotations

import logging
import signal
import time
from types import FrameType

import uvicorn

from umi.service.swap import WeightsManager

log = logging.getLogger("umi.service")


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose SIGTERM drains first: see the module's docstring."""

    def __init__(self, config: uvicorn.Config, manager: WeightsManager, delay_s: float) -> None:
        super().__init__(config)
        self.manager = manager
        self.delay_s = delay_s
        self._close_at: float | None = None  # when the delay after a SIGTERM ends (monotonic)
        self._announced = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """The signal handler (main thread): no logging or awaiting here, only flags."""
        self.manager.drain()
        if sig == signal.SIGTERM and self.delay_s > 0 and self._close_at is None and not self.should_exit:
            self._close_at = time.monotonic() + self.delay_s
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        """uvicorn's main loop calls this every 0.1 s: log the drain, end the delay."""
        if self.manager.draining and not self._announced:
            self._announced = True
            log.info("draining: /ready answers 503; closing the listener in %.1f s", self.delay_s if self._close_at else 0.0)
        if self._close_at is not None and not self.should_exit and time.monotonic() >= self._close_at:
            super().handle_exit(signal.SIGTERM, None)
        return await super().on_tick(counter)
