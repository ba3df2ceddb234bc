"""Properties: the parsers and the observation builder never raise on any text (NULs, control
characters, lone surrogates, huge inputs) and always return the documented shape, which
serialises as UTF-8 JSON."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from tests.support.fuzz import FUZZ

from orchestrator.tools import decode_body
from umi.format.observations import cut_observation, error_observation
from umi.format.parsers import parse_backbone, parse_caller, parse_planner, parse_summarizer

# Any code point, surrogates included, mixed with the phrases the parsers look for.
PHRASES = ["Action:", "Action Input:", "Next: caller", "Next: conclusion", "Next: give up", "conclusion:",
           "give up", "</s>", "{", "}", '"', "\\ud83d", "\ud800", "\x00", "\r\n", "\u2028"]  # fmt: skip
TEXT = st.lists(st.one_of(st.text(st.characters(exclude_categories=[]), max_size=40), st.sampled_from(PHRASES)), max_size=30).map(
    "".join
)
HUGE = st.builds(lambda s, n: s * n, st.sampled_from(["Action Input: {", "x\x00", "\ud800", "Next: "]), st.integers(1, 200_000))
ANY_TEXT = st.one_of(TEXT, HUGE)
NAMES = st.none() | st.lists(st.text(max_size=8), max_size=3)


def _utf8_json(model: object) -> None:
    model.model_dump_json().encode("utf-8")  # type: ignore[attr-defined]


@FUZZ
@given(ANY_TEXT)
def test_the_planner_parser_returns_a_decision_and_a_turn_ending_in_it(text: str) -> None:
    out = parse_planner(text)
    assert out.next in ("caller", "conclusion", "give_up")
    assert out.text.endswith(".") and "Next:" in out.text
    _utf8_json(out)


@FUZZ
@given(ANY_TEXT, NAMES)
def test_the_caller_parser_returns_a_name_and_arguments_that_are_an_object_or_flagged(text: str, names) -> None:
    out = parse_caller(text, names)
    assert out.name and out.valid == (out.arguments is not None)
    assert out.valid or out.error
    if out.arguments is not None:
        assert isinstance(out.arguments, dict)
    _utf8_json(out)


@FUZZ
@given(ANY_TEXT, NAMES)
def test_the_backbone_parser_returns_one_of_its_three_shapes(text: str, names) -> None:
    out = parse_backbone(text, names)
    assert (out.next == "caller") == (out.call is not None)
    assert (out.next == "conclusion") == (out.answer is not None)
    _utf8_json(out)


@FUZZ
@given(ANY_TEXT)
def test_the_summarizer_parser_returns_an_answer(text: str) -> None:
    _utf8_json(parse_summarizer(text))


@FUZZ
@given(st.binary(max_size=4096) | st.builds(lambda b, n: b * n, st.binary(min_size=1, max_size=8), st.integers(1, 100_000)),
       st.none() | st.sampled_from(["utf-8", "utf8mb4", "latin-1", "zip", "utf-16", "", "x" * 300, "idna"]) | st.text(max_size=12))
def test_a_tool_answer_of_any_bytes_becomes_a_bounded_observation(body: bytes, charset) -> None:
    text = cut_observation(decode_body(body, charset), 1024)
    assert len(text) <= 1024 + 3
    text.encode("utf-8")
    observation = json.loads(error_observation("HTTP 500", text))
    assert set(observation) == {"error", "response"}


@FUZZ
@given(ANY_TEXT, ANY_TEXT, st.integers(1, 5000))
def test_error_observations_are_json_objects_in_the_reference_shape(message: str, response: str, limit: int) -> None:
    out = error_observation(message, cut_observation(response, limit))
    out.encode("utf-8")
    assert set(json.loads(out)) == {"error", "response"}
