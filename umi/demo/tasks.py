"""The questions of ``make demo``, taken from the held-out split of the demo corpus (values that
never occur in training), with what a right answer looks like: the expected status, the calls
and the values the answer must hold (:func:`umi.demo.suite.task_from_trajectory`, the rules of
``umi demo quality`` and ``umi eval chats``); and a few questions of the own-words suite
(:mod:`umi.demo.own_words`), as people write them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from umi.demo.corpus import ToolSetName, build_corpus
from umi.demo.own_words import OwnWordsQuestion, load_questions
from umi.demo.suite import task_from_trajectory
from umi.eval.chats import Task
from umi.format import parse_trajectories

CORPUS_SEED = 7  # the seed `make models` builds the corpus with (Makefile, recipes/demo.toml)
HELD_OUT = 200  # how many held-out trajectories to choose from
# The first example chats: one of each kind, in this order.
EXAMPLE_KINDS = (
    "one:get_weather", "one:convert_currency", "one:translate_word", "two:same", "two:chained", "recover", "give_up",
)  # fmt: skip
NEW_TOOL = "get_population"
# The own-words questions the demo asks (ids in umi/demo/own_words.json), after the examples.
OWN_WORDS_IDS = ("weather-cairo-hot", "weather-krakow", "stock-aapl-trading")


def kind_of(trajectory: dict[str, Any]) -> str:
    """``give_up``, ``direct``, ``recover`` (a call the tool rejected, then a right one),
    ``two:same`` / ``two:chained`` (two calls of one tool / of two tools), or ``one:<tool>``."""
    turns = trajectory["conversations"]
    if any(t["from"] == "assistant" and "Next: give up." in t["value"] for t in turns):
        return "give_up"
    if any(t["from"] == "observation" and t["value"].startswith('{"error"') for t in turns):
        return "recover"
    tools = [t["value"].split("\n", 1)[0].removeprefix("Action: ") for t in turns if t["from"] == "caller"]
    if not tools:
        return "direct"
    if len(tools) == 1:
        return f"one:{tools[0]}"
    return "two:same" if len(set(tools)) == 1 else "two:chained"


def task_from(trajectory: dict[str, Any], task_id: str) -> Task:
    (parsed,) = parse_trajectories([trajectory])
    return task_from_trajectory(parsed, task_id)


def held_out(version: ToolSetName, seed: int = CORPUS_SEED) -> list[dict[str, Any]]:
    return build_corpus(seed, HELD_OUT, "test", version)


def first_of_kind(trajectories: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    matching = [t for t in trajectories if kind_of(t) == kind]
    if kind == "give_up":  # a give-up about populations shows best what the new tool changes
        # Asked in words ("How many people live in Seville?") when the held-out split has one:
        # the tiny models answer a bare "Shanghai population" with other tools more often.
        matching.sort(key=lambda t: not t["instruction"].startswith("How many people live in"))
    return matching[0] if matching else None


@dataclass(frozen=True)
class DemoTasks:
    examples: list[Task]  # with the v1 tools, before the swap
    load: list[Task]  # with the v2 tools, sent while the caller is swapped (tools both callers know)
    new_tool: Task  # with the v2 tools after the swap: needs get_population
    own_words: list[OwnWordsQuestion]  # with the v1 tools, before the swap


def demo_tasks(seed: int = CORPUS_SEED, load_size: int = 12) -> DemoTasks:
    v1, v2 = held_out("v1", seed), held_out("v2", seed)
    examples = [task_from(t, kind) for kind in EXAMPLE_KINDS if (t := first_of_kind(v1, kind)) is not None]
    known = [t for t in v2 if kind_of(t).startswith("one:") and kind_of(t) != f"one:{NEW_TOOL}"]
    load = [task_from(t, f"load-{i}") for i, t in enumerate(known[:load_size])]
    population = first_of_kind(v2, f"one:{NEW_TOOL}")
    assert population is not None, "the v2 held-out split has a population question"
    by_id = {q.id: q for q in load_questions()}
    own_words = [by_id[i] for i in OWN_WORDS_IDS]
    return DemoTasks(examples=examples, load=load, new_tool=task_from(population, NEW_TOOL), own_words=own_words)
