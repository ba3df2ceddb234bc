"""The own-words suite (umi/demo/own_words.json, ``umi demo quality --suite own-words``): the
fixture is what the suite promises, the judge tells right from wrong, and the suite runs the
whole loop with the shipped models."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import get_args

import jsonschema
import pytest

from umi.cli import main
from umi.demo import tool_data as data
from umi.demo.own_words import SUITES, Form, OwnWordsQuestion, corpus_form, judge, load_questions, states
from umi.demo.tools_app import BY_NAME, tool_set

ROOT = Path(__file__).resolve().parents[2]
QUESTIONS = load_questions()
BY_ID = {q.id: q for q in QUESTIONS}


def test_the_fixture_covers_every_v1_tool_and_every_form() -> None:
    assert len(QUESTIONS) >= 60
    tools = {c.name for q in QUESTIONS for c in q.calls}
    assert tools == {t.name for t in tool_set("v1")}
    forms = {f for q in QUESTIONS for f in q.forms}
    assert forms == set(get_args(Form))
    assert 3 <= sum(not q.calls for q in QUESTIONS) <= 5
    questions = {q.question for q in QUESTIONS}
    for issue_example in ("how hot is it in cairo", "Is it raining in Valencia at the moment?",
                          "Where is AAPL trading today?", "WEATHER IN NAIROBI"):  # fmt: skip
        assert issue_example in questions
    assert any("Kraków" in q for q in questions)


@pytest.mark.parametrize("question", QUESTIONS, ids=lambda q: q.id)
def test_every_expected_call_validates_against_its_tool_and_has_values(question: OwnWordsQuestion) -> None:
    for call in question.calls:
        parameters = BY_NAME[call.name].schema("http://tools")["function"]["parameters"]
        jsonschema.validate(call.arguments, parameters)
    values = question.expected_values()  # the tools accept the arguments
    assert len(values) == len(question.calls) and all(values)


def test_a_fixture_with_an_unknown_tool_or_a_missing_argument_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": "x", "question": "?", "forms": ["phrasing"], "calls": [{"name": "get_population", "arguments": {"city": "Oslo"}}]}]))
    with pytest.raises(ValueError, match="x: calls: 'get_population' is not a v1 demo tool"):
        load_questions(bad)
    bad.write_text(json.dumps([{"id": "y", "question": "?", "forms": ["phrasing"], "calls": [{"name": "get_weather", "arguments": {}}]}]))
    with pytest.raises(ValueError, match="y: calls: get_weather lacks argument"):
        load_questions(bad)


def test_place_names_with_diacritics_are_answered_in_either_normal_form() -> None:
    decomposed = unicodedata.normalize("NFD", "Kraków")
    assert decomposed != "Kraków"
    assert data.weather(decomposed) == data.weather("Kraków")
    with pytest.raises(data.ToolInputError):
        data.weather("Krak0w")


def _judge(question: OwnWordsQuestion, status: str | None, calls: list[tuple[str, dict | None]], answer: str | None):
    return judge(question, question.expected_values(), status, calls, answer)


def test_the_judge_takes_a_right_chat_and_names_what_a_wrong_one_lacks() -> None:
    q = BY_ID["weather-krakow"]
    (temperature,) = q.expected_values()
    right = _judge(q, "completed", [("get_weather", {"city": unicodedata.normalize("NFD", "Kraków")})], f"In Kraków it is {temperature} C.")
    assert right.fully_right and right.calls_right and right.reasons == []
    shouted = _judge(q, "completed", [("get_weather", {"city": "KRAKÓW"})], f"In KRAKÓW it is {temperature} C.")
    assert shouted.calls_right  # the tools read place names in any case: the same data
    assert str(data.weather("KRAKÓW")["temperature_c"]) == temperature
    no_accent = _judge(q, "completed", [("get_weather", {"city": "Krakow"})], f"In Krakow it is {temperature} C.")
    assert not no_accent.calls_right
    wrong_city = _judge(q, "completed", [("get_weather", {"city": "Krakd"})], f"In Krakd it is {temperature} C.")
    assert not wrong_city.calls_right and wrong_city.reasons == ['no call get_weather({"city": "Kraków"})']
    wrong_answer = _judge(q, "completed", [("get_weather", {"city": "Kraków"})], f"It is {int(temperature) + 100} C.")
    assert wrong_answer.calls_right and not wrong_answer.fully_right
    assert wrong_answer.reasons == [f"answer lacks {temperature!r}"]
    ran_out = _judge(q, None, [("get_weather", None)], None)
    assert not ran_out.calls_right and "status max_steps, expected completed" in ran_out.reasons


def test_the_judge_compares_codes_case_insensitively_numbers_as_numbers_and_expressions_by_value() -> None:
    money = BY_ID["currency-euros-to-dollars"]
    (result,) = money.expected_values()
    assert _judge(money, "completed", [("convert_currency", {"amount": 50.0, "from_currency": "eur", "to_currency": "Usd"})],
                  f"50 EUR is {result} USD.").fully_right  # fmt: skip
    assert not _judge(money, "completed", [("convert_currency", {"amount": "50", "from_currency": "EUR", "to_currency": "USD"})],
                      f"50 EUR is {result} USD.").calls_right  # fmt: skip
    assert not _judge(money, "completed", [("convert_currency", {"amount": 50, "from_currency": "euros", "to_currency": "USD"})],
                      f"50 EUR is {result} USD.").calls_right  # fmt: skip
    percent = BY_ID["calculate-percent"]
    assert _judge(percent, "completed", [("calculate", {"expression": "0.15*240"})], "15% of 240 is 36.").fully_right
    assert not _judge(percent, "completed", [("calculate", {"expression": "15 / 240"})], "36").calls_right
    assert not _judge(percent, "completed", [("calculate", {"expression": "15 % of 240"})], "36").calls_right


def test_a_whole_number_is_stated_with_or_without_zero_decimals_and_never_inside_another_number() -> None:
    assert states("200 USD is 184.0 EUR.", "184") and states("200 USD is 184.00 EUR.", "184") and states("It is -4.0 C", "-4")
    assert not states("200 USD is 184.5 EUR.", "184") and not states("1184.0", "184") and not states("184.05", "184")
    assert not states("It is 120 C", "12") and not states("3.12", "12") and not states("-12", "12")
    assert states("It is 08:00 in Oslo", "08:00") and not states("It is 08:00.5", "08:00")
    assert not states("1.5", "1.50")  # a decimal value is stated as written


def test_a_question_one_of_the_corpus_forms_writes_is_found_with_its_form() -> None:
    forms = ["What time is it in {c}?", "Convert {n} {a} to {b}.", "{e}?"]
    assert corpus_form("WHAT TIME IS IT IN SÃO PAULO", forms) == "What time is it in {c}?"
    assert corpus_form("convert 26.2 British pounds to yen!", forms) == "Convert {n} {a} to {b}."
    assert corpus_form("12.5 * 8 + 3", forms) == "{e}?"
    assert corpus_form("What time is it in Tokyo and in Lima?", forms) is None
    assert corpus_form("Is it late in Tokyo?", forms) is None
    assert corpus_form("what time is it in Tokyo") == "What time is it in {c}?"  # the corpus's own forms


def test_two_questions_in_one_need_both_calls_and_both_values() -> None:
    q = BY_ID["two-weather-and-time-lisbon"]
    temperature, time = q.expected_values()
    calls = [("get_weather", {"city": "Lisbon"}), ("get_time", {"city": "Lisbon"})]
    assert _judge(q, "completed", calls, f"Lisbon: {temperature} C, local time {time}.").fully_right
    one = _judge(q, "completed", calls[:1], f"Lisbon: {temperature} C.")
    assert not one.calls_right and one.reasons == ['no call get_time({"city": "Lisbon"})', f"answer lacks {time!r}"]


def test_a_question_no_tool_answers_is_right_without_a_call() -> None:
    q = BY_ID["none-hotel-booking"]
    assert _judge(q, "gave_up", [], "None of the tools can book hotels.").fully_right
    assert _judge(q, "completed", [], "I cannot book hotels.").fully_right
    called = _judge(q, "completed", [("get_weather", {"city": "Barcelona"})], "It is sunny.")
    assert not called.calls_right and not called.fully_right
    assert not _judge(q, None, [], None).fully_right


# Two questions the shipped models settle in a step or two: one right, one given up.
FAST = ("time-tokyo-lower", "weather-cairo-hot")


def test_the_suite_runs_the_whole_loop_with_the_shipped_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fixture = tmp_path / "fast.json"
    fixture.write_text(json.dumps([BY_ID[i].model_dump() for i in FAST]), encoding="utf-8")
    monkeypatch.setitem(SUITES, "own-words", fixture)
    out = tmp_path / "own-words.json"
    assert main(["demo", "quality", "--models", str(ROOT / "models" / "demo"), "--suite", "own-words",
                 "--out", str(out), "--quiet"]) == 0  # fmt: skip
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["questions"] == 2 and [r["id"] for r in report["results"]] == list(FAST)
    for r in report["results"]:
        q = BY_ID[r["id"]]
        verdict = judge(q, q.expected_values(), None if r["status"] == "max_steps" else r["status"],
                        [(c["name"], c["arguments"]) for c in r["calls"]], r["answer"])  # fmt: skip
        assert (verdict.fully_right, verdict.calls_right, verdict.reasons) == (r["fully_right"], r["calls_right"], r["reasons"])
    assert report["fully_right_count"] == sum(r["fully_right"] for r in report["results"])
    assert [f["id"] for f in report["failures"]] == [r["id"] for r in report["results"] if not r["fully_right"]]
    assert report["by_tool"]["get_time"]["questions"] == 1 and report["by_form"]["casing"]["questions"] == 2
    printed = capsys.readouterr().out
    assert "in all" in printed and "get_weather" in printed and str(out) in printed


def test_an_unknown_suite_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "quality", "--models", "models/demo", "--suite", "nope"]) == 2
    assert "--suite: unknown suite 'nope'; known: own-words" in capsys.readouterr().err


def test_models_that_are_not_there_are_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "quality", "--models", str(tmp_path), "--suite", "own-words"]) == 2
    err = capsys.readouterr().err
    assert f"--models: no model in {tmp_path / 'planner'}" in err and "make models" in err
