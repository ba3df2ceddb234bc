"""The synthetic corpus: reproducible, held-out values, observations as the tools answer them."""

from __future__ import annotations

import json
import re

from fastapi.testclient import TestClient

from umi.demo import tool_data as data
from umi.demo.corpus import build_corpus
from umi.demo.pools import make_pools
from umi.demo.tools_app import create_app
from umi.format import build_samples, parse_caller, parse_trajectories


def test_same_seed_same_corpus_other_seed_other_corpus() -> None:
    assert build_corpus(7, 30, "train") == build_corpus(7, 30, "train")
    assert build_corpus(7, 30, "train") != build_corpus(8, 30, "train")


def test_test_split_values_never_occur_in_training() -> None:
    pools = make_pools(7)
    for pool in (pools.cities, pools.currencies, pools.tickers, pools.words, pools.numbers, pools.dates):
        assert not set(pool.train) & set(pool.test)
    train_text = json.dumps(build_corpus(7, 400, "train", "v2"))
    for city in pools.cities.test:
        assert not re.search(rf"\b{re.escape(city)}\b", train_text), city
    for ticker in pools.tickers.test:
        assert f'"symbol": "{ticker}"' not in train_text.replace('\\"', '"')


def test_observations_are_what_the_tools_server_answers() -> None:
    client = TestClient(create_app())
    checked = 0
    for traj in parse_trajectories(build_corpus(7, 60, "test", "v2")):
        turns = traj.conversations
        for i, turn in enumerate(turns):
            if turn.role != "caller":
                continue
            call = parse_caller(turn.content, traj.tool_names())
            assert call.valid and not call.hallucinated
            response = client.post(f"/tools/{call.name}", json=call.arguments)
            observation = turns[i + 1].content
            if response.status_code == 200:
                assert observation == response.text
            else:
                assert json.loads(observation) == {"error": f"HTTP {response.status_code}", "response": response.text}
            checked += 1
    assert checked > 40


def test_mix_of_shapes_and_valid_samples() -> None:
    corpus = parse_trajectories(build_corpus(7, 300, "train"))
    calls = [sum(t.role == "caller" for t in traj.conversations) for traj in corpus]
    gave_up = sum(any("Next: give up." in t.content for t in traj.conversations) for traj in corpus)
    assert calls.count(0) > 10 and calls.count(1) > 100 and calls.count(2) > 30 and gave_up > 10
    for role in ("planner", "caller", "summarizer", "backbone"):
        assert build_samples(corpus, role)
    v2 = json.dumps(build_corpus(7, 200, "train", "v2"))
    assert '"get_population"' in v2 and "get_population" not in json.dumps(build_corpus(7, 200, "train", "v1")).replace("None of the tools can give populations", "")


def test_held_out_suite_tasks_come_from_the_gold_trajectories() -> None:
    from umi.demo.suite import suite_from_trajectories
    from umi.eval.chats import judge

    corpus = parse_trajectories(build_corpus(7, 80, "test"))
    suite = suite_from_trajectories(corpus, "heldout")
    assert len(suite.tasks) == 80
    for traj, task in zip(corpus, suite.tasks):
        turns = traj.conversations
        gold_calls = [parse_caller(t.content) for i, t in enumerate(turns)
                      if t.role == "caller" and not turns[i + 1].content.startswith('{"error"')]
        chat = {
            "status": task.expected_status,
            "steps": [{"role": "caller", "name": c.name, "arguments": c.arguments} for c in gold_calls],
            "answer": next((t.content for t in turns if t.role == "conclusion"), None),
        }
        assert judge(task, chat)[0], task  # the gold trajectory solves its own task
        if gold_calls:
            chat["steps"] = chat["steps"][:-1]
            assert not judge(task, chat)[0]  # and a missing call fails it


def _calls(traj: dict) -> list[dict]:
    return [json.loads(t["value"].split("\nAction Input: ", 1)[1]) for t in traj["conversations"] if t["from"] == "caller"]


def test_questions_come_in_people_s_phrasing() -> None:
    corpus = build_corpus(7, 3000, "train", "v2")
    queries = [t["instruction"] for t in corpus]
    assert len(set(queries)) > 0.9 * len(queries)  # the repeats: greetings and requests no tool serves
    assert sum(q == q.lower() and any(c.isalpha() for c in q) for q in queries) > 200  # all lower case
    assert sum(q == q.upper() and any(c.isalpha() for c in q) for q in queries) > 100  # all capitals
    assert any(q.startswith(("¿Qué", "Quelle", "Wie ", "Que horas")) for q in queries)  # other languages
    assert any("euros" in q.lower() or " yen" in q.lower() for q in queries)  # currency names
    assert any("kilometers" in q.lower() or "miles" in q.lower() for q in queries)  # unit names
    two_tools = [t for t in corpus if len({c["value"].split("\n")[0] for c in t["conversations"] if c["from"] == "caller"}) == 2
                 and not any(c["from"] == "observation" and c["value"].startswith('{"error"') for c in t["conversations"])]
    assert len(two_tools) > 300


def test_calls_carry_values_as_the_tools_take_them() -> None:
    from umi.demo.phrasing import CURRENCY_NAMES, UNIT_NAMES

    for traj in build_corpus(7, 2000, "train", "v2"):
        query = traj["instruction"]
        for args in _calls(traj):
            for key in ("city", "origin", "destination"):
                if key in args:  # a city as the user wrote it, diacritics and casing kept, never a typo
                    assert args[key] in query, (query, args)
            if "expression" in args:  # its numbers are the question's, but a percentage's / 100 and a square's ** 2
                written = re.sub(r" / 100$| \*\* 2$", "", args["expression"])
                assert all(n in query for n in re.findall(r"\d+(?:\.\d+)?", written)), query
                assert data.calculate(args["expression"])["result"] is not None
            if "from_unit" in args:
                assert args["from_unit"] in UNIT_NAMES and args["to_unit"] in UNIT_NAMES
    mapped = [t for t in build_corpus(7, 2000, "test") for a in _calls(t)
              if "from_currency" in a and any(n in t["instruction"] for n in CURRENCY_NAMES) and len(_calls(t)) == 1]
    assert mapped and all(a["from_currency"].isupper() and len(a["from_currency"]) == 3 for t in mapped for a in _calls(t))


def test_names_with_diacritics_reach_the_call_and_the_tools_answer() -> None:
    from umi.demo import tool_data

    calls = [a for t in build_corpus(7, 2000, "train") for a in _calls(t) if "city" in a]
    accented = [a["city"] for a in calls if not a["city"].isascii()]
    assert len(accented) > 50
    assert tool_data.weather("Kraków")["city"] == "Kraków" and tool_data.local_time("Łódź")["city"] == "Łódź"
    assert tool_data.weather("KRAKÓW")["temperature_c"] == tool_data.weather("Kraków")["temperature_c"]


def test_typos_change_only_the_words_around_the_values() -> None:
    import random

    from umi.demo.phrasing import ask

    rng = random.Random(1)
    for _ in range(300):
        asked = ask(rng, "What is the weather like in {c} today?", c="São Paulo")
        assert asked.written("São Paulo") in asked.query
