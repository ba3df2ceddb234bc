"""The role output parsers on well-formed and malformed model output. They never raise."""

from __future__ import annotations

import pytest

from umi.format import parse_backbone, parse_caller, parse_planner, parse_summarizer

TOOLS = ["get_weather", "convert"]


@pytest.mark.parametrize(
    ("text", "decision", "thought", "turn"),
    [
        ("I call it.\n Next: caller.", "caller", "I call it.", "I call it.\n Next: caller."),
        ("Done.\n Next: conclusion. trailing junk", "conclusion", "Done.", "Done.\n Next: conclusion."),
        ("Cannot.\n Next: give up.</s>ignored", "give_up", "Cannot.", "Cannot.\n Next: give up."),
        # give up wins over conclusion, conclusion over caller, wherever they stand
        ("Next: caller. then Next: give up.", "give_up", "Next: caller. then", "Next: caller. then Next: give up."),
        ("a Next: caller. b Next: conclusion.", "conclusion", "a Next: caller. b", "a Next: caller. b Next: conclusion."),
        # no period: still recognised, and the turn is completed
        ("ok Next: conclusion", "conclusion", "ok", "ok Next: conclusion."),
        # no control phrase: the reference's default is the caller
        ("just thinking", "caller", "just thinking", "just thinking\n Next: caller."),
        ("", "caller", "", " Next: caller."),
    ],
)
def test_planner(text: str, decision: str, thought: str, turn: str) -> None:
    out = parse_planner(text)
    assert (out.next, out.thought, out.text) == (decision, thought, turn)
    assert out.raw == text


def test_caller_well_formed() -> None:
    out = parse_caller('Action: get_weather\nAction Input: {"city": "Paris"}', TOOLS)
    assert (out.name, out.arguments, out.valid, out.hallucinated, out.error) == (
        "get_weather", {"city": "Paris"}, True, False, None,
    )
    assert out.text == 'Action: get_weather\nAction Input: {"city": "Paris"}'


def test_caller_nested_json() -> None:
    out = parse_caller('Action: convert\nAction Input: {"a": {"b": [1, {"c": null}]}}', TOOLS)
    assert out.valid and out.arguments == {"a": {"b": [1, {"c": None}]}}


def test_caller_without_action_input_defaults_to_empty_object() -> None:
    out = parse_caller("Action: get_weather", TOOLS)
    assert (out.name, out.arguments_raw, out.arguments, out.valid) == ("get_weather", "{}", {}, True)


def test_caller_trailing_text_keeps_raw_and_flags_invalid() -> None:
    out = parse_caller('Action: convert\nAction Input: {"x": 1} and then more', TOOLS)
    assert out.name == "convert"
    assert out.arguments_raw == '{"x": 1} and then more'
    assert out.arguments is None and out.valid is False
    assert "not valid JSON" in (out.error or "")


def test_caller_non_object_json_is_invalid() -> None:
    out = parse_caller("Action: convert\nAction Input: [1, 2]", TOOLS)
    assert out.valid is False and out.arguments is None and "JSON object" in (out.error or "")


def test_caller_empty_output() -> None:
    out = parse_caller("", TOOLS)
    assert (out.name, out.arguments_raw, out.arguments, out.hallucinated) == ("none", "{}", {}, False)
    assert out.error == "no Action in the output"


def test_caller_two_action_lines_take_the_last() -> None:
    out = parse_caller('Action: convert\nAction: get_weather\nAction Input: {"city": "Oslo"}', TOOLS)
    assert out.name == "get_weather" and out.arguments == {"city": "Oslo"}


def test_caller_action_text_inside_arguments_does_not_become_the_name() -> None:
    out = parse_caller('Action: convert\nAction Input: {"q": "Action: x"}', TOOLS)
    assert out.name == "convert" and out.arguments == {"q": "Action: x"}


def test_caller_hallucinated_name() -> None:
    out = parse_caller("Action: book_flight\nAction Input: {}", TOOLS)
    assert out.hallucinated is True and out.name == "book_flight"
    assert parse_caller("Action: book_flight\nAction Input: {}").hallucinated is False  # no tool list given


def test_caller_stops_at_end_of_turn() -> None:
    out = parse_caller('Action: convert\nAction Input: {"a": 1}</s>user: more', TOOLS)
    assert out.valid and out.arguments == {"a": 1}


def test_caller_never_raises_on_garbage() -> None:
    for text in ["Action Input:", "Action:", "Action: \nAction Input: ", "{" * 5000, "Action Input: " + "[" * 100000]:
        out = parse_caller(text, TOOLS)
        assert isinstance(out.name, str)


def test_summarizer() -> None:
    assert parse_summarizer(" It is 3 degrees.</s>").answer == "It is 3 degrees."
    assert parse_summarizer("thinking\nconclusion: Paris").answer == "Paris"
    assert parse_summarizer("").answer == ""


def test_backbone_call_conclusion_and_give_up() -> None:
    call = parse_backbone('Look it up.\nAction: get_weather\nAction Input: {"city": "Rome"}', TOOLS)
    assert call.next == "caller" and call.thought == "Look it up."
    assert call.call is not None and call.call.arguments == {"city": "Rome"}
    done = parse_backbone("I know.\nconclusion: 12 degrees", TOOLS)
    assert (done.next, done.answer, done.thought) == ("conclusion", "12 degrees", "I know.")
    gave_up = parse_backbone("No tool.\nconclusion: give up.", TOOLS)
    assert (gave_up.next, gave_up.answer) == ("give_up", None)
