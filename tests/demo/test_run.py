"""The scripted demo's parts that need no running stack: its questions, how a chat prints, how
outcomes are judged, the swap's error count, and the stack's checks before it starts anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from umi.demo import tool_data
from umi.demo.pools import make_pools
from umi.demo.own_words import load_questions
from umi.demo.run import ChatOutcome, DemoResult, OwnWordsOutcome, SwapOutcome, error_responses, outcome_lines, own_words_lines
from umi.demo.show import chat_lines
from umi.demo.stack import DemoModels, Stack, StackConfig, StackError, StackPorts
from umi.demo.tasks import CORPUS_SEED, EXAMPLE_KINDS, NEW_TOOL, OWN_WORDS_IDS, demo_tasks, kind_of
from umi.eval.chats import ExpectedCall, Task


def test_the_questions_are_held_out_and_cover_every_kind() -> None:
    tasks = demo_tasks()
    assert [t.id for t in tasks.examples] == list(EXAMPLE_KINDS)
    give_up = tasks.examples[-1]
    assert give_up.expected_status == "gave_up" and not give_up.expected_calls
    assert all(t.expected_status == "completed" and t.expected_calls for t in tasks.examples[:-1])
    # the values come from the held-out part of the pools: none was seen in training
    pools = make_pools(CORPUS_SEED)
    weather = tasks.examples[0]
    city = weather.expected_calls[0].arguments["city"]
    assert city in pools.cities.test and city not in pools.cities.train
    assert city in weather.query and weather.expected_answer == [str(tool_data.weather(city)["temperature_c"])]
    # the load uses tools both callers know; the new-tool question needs the new one
    assert tasks.load and all(NEW_TOOL not in [c.name for c in t.expected_calls] for t in tasks.load)
    assert [c.name for c in tasks.new_tool.expected_calls] == [NEW_TOOL]
    # (a city as the user wrote it: "nice" in a question written all in lower case)
    assert tasks.new_tool.expected_calls[0].arguments["city"].casefold() in {c.casefold() for c in pools.cities.test}
    # and at least two questions of the own-words suite, by id
    assert len(tasks.own_words) >= 2 and [q.id for q in tasks.own_words] == list(OWN_WORDS_IDS)


def test_kind_of_a_trajectory() -> None:
    def traj(*turns: tuple[str, str]) -> dict:
        return {"instruction": turns[0][1], "conversations": [{"from": f, "value": v} for f, v in turns]}

    assert kind_of(traj(("user", "Book a hotel"), ("assistant", "None of the tools can.\n Next: give up."))) == "give_up"
    one = traj(("user", "q"), ("caller", 'Action: get_weather\nAction Input: {"city": "Oslo"}'))
    assert kind_of(one) == "one:get_weather"
    two = traj(("user", "q"), ("caller", "Action: get_stock_price\nAction Input: {}"), ("caller", "Action: convert_currency\nAction Input: {}"))
    assert kind_of(two) == "two:chained"
    error = traj(("user", "q"), ("caller", "Action: convert_currency\nAction Input: {}"), ("observation", '{"error": "HTTP 400"}'))
    assert kind_of(error) == "recover"


CHAT = {
    "chat_id": "c1", "status": "completed", "answer": "In Riga it is 19 C and clear.",
    "steps": [
        {"index": 0, "role": "planner", "thought": "I will use get_weather.", "next": "caller"},
        {"index": 1, "role": "caller", "name": "get_weather", "arguments": {"city": "Riga"}, "model_version": "v1"},
        {"index": 2, "role": "observation", "content": '{"city":"Riga","temperature_c":19}'},
        {"index": 3, "role": "planner", "thought": "I have the answer.", "next": "conclusion"},
        {"index": 4, "role": "summarizer", "answer": "In Riga it is 19 C and clear."},
    ],
}  # fmt: skip
RIGA = Task(id="w", query="Weather in Riga?", expected_calls=[ExpectedCall(name="get_weather", arguments={"city": "Riga"})],
            expected_answer=["19"])  # fmt: skip


def test_a_chat_prints_one_line_per_step_then_the_status() -> None:
    lines = chat_lines(CHAT)
    assert len(lines) == 6
    assert "I will use get_weather.  -> call a tool" in lines[0]
    assert 'get_weather({"city": "Riga"})' in lines[1]
    assert '{"city":"Riga","temperature_c":19}' in lines[2]
    assert "-> answer" in lines[3] and "In Riga it is 19 C" in lines[4]
    assert lines[5].split() == ["=", "completed", "In", "Riga", "it", "is", "19", "C", "and", "clear."]
    rambling = {"status": "max_steps", "steps": [{"role": "planner", "thought": "x" * 5000, "next": "caller"}]}
    assert all(len(line) < 300 for line in chat_lines(rambling))


def test_outcomes_are_judged_by_status_then_by_calls_and_answer() -> None:
    good = ChatOutcome(RIGA, CHAT, None, 1.0)
    assert good.reached_expected_status and good.verdict() == (True, []) and good.versions("caller") == {"v1"}
    assert "ok: completed as expected" in outcome_lines(1, good)[-1]
    wrong_city = Task(id="w", query="q", expected_calls=[ExpectedCall(name="get_weather", arguments={"city": "Oslo"})])
    partial = ChatOutcome(wrong_city, CHAT, None, 1.0)
    assert partial.reached_expected_status and not partial.verdict()[0]
    assert "partly right: completed as expected" in outcome_lines(1, partial)[-1]
    assert "but no call get_weather" in outcome_lines(1, partial)[-1]
    lost = ChatOutcome(RIGA, None, "ConnectError: refused", 0.1)
    assert lost.request_failed and not lost.reached_expected_status
    assert "NOT OK: no chat (ConnectError: refused)" in outcome_lines(1, lost)[-1]


def test_the_demo_fails_on_any_unexpected_status_failed_request_or_missing_new_tool() -> None:
    good = ChatOutcome(RIGA, CHAT, None, 1.0)
    report = {"model": {"name": "caller-v2", "version": "b"}, "previous": {"name": "caller", "version": "a"}}
    swap = SwapOutcome(200, report, chats=[good])
    population = {**CHAT, "steps": [{"role": "caller", "name": NEW_TOOL, "arguments": {"city": "Porto"}}]}
    porto = Task(id="p", query="q", expected_calls=[ExpectedCall(name=NEW_TOOL, arguments={"city": "Porto"})])
    new_tool = ChatOutcome(porto, population, None, 1.0)
    assert DemoResult([good], swap, new_tool).problems() == []

    gave_up = ChatOutcome(RIGA, {**CHAT, "status": "gave_up"}, None, 1.0)
    assert DemoResult([gave_up], swap, new_tool).problems() == ["example [1] ended gave_up, expected completed"]
    flaky = SwapOutcome(200, report, chats=[good, ChatOutcome(RIGA, {**CHAT, "status": "failed"}, None, 1.0)], caller_errors=2)
    assert DemoResult([good], flaky, new_tool).problems() == ["3 request(s) failed during the swap"]
    assert DemoResult([good], swap, good).problems() == [f"the {NEW_TOOL} question was answered without {NEW_TOOL}"]
    assert "the caller was not swapped" in DemoResult([good], SwapOutcome(422, {}), None).problems()

    wrong_city = Task(id="w", query="q", expected_calls=[ExpectedCall(name="get_weather", arguments={"city": "Oslo"})])
    wrong = ChatOutcome(wrong_city, CHAT, None, 1.0)
    assert DemoResult([wrong], swap, new_tool).problems() == []  # the status is right: the system works
    assert DemoResult([wrong], swap, new_tool).problems(strict=True) == ['chat [1]: no call get_weather({"city": "Oslo"})']


def test_error_responses_counts_the_endpoints_non_200_answers() -> None:
    text = "\n".join([
        "# TYPE umi_requests_total counter",
        'umi_requests_total{role="caller",endpoint="/v1/call",code="200"} 7.0',
        'umi_requests_total{role="caller",endpoint="/v1/call",code="503"} 2.0',
        'umi_requests_total{role="caller",endpoint="other",code="503"} 5.0',
    ])  # fmt: skip
    assert error_responses(text + "\n", "/v1/call") == (9, 2)


def test_the_stack_refuses_to_start_without_models_or_with_a_port_taken(tmp_path: Path) -> None:
    config = StackConfig(models=DemoModels.in_dir(tmp_path / "none"), work_dir=tmp_path / "work", admin_token="t",
                         ports=StackPorts.free())  # fmt: skip
    with pytest.raises(StackError, match="make models"):
        Stack(config).start(say=lambda _: None)

    import socket

    for name in ("planner", "caller", "summarizer", "caller-v2"):
        (tmp_path / "m" / name).mkdir(parents=True)
        (tmp_path / "m" / name / "config.json").write_text("{}")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        ports = StackPorts(**{**StackPorts.free().as_dict(), "orchestrator": taken})
        config = StackConfig(models=DemoModels.in_dir(tmp_path / "m"), work_dir=tmp_path / "work", admin_token="t", ports=ports)
        stack = Stack(config)
        with pytest.raises(StackError, match=f"orchestrator {taken}"):
            stack.start(say=lambda _: None)
        assert stack.servers == {}


def test_free_ports_are_distinct() -> None:
    ports = StackPorts.free().as_dict()
    assert len(set(ports.values())) == len(ports) == 6


def test_own_words_questions_are_judged_and_shown_but_only_a_failed_request_fails_the_demo() -> None:
    good = ChatOutcome(RIGA, CHAT, None, 1.0)
    swap = SwapOutcome(200, {"model": {"name": "c2", "version": "b"}, "previous": {"name": "c", "version": "a"}}, chats=[good])
    porto = Task(id="p", query="q", expected_calls=[ExpectedCall(name=NEW_TOOL, arguments={"city": "Porto"})])
    new_tool = ChatOutcome(porto, {**CHAT, "steps": [{"role": "caller", "name": NEW_TOOL, "arguments": {"city": "Porto"}}]}, None, 1.0)
    cairo = next(q for q in load_questions() if q.id == "weather-cairo-hot")
    (temperature,) = cairo.expected_values()
    task = Task(id=cairo.id, query=cairo.question)
    right_chat = {"status": "completed", "answer": f"In Cairo it is {temperature} C.",
                  "steps": [{"role": "caller", "name": "get_weather", "arguments": {"city": "Cairo"}}]}  # fmt: skip
    right = OwnWordsOutcome(cairo, ChatOutcome(task, right_chat, None, 1.0))
    assert right.verdict().fully_right and "own words: fully right" in own_words_lines(8, right)[-1]
    gave_up = OwnWordsOutcome(cairo, ChatOutcome(task, {"status": "gave_up", "answer": "No tool.", "steps": []}, None, 1.0))
    assert "own words: not right: no call get_weather" in own_words_lines(8, gave_up)[-1]
    assert DemoResult([good], swap, new_tool, [right, gave_up]).problems(strict=True) == []
    lost = OwnWordsOutcome(cairo, ChatOutcome(task, None, "ConnectError: refused", 0.1))
    assert DemoResult([good], swap, new_tool, [lost]).problems() == [
        "own-words question weather-cairo-hot: the request failed (ConnectError: refused)"]



def test_a_slow_swap_still_gets_chats_after_it_once_the_chats_before_it_reach_max_chats() -> None:
    """The load stops at max_chats while the swap runs, then each client sends its chats after the
    swap: without them the demo could not show the new caller serving (a slow swap on a busy
    machine once used up all 40 chats before it returned)."""
    import asyncio
    import threading

    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    from tests.support.orchestrator_fakes import ThreadServer
    from umi.demo.run import swap_under_load

    state = {"version": "v1", "chats": 0}
    release = threading.Event()
    app = FastAPI()

    @app.post("/chat")
    def chat() -> dict[str, object]:
        state["chats"] += 1
        if state["chats"] == 6:  # max_chats reached: the swap returns a little later
            threading.Timer(0.5, release.set).start()
        return {"chat_id": "c", "status": "completed", "answer": "ok",
                "steps": [{"role": "caller", "model_version": state["version"]}]}  # fmt: skip

    @app.get("/metrics")
    def metrics() -> PlainTextResponse:
        return PlainTextResponse("")

    @app.post("/admin/weights")
    def swap() -> dict[str, object]:
        release.wait(timeout=30)
        state["version"] = "v2"
        return {"model": {"name": "caller-v2", "version": "v2"}, "previous": {"name": "caller", "version": "v1"}}

    with ThreadServer(app) as server:
        outcome = asyncio.run(swap_under_load(server.url, server.url, "token", Path("/m/caller-v2"),
                                              [Task(id="load", query="q", max_steps=1)], [], clients=2,
                                              after_switch=1, max_chats=6))  # fmt: skip
    versions = [sorted(c.versions("caller")) for c in outcome.chats]
    assert versions == [["v1"]] * 6 + [["v2"]] * 2, versions


def test_the_logs_are_pointed_to_only_when_a_part_wrote_some(tmp_path: Path) -> None:
    from umi.demo.stack import keep_logs

    said: list[str] = []
    empty = tmp_path / "never-started"
    (empty / "logs").mkdir(parents=True)
    keep_logs(empty, said.append)
    assert said == [] and not empty.exists()
    ran = tmp_path / "ran"
    (ran / "logs").mkdir(parents=True)
    (ran / "logs" / "planner.log").write_text("started\n")
    keep_logs(ran, said.append)
    assert said[-1] == f"logs kept in {ran / 'logs'}" and (ran / "logs" / "planner.log").exists()


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_stop_signal_interrupts_the_stack_even_if_sigint_started_ignored(signum: str) -> None:
    import os
    import signal
    import time

    from umi.demo.stack import interrupt_on_termination

    before = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a background job of a script starts
    try:
        with pytest.raises(KeyboardInterrupt), interrupt_on_termination():
            os.kill(os.getpid(), getattr(signal, signum))
            time.sleep(0.5)  # the handler runs here
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # put back on the way out
    finally:
        signal.signal(signal.SIGINT, before)
