"""The chat-store conformance suite: every backend (Redis, in-memory) keeps the rules of
``orchestrator.store.base``: atomic fenced writes at an expected index, idempotent retries,
leases taken over only when expired, settling, resuming with tool outputs, TTL, deletion, reads,
the trace context kept with a chat and the listing index."""

from __future__ import annotations

import asyncio
import time

import pytest

from orchestrator.models import ChatError, PendingToolCall
from orchestrator.store import (
    LIST_LIMIT_MAX,
    ChatGone,
    ChatStore,
    ChatUpdate,
    IndexConflict,
    Lease,
    LeaseLost,
    NotInStatus,
)
from tests.orchestrator.store.conftest import Backend, new_chat, step


def test_a_new_chat_is_running_leased_with_token_1_and_reads_back_typed(run_with_store) -> None:
    async def body(store: ChatStore) -> None:
        created = await store.create("c1", "proc-a", new_chat(query="hello", owner="o1", fingerprint="f1"))
        assert created.created and created.token == 1
        assert created.at == pytest.approx(time.time(), abs=60)
        chat = await store.load("c1")
        assert chat is not None
        assert (chat.status, chat.next_index, chat.owner, chat.lease_owner) == ("running", 0, "o1", "proc-a")
        assert chat.request.query == "hello" and chat.metadata == {"team": "a"}
        assert chat.steps == [] and chat.answer is None and chat.error is None and chat.pending == []
        assert chat.interruptions == 0
        assert chat.to_doc().status == "running" and chat.to_doc().metadata == {"team": "a"}
        assert await store.load("nope") is None

    run_with_store(body)


def test_a_second_create_with_the_same_id_reports_the_first(run_with_store) -> None:
    async def body(store: ChatStore) -> None:
        first = await store.create("c5", "p", new_chat(fingerprint="f1", owner="o"))
        second = await store.create("c5", "q", new_chat(fingerprint="f2", owner="x"))
        assert first.created and not second.created
        assert (second.fingerprint, second.owner) == ("f1", "o")

    run_with_store(body)


def test_a_process_whose_lease_was_taken_cannot_write(run_with_store, backend: Backend) -> None:
    async def body(store: ChatStore) -> None:
        await store.create("c1", "proc-a", new_chat())
        assert await store.claim_expired("proc-b", 10) == []  # a live lease is not taken
        await backend.elapse(0.15)  # the 0.1 s lease lapses
        assert await store.claim_expired("proc-b", 10) == [("c1", 2)]
        with pytest.raises(LeaseLost):
            await store.append("c1", Lease("proc-a", 1), 0, [step(0)])
        assert await store.renew("proc-a", {"c1": 1}) == ["c1"]
        next_index, at = await store.append("c1", Lease("proc-b", 2), 0, [step(0)])
        assert next_index == 1 and at == pytest.approx(time.time(), abs=60)
        chat = await store.load("c1")
        assert chat is not None and [s.index for s in chat.steps] == [0] and chat.lease_owner == "proc-b"
        assert chat.interruptions == 1  # each takeover is counted (poison chats end failed)
        await backend.elapse(0.15)
        assert await store.claim_expired("proc-c", 10) == [("c1", 3)]
        again = await store.load("c1")
        assert again is not None and again.interruptions == 2

    run_with_store(body, lease_ttl_s=0.1)


def test_a_renewed_lease_is_not_taken_over_until_it_expires_again(run_with_store, backend: Backend) -> None:
    async def body(store: ChatStore) -> None:
        await store.create("c8", "p", new_chat())
        await backend.elapse(0.6)
        assert await store.renew("p", {"c8": 1}) == []
        await backend.elapse(0.6)  # past the first lease's expiry, within the renewed one
        assert await store.claim_expired("q", 10) == []
        await backend.elapse(0.6)
        assert await store.claim_expired("q", 10) == [("c8", 2)]

    run_with_store(body, lease_ttl_s=1.0)


def test_a_step_index_is_written_once_and_a_retried_write_is_applied_once(run_with_store) -> None:
    async def body(store: ChatStore) -> None:
        await store.create("c2", "p", new_chat())
        lease = Lease("p", 1)
        await store.append("c2", lease, 0, [step(0), step(1, "caller", name="t")], ChatUpdate(tool_calls={1: "started"}))
        with pytest.raises(IndexConflict):
            await store.append("c2", lease, 1, [step(1)])
        # A retried write (same write_id) is recognised as applied, not written twice.
        assert (await store.append("c2", lease, 2, [step(2, "observation")], write_id="w-1"))[0] == 3
        assert (await store.append("c2", lease, 2, [step(2, "observation")], write_id="w-1"))[0] == 3
        chat = await store.load("c2")
        assert chat is not None and [s.index for s in chat.steps] == [0, 1, 2] and chat.next_index == 3
        assert chat.tool_calls == {1: "started"}
        after = await store.load("c2", after=1)
        assert after is not None and [s.index for s in after.steps] == [2]

    run_with_store(body)


def test_an_update_round_trips_every_field(run_with_store) -> None:
    async def body(store: ChatStore) -> None:
        await store.create("c9", "p", new_chat())
        lease = Lease("p", 1)
        pending = [PendingToolCall(tool_call_id="call_1", name="t", arguments={"a": 1})]
        await store.append("c9", lease, 0, [step(0)], ChatUpdate(models={"planner": "v1"}, tool_calls={3: "finished"}))
        await store.append("c9", lease, 1, [], ChatUpdate(models={"caller": "v2"}, tool_calls={3: "lost"}))
        await store.append("c9", lease, 1, [], ChatUpdate(status="requires_action", pending=pending))
        chat = await store.load("c9")
        assert chat is not None
        assert chat.models == {"planner": "v1", "caller": "v2"} and chat.tool_calls == {3: "lost"}
        assert chat.status == "requires_action" and chat.pending == pending and chat.lease_owner is None

        await store.create("c10", "p", new_chat())
        error = ChatError(type="role_service", message="boom", role="planner", status_code=500)
        await store.append("c10", lease, 0, [], ChatUpdate(status="failed", error=error))
        failed = await store.load("c10")
        assert failed is not None and failed.error == error and failed.to_doc().error == error

    run_with_store(body)


def test_a_settled_chat_takes_no_more_steps_and_is_never_claimed(run_with_store, backend: Backend) -> None:
    async def body(store: ChatStore) -> None:
        await store.create("c3", "p", new_chat())
        await store.append("c3", Lease("p", 1), 0, [step(0)], ChatUpdate(status="completed", answer="a"))
        with pytest.raises(NotInStatus) as refused:
            await store.append("c3", Lease("p", 1), 1, [step(1)])
        assert refused.value.status == "completed"
        chat = await store.load("c3")
        assert chat is not None and chat.answer == "a" and chat.to_doc().answer == "a" and chat.lease_owner is None
        await backend.elapse(0.15)
        assert await store.claim_expired("q", 10) == []

    run_with_store(body, lease_ttl_s=0.1)


def test_tool_outputs_resume_a_chat_under_a_new_token(run_with_store) -> None:
    async def body(store: ChatStore) -> None:
        await store.create("c11", "p", new_chat())
        pending = [PendingToolCall(tool_call_id="call_1", name="t", arguments={})]
        with pytest.raises(NotInStatus):  # running: not waiting for outputs
            await store.resume_with_outputs("c11", "q", 0, [step(0, "observation")], write_id="r-0")
        await store.append("c11", Lease("p", 1), 0, [step(0), step(1, "caller", name="t")],
                           ChatUpdate(status="requires_action", pending=pending))  # fmt: skip
        with pytest.raises(IndexConflict):
            await store.resume_with_outputs("c11", "q", 1, [step(1, "observation")], write_id="r-1")
        token = await store.resume_with_outputs("c11", "q", 2, [step(2, "observation")], write_id="r-2")
        assert token == 2
        assert await store.resume_with_outputs("c11", "q", 2, [step(2, "observation")], write_id="r-2") == 2
        chat = await store.load("c11")
        assert chat is not None and chat.status == "running" and chat.pending == [] and chat.next_index == 3
        assert chat.lease_owner == "q"
        with pytest.raises(LeaseLost):
            await store.append("c11", Lease("p", 1), 3, [step(3)])
        assert (await store.append("c11", Lease("q", 2), 3, [step(3)]))[0] == 4

    run_with_store(body)


def test_chats_expire_after_the_ttl(run_with_store, backend: Backend) -> None:
    async def body(store: ChatStore) -> None:
        await store.create("c12", "p", new_chat())
        await store.append("c12", Lease("p", 1), 0, [step(0)])
        await backend.elapse(1.3)
        assert await store.load("c12") is None
        with pytest.raises(ChatGone):
            await store.append("c12", Lease("p", 1), 1, [step(1)])

    run_with_store(body, ttl_s=1)


def test_a_deleted_chat_is_gone_and_cannot_be_written(run_with_store) -> None:
    async def body(store: ChatStore) -> None:
        await store.create("c4", "p", new_chat())
        await store.append("c4", Lease("p", 1), 0, [step(0)])
        assert await store.delete("c4")
        assert not await store.delete("c4")
        assert await store.load("c4") is None
        with pytest.raises(ChatGone):
            await store.append("c4", Lease("p", 1), 1, [step(1)])
        assert await store.load("c4") is None  # the refused write created nothing

    run_with_store(body)


def test_waiting_for_steps_returns_written_ones_at_once_and_wakes_on_a_new_one(run_with_store) -> None:
    async def body(store: ChatStore) -> None:
        await store.create("c13", "p", new_chat())
        await store.append("c13", Lease("p", 1), 0, [step(0)])
        assert [s.index for s in await store.wait_for_steps("c13", -1, 50)] == [0]
        assert await store.wait_for_steps("c13", 0, 50) == []  # nothing after step 0: waits, then none

        async def write_later() -> None:
            await asyncio.sleep(0.1)
            await store.append("c13", Lease("p", 1), 1, [step(1, "caller", name="t")])

        writer = asyncio.create_task(write_later())
        woke = await store.wait_for_steps("c13", 0, 5000)
        await writer
        assert [s.index for s in woke] == [1]

    run_with_store(body)


def test_the_store_answers_a_ping(run_with_store) -> None:
    async def body(store: ChatStore) -> None:
        assert await store.ping() is True

    run_with_store(body)


def test_a_chat_keeps_its_trace_context(run_with_store) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    async def body(store: ChatStore) -> None:
        await store.create("t1", "p", new_chat(trace=traceparent))
        await store.create("t2", "p", new_chat())
        chat, untraced = await store.load("t1"), await store.load("t2")
        assert chat is not None and chat.trace == traceparent
        assert untraced is not None and untraced.trace == ""

    run_with_store(body)


def test_the_listing_shows_each_owners_chats_newest_first_with_their_summary(run_with_store, backend: Backend) -> None:
    async def body(store: ChatStore) -> None:
        for n, owner in enumerate(["alice", "bob", "alice"]):
            await store.create(f"l{n}", "p", new_chat(query=f"question {n}", owner=owner))
            await backend.elapse(0.01)
        await store.append(
            "l2", Lease("p", 1), 0, [step(0)],
            ChatUpdate(status="failed", error=ChatError(type="role_service", message="down"), models={"planner": "v7"}),
        )  # fmt: skip
        alice = await store.list_chats("alice")
        assert [c.chat_id for c in alice.chats] == ["l2", "l0"] and not alice.more
        latest = alice.chats[0]
        assert (latest.status, latest.query, latest.steps, latest.models) == ("failed", "question 2", 1, {"planner": "v7"})
        assert latest.error_type == "role_service" and latest.updated_at >= latest.created_at > 0
        assert [c.chat_id for c in (await store.list_chats("bob")).chats] == ["l1"]
        assert [c.chat_id for c in (await store.list_chats(None)).chats] == ["l2", "l1", "l0"]
        assert (await store.list_chats("nobody")).chats == []

    run_with_store(body)


def test_the_listing_filters_by_status_and_text_and_pages(run_with_store, backend: Backend) -> None:
    async def body(store: ChatStore) -> None:
        for n in range(5):
            await store.create(f"f{n}", "p", new_chat(query="Weather in Oslo" if n % 2 else "Stock price"))
            await backend.elapse(0.01)
        await store.append("f3", Lease("p", 1), 0, [], ChatUpdate(status="completed", answer="sunny"))
        assert [c.chat_id for c in (await store.list_chats(None, text="oslo")).chats] == ["f3", "f1"]
        assert [c.chat_id for c in (await store.list_chats(None, text="F4")).chats] == ["f4"]  # the chat id too
        assert [c.chat_id for c in (await store.list_chats(None, status="completed")).chats] == ["f3"]
        assert [c.chat_id for c in (await store.list_chats(None, status="running", text="oslo")).chats] == ["f1"]
        first = await store.list_chats(None, limit=2)
        second = await store.list_chats(None, offset=2, limit=2)
        last = await store.list_chats(None, offset=4, limit=2)
        assert [c.chat_id for c in first.chats] == ["f4", "f3"] and first.more
        assert [c.chat_id for c in second.chats] == ["f2", "f1"] and second.more
        assert [c.chat_id for c in last.chats] == ["f0"] and not last.more
        assert len((await store.list_chats(None, limit=LIST_LIMIT_MAX + 50)).chats) == 5

    run_with_store(body)


def test_forgotten_chats_leave_the_listing(run_with_store, backend: Backend) -> None:
    async def body(store: ChatStore) -> None:
        await store.create("gone", "p", new_chat(owner="o"))
        await store.create("deleted", "p", new_chat(owner="o"))
        await store.delete("deleted")
        assert [c.chat_id for c in (await store.list_chats("o")).chats] == ["gone"]
        await backend.elapse(1.2)  # past the 1 s TTL
        await store.create("new", "p", new_chat(owner="o"))
        assert [c.chat_id for c in (await store.list_chats("o")).chats] == ["new"]
        assert [c.chat_id for c in (await store.list_chats(None)).chats] == ["new"]

    run_with_store(body, ttl_s=1)
