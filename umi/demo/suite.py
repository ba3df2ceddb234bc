"""The built-in ``demo`` chat suite for ``umi eval chats --suite demo``: tasks over the demo
tools, with the expected calls and the values the answer must hold (computed from the same
deterministic tool data the server answers with)."""

from __future__ import annotations

from typing import Any

import re
from collections.abc import Sequence

from umi.demo import tool_data as data
from umi.eval.chats import Suite, Task
from umi.format import Trajectory, parse_caller

_VALUE = re.compile(r"-?\d+(?:[.:]\d+)?")


def number_text(value: Any) -> str:
    """A tool's value as an answer states it: ``12.0`` -> ``12``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def demo_suite(tools_url: str = "http://127.0.0.1:8300/tools") -> Suite:
    weather_oslo = data.weather("Oslo")
    weather_paris, weather_tokyo = data.weather("Paris"), data.weather("Tokyo")
    money = data.convert_currency(250.0, "EUR", "JPY")
    units = data.convert_units(10.0, "km", "mi")
    stock = data.stock_price("ACME")
    flights = data.search_flights("Oslo", "Rome", "2026-05-01")
    word = data.translate_word("house", "German")
    time_lima = data.local_time("Lima")
    tasks = [
        Task(id="weather", query="What is the weather in Oslo?",
             expected_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}],
             expected_answer=[number_text(weather_oslo["temperature_c"])]),
        Task(id="currency", query="Convert 250 EUR to JPY.",
             expected_calls=[{"name": "convert_currency", "arguments": {"amount": 250, "from_currency": "EUR", "to_currency": "JPY"}}],
             expected_answer=[number_text(money["result"])]),
        Task(id="calculator", query="What is 17 * 23?",
             expected_calls=[{"name": "calculate", "arguments": {"expression": "17 * 23"}}], expected_answer=["391"]),
        Task(id="time", query="What time is it in Lima?",
             expected_calls=[{"name": "get_time", "arguments": {"city": "Lima"}}], expected_answer=[str(time_lima["time"])]),
        Task(id="units", query="Convert 10 km to mi.",
             expected_calls=[{"name": "convert_units", "arguments": {"value": 10, "from_unit": "km", "to_unit": "mi"}}],
             expected_answer=[number_text(units["result"])]),
        Task(id="stock", query="What is the stock price of ACME?",
             expected_calls=[{"name": "get_stock_price", "arguments": {"symbol": "ACME"}}], expected_answer=[number_text(stock["price"])]),
        Task(id="flights", query="Find flights from Oslo to Rome on 2026-05-01.",
             expected_calls=[{"name": "search_flights", "arguments": {"origin": "Oslo", "destination": "Rome", "date": "2026-05-01"}}],
             expected_answer=[str(flights["flights"][0]["flight"])]),  # type: ignore[index]
        Task(id="translate", query="Translate the word house to German.",
             expected_calls=[{"name": "translate_word", "arguments": {"word": "house", "language": "German"}}],
             expected_answer=[str(word["translation"])]),
        Task(id="two-cities", query="What is the weather in Paris and in Tokyo?",
             expected_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}},
                             {"name": "get_weather", "arguments": {"city": "Tokyo"}}],
             expected_answer=[number_text(weather_paris["temperature_c"]), number_text(weather_tokyo["temperature_c"])]),
        Task(id="give-up", query="Book me a hotel room in Paris for tonight.", expected_status="gave_up"),
    ]
    return Suite(name="demo", tools_url=tools_url, tasks=tasks)


def task_from_trajectory(traj: Trajectory, task_id: str) -> Task:
    """The task a gold trajectory solves: its status, the calls that succeeded (a call whose
    observation is an error is a mistake the agent may or may not repeat), and the numbers of its
    answer."""
    turns = traj.conversations
    gave_up = any(t.role == "planner" and "Next: give up." in t.content for t in turns)
    calls = []
    for i, turn in enumerate(turns):
        if turn.role == "caller" and i + 1 < len(turns) and not turns[i + 1].content.startswith('{"error"'):
            call = parse_caller(turn.content)
            calls.append({"name": call.name, "arguments": call.arguments or {}})
    answer = next((t.content for t in turns if t.role == "conclusion"), "")
    return Task(
        id=task_id, query=turns[0].content, expected_calls=calls, expected_answer=_VALUE.findall(answer),
        expected_status="gave_up" if gave_up else "completed",
    )


def suite_from_trajectories(
    trajectories: Sequence[Trajectory], name: str, tools_url: str = "http://127.0.0.1:8300/tools"
) -> Suite:
    """A chat suite from a held-out corpus file: ``umi eval chats`` then runs it end to end."""
    tasks = [task_from_trajectory(t, f"{name}-{i}") for i, t in enumerate(trajectories)]
    return Suite(name=name, tools_url=tools_url, tasks=tasks)
