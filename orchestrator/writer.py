"""Writes one chat's steps to the store under its fencing token, in order.

Each write is one atomic ``ChatStore.append``: the step(s) and the ``ChatUpdate`` that goes with
them (a give-up planner turn and ``gave_up``; a caller turn and ``requires_action`` for a client
tool; a summary and ``completed``). While the store is unavailable a write is retried with
backoff for up to ``write_retry_s``, under one ``write_id`` so that a retry after a lost reply is
not applied twice; after that, or when the store refuses the write (the lease was taken, the chat
was deleted or raced), the chat's run stops with ``Detached``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from orchestrator.events import EventHub
from orchestrator.metrics import Metrics
from orchestrator.models import SETTLED, Step
from orchestrator.state import ChatState
from orchestrator.store import ChatStore, ChatUpdate, Lease, StoreError, StoreUnavailable

log = logging.getLogger("umi.orchestrator")


class Detached(Exception):
    """This process stops advancing the chat (lease taken, chat deleted, store gone too long)."""


class StepWriter:
    """Writes one chat's steps under a fencing token, in order, retrying while the store is unavailable.

    ``behind=True`` takes the write off the critical path: the steps join the chat's state at
    once (so the next role request can go out) and the write completes in the background. The
    next write waits for it first, so writes stay in order and a failed one stops the chat
    before anything else is written or executed. Writes that must be durable before what
    follows (a caller step before its tool runs, a status the client is answered with) are
    awaited.

    ``token`` may be a future while the chat is being created: the first write waits for it.
    ``single_model``: model versions are recorded under ``backbone`` instead of each step's role.
    """

    def __init__(
        self, state: ChatState, store: ChatStore, lease_owner: str, token: int | asyncio.Future[int], *,
        hub: EventHub, metrics: Metrics, write_retry_s: float, single_model: bool = False,
    ):  # fmt: skip
        self.state = state
        self.store = store
        self.lease_owner = lease_owner
        self.token = token
        self.hub = hub
        self.metrics = metrics
        self.write_retry_s = write_retry_s
        self.single_model = single_model
        self.pending: asyncio.Task[None] | None = None
        self.run_task = asyncio.current_task()

    async def flush(self) -> None:
        """Wait for the write in the background, if any (raises Detached if it failed)."""
        pending, self.pending = self.pending, None
        if pending is not None:
            await pending

    def cancel(self) -> None:
        if self.pending is not None:
            self.pending.cancel()

    async def write(self, steps: list[Step], update: ChatUpdate | None = None, *, behind: bool = False) -> None:
        """Add ``steps`` to the chat's state and write them with ``update`` (a status change is
        never written behind: the caller is answered with it)."""
        await self.flush()
        update = update or ChatUpdate()
        for step in steps:
            if step.model_version is not None:
                update.models["backbone" if self.single_model else step.role] = step.model_version
        expected_index = self.state.next_index
        self.state.add(steps)
        store = self._store(expected_index, steps, update)
        if behind and update.status is None:
            self.pending = asyncio.get_running_loop().create_task(store)
            self.pending.add_done_callback(self._stop_run_if_failed)
        else:
            await store

    def _stop_run_if_failed(self, task: asyncio.Task[None]) -> None:
        """A refused background write stops the chat's run at once, not after its next role call."""
        if not task.cancelled() and task.exception() is not None and self.run_task is not None:
            log.warning("background step write failed: %s", task.exception())
            self.run_task.cancel()

    async def _store(self, expected_index: int, steps: list[Step], update: ChatUpdate) -> None:
        state = self.state
        if not isinstance(self.token, int):
            self.token = await self.token
        lease = Lease(self.lease_owner, self.token)
        write_id = uuid.uuid4().hex
        deadline = time.monotonic() + self.write_retry_s
        delay = 0.05
        while True:
            try:
                _, at = await self.store.append(state.chat_id, lease, expected_index, steps, update, write_id=write_id)
                break
            except StoreUnavailable as exc:
                if time.monotonic() + delay > deadline:
                    raise Detached(f"the chat store was unavailable for {self.write_retry_s:g} s: {exc}") from exc
                log.warning("step write failed, retrying: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            except StoreError as exc:  # fenced, deleted, or raced: this process stops here
                raise Detached(f"step write refused: {exc}") from exc
        state.updated_at = at
        for step in steps:
            self.metrics.steps.labels(step.role).inc()
            log.debug("%s step written", step.role, extra={"step": step.index, "latency_ms": round(step.latency_ms, 3)})
            self.hub.publish(state.chat_id, "step", step)
        state.models.update(update.models)
        if update.status is not None:
            state.status = update.status
            if update.status in SETTLED:
                self.metrics.chats.labels(update.status).inc()
                log.info("chat %s", update.status, extra={"status": update.status})
                if self.hub.has_subscribers(state.chat_id):
                    self.hub.publish(state.chat_id, "settled", state.doc())
