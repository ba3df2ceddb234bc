"""Tool names as the models see them: every one parses back to itself and maps to one tool."""

from __future__ import annotations

from typing import Any

import pytest

from umi.format import caller_turn_content, parse_backbone, parse_caller, to_tooldocs
from umi.format.tools import MAX_NAME_CHARS, model_name, model_names


def fn(name: str, description: str = "") -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "description": description, "parameters": {}}}


def round_trips(name: str, names: list[str]) -> bool:
    call = parse_caller(caller_turn_content(name, "{}"), names)
    backbone = parse_backbone("I call it.\n" + caller_turn_content(name, "{}"), names)
    return call.name == name and not call.hallucinated and backbone.call is not None and backbone.call.name == name


def test_a_name_whose_cut_begins_with_a_space_is_stripped_and_can_be_called() -> None:
    name = "Look up the opening hours which a visitor asked for of one museum in a town"
    cut = name[-MAX_NAME_CHARS:]
    assert cut.startswith(" ")
    (doc,) = to_tooldocs([fn(name)])
    assert doc.Name == cut.strip() and round_trips(doc.Name, [doc.Name])


@pytest.mark.parametrize(
    ("name", "seen"),
    [
        ("Action: search", "Action_ search"),
        ("lookup Action Input: x", "lookup Action Input_ x"),
        ("stop</s>here", "stop<_s>here"),
        ("conclusion: maker", "conclusion_ maker"),
        ("   ", "tool"),
        ("  padded\t", "padded"),
    ],
)
def test_parser_marks_and_blank_ends_are_defused(name: str, seen: str) -> None:
    assert model_name(name) == seen
    assert round_trips(seen, [seen])


def test_names_that_collide_after_the_cut_are_made_distinct() -> None:
    tail = "_for_a_very_long_tool_name_that_goes_on_and_on_and_on_for_a_while"
    assert len(tail) > MAX_NAME_CHARS
    names = ["get" + tail, "put" + tail, "del" + tail, tail[-MAX_NAME_CHARS:]]
    seen = model_names(names)
    assert seen[0] == tail[-MAX_NAME_CHARS:]
    assert seen[1] == tail[-(MAX_NAME_CHARS - 2) :] + "_2"
    assert seen[2] == tail[-(MAX_NAME_CHARS - 2) :] + "_3"
    assert seen[3] == tail[-(MAX_NAME_CHARS - 2) :] + "_4"  # the same cut name again
    assert len(set(seen)) == 4 and all(len(s) <= MAX_NAME_CHARS for s in seen)
    docs = to_tooldocs([fn(n) for n in names])
    assert [d.Name for d in docs] == seen
    assert all(round_trips(s, seen) for s in seen)


def test_a_suffix_never_takes_a_name_another_tool_has() -> None:
    assert model_names(["a", "a", "a_2"]) == ["a", "a_3", "a_2"]


def test_identical_tools_are_listed_once_and_conflicting_ones_both_with_distinct_names() -> None:
    docs = to_tooldocs([fn("t", "one"), fn("t", "one"), fn("t", "two")])
    assert [(d.Name, d.function) for d in docs] == [("t", "one"), ("t_2", "two")]


def test_a_given_tooldoc_keeps_its_name_unless_another_tool_had_it_first() -> None:
    docs = to_tooldocs([{"Name": "a", "function": "f", "input": {}}, fn("a", "other")])
    assert [d.Name for d in docs] == ["a", "a_2"]
    assert docs[0].render() == '{"Name": "a", "function": "f", "input": {}}'
