"""The chats this process advances, their leases, and the sweeper that resumes abandoned chats.

One background task does two things on a timer:

* renews the leases of the chats running here (one round trip for all of them, every third of
  ``UMI_LEASE_TTL_S``); a chat whose lease another process took is cancelled here at once;
* sweeps (every ``UMI_SWEEP_INTERVAL_S``, with jitter) the ``running`` index for chats whose
  lease expired, takes them over with a new fencing token and resumes each from its last step.
  One chat that cannot be resumed (any exception) is logged and skipped: the others of the
  batch are resumed all the same.

A chat whose loop crashed (an exception other than the store's or the role client's) is
restarted from its last written step at once, under the lease it holds: it never waits for its
lease to expire. Poison chats cannot loop: once a chat's run was interrupted
``UMI_MAX_INTERRUPTIONS`` times (takeovers counted by the store, plus crashes in this process),
it ends ``failed`` with an error of type ``interrupted`` instead of running again, and its tools
are not called again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import uuid

from orchestrator.events import EventHub
from orchestrator.loop import ChatLoop
from orchestrator.metrics import Metrics
from orchestrator.models import ChatDoc, ChatError
from orchestrator.settings import Settings
from orchestrator.state import ChatState
from orchestrator.writer import Detached
from orchestrator.store import ChatStore, StoreError

log = logging.getLogger("umi.orchestrator")


def process_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Supervisor:
    def __init__(self, settings: Settings, store: ChatStore, loop: ChatLoop, hub: EventHub, metrics: Metrics):
        self.settings = settings
        self.store = store
        self.loop = loop
        self.hub = hub
        self.metrics = metrics
        self.owner = loop.owner
        self.tasks: dict[str, asyncio.Task[ChatDoc | None]] = {}
        self.tokens: dict[str, int] = {}
        self.crashes: dict[str, int] = {}
        """chat id -> crashes of its loop in this process since it last ran without crashing."""
        self._restarts: set[asyncio.Task[None]] = set()
        self._background: asyncio.Task[None] | None = None

    def is_local(self, chat_id: str) -> bool:
        return chat_id in self.tasks

    def start(self, state: ChatState, token: int | asyncio.Future[int]) -> asyncio.Task[ChatDoc | None]:
        """Advance the chat in this process. A chat already running here keeps its task, unless
        ``token`` is newer. ``token`` may be a future that the creator resolves."""
        existing = self.tasks.get(state.chat_id)
        newer = isinstance(token, int) and token > self.tokens.get(state.chat_id, 0)
        if existing is not None and not existing.done() and not newer:
            return existing
        # With a newer token (tool outputs came in while the previous run was still finishing),
        # the new run takes over; the old one can no longer write.
        if isinstance(token, int):
            self.tokens[state.chat_id] = token
        else:
            token.add_done_callback(lambda f: self._token_known(state.chat_id, f))
        task = asyncio.get_running_loop().create_task(self._run(state, token), name=f"chat:{state.chat_id}")
        self.tasks[state.chat_id] = task
        self.metrics.chats_running.inc()
        return task

    def _token_known(self, chat_id: str, future: asyncio.Future[int]) -> None:
        if chat_id in self.tasks and not future.cancelled() and future.exception() is None:
            self.tokens[chat_id] = future.result()

    async def _run(self, state: ChatState, token: int | asyncio.Future[int]) -> ChatDoc | None:
        crashed = False
        try:
            return await self.loop.run(state, token)
        except Detached:
            return None
        except asyncio.CancelledError:
            return None
        except Exception:
            log.exception("chat loop crashed; restarting it from its last written step")
            crashed = True
            return None
        finally:
            self.metrics.chats_running.dec()
            held = self.tokens.get(state.chat_id)
            if self.tasks.get(state.chat_id) is asyncio.current_task():
                del self.tasks[state.chat_id]
                self.tokens.pop(state.chat_id, None)
                self.hub.publish(state.chat_id, "detached")
                if crashed and held is not None:
                    self.crashes[state.chat_id] = self.crashes.get(state.chat_id, 0) + 1
                    restart = asyncio.get_running_loop().create_task(self.resume(state.chat_id, held, claimed=False))
                    self._restarts.add(restart)
                    restart.add_done_callback(self._restarts.discard)
                else:
                    self.crashes.pop(state.chat_id, None)

    def cancel(self, chat_id: str) -> None:
        task = self.tasks.get(chat_id)
        if task is not None:
            task.cancel()

    async def resume(self, chat_id: str, token: int, claimed: bool = True) -> None:
        """Advance a running chat from its last written step under ``token`` (``claimed``: taken
        over by a sweep; else restarted after its loop crashed here), or end it ``failed`` once
        its run was interrupted ``max_interruptions`` times."""
        try:
            chat = await self.store.load(chat_id)
            if chat is None or chat.status != "running":
                self.crashes.pop(chat_id, None)
                return
            state = ChatState.from_stored(chat)
            interruptions = chat.interruptions + self.crashes.get(chat_id, 0)
            if interruptions >= self.settings.max_interruptions:
                self.crashes.pop(chat_id, None)
                log.warning("chat interrupted %d times: it ends failed", interruptions, extra={"chat_id": chat_id})
                error = ChatError(
                    type="interrupted",
                    message=f"the chat's run was interrupted {interruptions} times (a crash, a restart or a stalled "
                    f"process; the limit is UMI_MAX_INTERRUPTIONS={self.settings.max_interruptions}); it was stopped "
                    f"at step {chat.next_index} so that it cannot loop, and its tools are not called again",
                )  # fmt: skip
                await self.loop.fail(state, token, error)
                return
        except (StoreError, Detached) as exc:
            log.warning("could not resume chat: %s", exc, extra={"chat_id": chat_id})
            return
        except Exception:  # one bad chat never stops the others of a sweep
            log.exception("could not resume chat", extra={"chat_id": chat_id})
            return
        if claimed:
            self.metrics.chats_resumed.inc()
        log.info("resuming chat at step %d", chat.next_index, extra={"chat_id": chat_id, "step": chat.next_index})
        state.resumed = (
            "lease expired: the process running the chat stopped or lost Redis" if claimed
            else "the chat's loop crashed in this process: restarted from its last written step"
        )  # fmt: skip
        self.start(state, token)

    # ------------------------------------------------------------ background

    def start_background(self) -> None:
        self._background = asyncio.get_running_loop().create_task(self._tick_forever(), name="umi-supervisor")

    async def stop(self) -> None:
        """Stop the timer and the local chats; their leases expire and another process resumes them."""
        if self._background is not None:
            self._background.cancel()
            await asyncio.gather(self._background, return_exceptions=True)
        tasks = [*self._restarts, *self.tasks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _tick_forever(self) -> None:
        renew_every = self.settings.lease_ttl_s / 3
        next_sweep = 0.0
        clock = asyncio.get_running_loop().time
        while True:
            try:
                await self.renew()
                if clock() >= next_sweep:
                    await self.sweep()
                    next_sweep = clock() + self.settings.sweep_interval_s * random.uniform(0.8, 1.2)
            except StoreError as exc:
                log.warning("supervisor tick failed: %s", exc)
            except Exception:
                log.exception("supervisor tick crashed")
            await asyncio.sleep(min(renew_every, max(0.01, next_sweep - clock())))

    async def renew(self) -> None:
        leases = dict(self.tokens)
        for chat_id in await self.store.renew(self.owner, leases):
            if self.tokens.get(chat_id) == leases[chat_id]:
                log.warning("lease lost to another process", extra={"chat_id": chat_id})
                self.metrics.leases_lost.inc()
                self.cancel(chat_id)

    async def sweep(self) -> int:
        """Take over running chats whose lease expired; returns how many."""
        claimed = await self.store.claim_expired(self.owner, self.settings.sweep_batch)
        for chat_id, token in claimed:
            await self.resume(chat_id, token)  # logs and skips a chat that cannot be resumed
        return len(claimed)
