"""The pure rules of the agent loop (orchestrator.state): every transition of ``next_action``,
the resume points, single-model steps, and the history the role services read."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.models import ChatRequest, Step
from orchestrator.state import ChatState, give_up_answer, history_turn, next_action, observation_step, tool_call_id
from orchestrator.store import StoredChat


def s(index: int, role: str, **fields: Any) -> Step:
    return Step(index=index, role=role, started_at=0, latency_ms=0, **fields)


def planner(index: int, next: str = "caller", thought: str = "think") -> Step:
    return s(index, "planner", thought=thought, next=next, turn=f"{thought}\n Next: {next}.")


def caller(index: int, name: str = "t") -> Step:
    return s(index, "caller", name=name, arguments={"q": "x"}, tool_call_id=f"call_{index}",
             turn=f'Action: {name}\nAction Input: {{"q": "x"}}')  # fmt: skip


def observation(index: int, content: str = "ok") -> Step:
    return s(index, "observation", name="t", content=content, tool_call_id=f"call_{index - 1}")


def state(*steps: Step, max_steps: int = 10) -> ChatState:
    return ChatState(chat_id="c", request=ChatRequest(query="q?", max_steps=max_steps), steps=list(steps))


@pytest.mark.parametrize(
    ("steps", "action"),
    [
        ((), "plan"),
        ((planner(0, "caller"),), "call"),
        ((planner(0, "conclusion"),), "summarize"),
        ((planner(0), caller(1)), "finish_call"),  # a server call started and no observation: resume it
        ((planner(0), caller(1), observation(2)), "plan"),
        ((planner(0), caller(1), observation(2), planner(3, "conclusion")), "summarize"),
    ],
)
def test_the_next_action_follows_the_last_written_step(steps: tuple[Step, ...], action: str) -> None:
    assert next_action(state(*steps)) == action


def test_max_steps_planner_turns_end_the_chat_after_the_last_observation() -> None:
    two_rounds = (planner(0), caller(1), observation(2), planner(3), caller(4), observation(5))
    assert next_action(state(*two_rounds, max_steps=2)) == "max_steps"
    assert next_action(state(*two_rounds, max_steps=3)) == "plan"
    assert next_action(state(*two_rounds[:3], max_steps=1)) == "max_steps"


def test_a_running_chat_ending_with_a_summary_cannot_go_on() -> None:
    with pytest.raises(ValueError, match="last step is a summarizer step"):
        next_action(state(planner(0, "conclusion"), s(1, "summarizer", answer="a")))


def test_single_model_steps_resume_like_multi_model_ones() -> None:
    # The backbone's call is merged into the planner turn; its caller step has no turn of its own.
    merged = s(0, "planner", thought="t", next="caller", turn='t\nAction: f\nAction Input: {}')
    call = s(1, "caller", name="f", arguments={}, tool_call_id="call_1")
    assert next_action(state(merged)) == "call"
    assert next_action(state(merged, call)) == "finish_call"
    assert next_action(state(merged, call, observation(2))) == "plan"
    assert history_turn(call) is None
    assert [t["role"] for t in state(merged, call, observation(2)).history] == ["user", "planner", "observation"]


def test_the_history_is_the_turns_the_role_models_read() -> None:
    chat = state(planner(0), caller(1), observation(2, "sunny"), planner(3, "conclusion"))
    chat.add([s(4, "summarizer", answer="It is sunny.")])
    assert chat.history == [
        {"role": "user", "content": "q?"},
        {"role": "planner", "content": "think\n Next: caller."},
        {"role": "caller", "content": 'Action: t\nAction Input: {"q": "x"}'},
        {"role": "observation", "content": "sunny"},
        {"role": "planner", "content": "think\n Next: conclusion."},
        {"role": "conclusion", "content": "It is sunny."},
    ]
    assert chat.next_index == 5 and chat.planner_turns() == 2


def test_a_stored_chat_resumes_with_the_same_state() -> None:
    request = ChatRequest(query="q?", chat_id="c")
    stored = StoredChat(
        chat_id="c", status="running", next_index=3, owner="", request_json=request.model_dump_json(),
        models={"planner": "v1"}, steps=[planner(0), caller(1), observation(2)], created_at=1.0, updated_at=2.0,
    )  # fmt: skip
    chat = ChatState.from_stored(stored)
    assert chat.request == request and chat.next_index == 3 and chat.models == {"planner": "v1"}
    assert next_action(chat) == "plan" and len(chat.history) == 4


def test_tool_call_ids_are_the_same_in_every_process_and_differ_by_step() -> None:
    assert tool_call_id("c", 1) == tool_call_id("c", 1)
    assert tool_call_id("c", 1) != tool_call_id("c", 4) != tool_call_id("d", 1)
    assert tool_call_id("c", 1).startswith("call_") and len(tool_call_id("c", 1)) == 29


def test_an_observation_answers_its_call_and_a_give_up_answer_is_the_thought_or_none() -> None:
    answer = observation_step(caller(1), "result", index=7)
    assert (answer.index, answer.role, answer.name, answer.tool_call_id) == (7, "observation", "t", "call_1")
    assert observation_step(caller(1), "result").index == 2
    assert give_up_answer("  No tool fits. ") == "No tool fits." and give_up_answer("  ") is None
