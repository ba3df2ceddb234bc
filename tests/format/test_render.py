"""Templates, history and prompt rendering for serving."""

from __future__ import annotations

import json

import pytest

from umi.format import (
    CUES,
    ToolDoc,
    Turn,
    caller_turn_content,
    render_doc,
    render_history,
    render_prompt,
)
from umi.format.templates import TEMPLATES

TOOLS = [ToolDoc(Name="a", function="does a", input={"x": "string, the x"})]


def test_every_template_has_its_placeholders() -> None:
    for (variant, role), text in TEMPLATES.items():
        assert "{history}" in text
        assert ("{doc}" in text) == (role != "summarizer")
        assert ("{tool_names}" in text) == (role in ("caller", "backbone"))
        assert ("{thought}" in text) == (role == "caller")
        assert text.count("assess") == (0 if role == "summarizer" else 1)


def test_backbone_template_ends_with_a_newline_and_others_do_not() -> None:
    for (variant, role), text in TEMPLATES.items():
        assert text.endswith("\n") == (role == "backbone")


def test_each_turn_kind_renders_with_its_prefix() -> None:
    turns = [
        Turn(role="user", content="u"),
        Turn(role="planner", content="p Next: caller."),
        Turn(role="caller", content=caller_turn_content("a", {"x": "1"})),
        Turn(role="observation", content="obs"),
        Turn(role="conclusion", content="done"),
    ]
    assert render_history(turns) == (
        'user: u</s>assistant: p Next: caller.</s>caller: Action: a\nAction Input: {"x": "1"}</s>'
        "observation: obsconclusion: done</s>"
    )


def test_turn_accepts_the_trajectory_file_spelling() -> None:
    assert Turn.model_validate({"from": "assistant", "value": "v"}) == Turn(role="planner", content="v")


def test_doc_is_ascii_escaped_json_per_line_in_given_key_order() -> None:
    doc = ToolDoc.model_validate({"input": {"q": "string, caf\u00e9"}, "Name": "n", "function": "f"})
    assert render_doc([doc]) == '{"input": {"q": "string, caf\\u00e9"}, "Name": "n", "function": "f"}\n'
    assert json.loads(render_doc([doc])) == {"input": {"q": "string, caf\u00e9"}, "Name": "n", "function": "f"}


def test_prompt_has_system_prefix_by_default_and_the_role_cue() -> None:
    history = [Turn(role="user", content="hi")]
    for role, cue in CUES.items():
        prompt = render_prompt(role, TOOLS, history, thought="t Next: caller.")
        assert prompt.startswith("system: ")
        assert prompt.endswith(cue)
    assert render_prompt("planner", TOOLS, history, system_prefix="").startswith("You have assess")


def test_planner_prompt_byte_exact() -> None:
    prompt = render_prompt("planner", TOOLS, [Turn(role="user", content="hi")])
    assert prompt == (
        "system: You have assess to the following apis:\n"
        '{"Name": "a", "function": "does a", "input": {"x": "string, the x"}}\n'
        "\nThe conversation history is:\nuser: hi</s>\n"
        "You are the assistant to plan what to do next and whether is caller's or conclusion's turn to answer.\n"
        "Answer with a following format:\n"
        "The thought of the next step, followed by Next: caller or conclusion or give up. assistant: "
    )


def test_caller_prompt_carries_thought_verbatim() -> None:
    thought = "Use a.\n Next: caller."
    history = [Turn(role="user", content="q"), Turn(role="planner", content=thought)]
    prompt = render_prompt("caller", TOOLS, history, thought=thought, system_prefix="")
    assert "The conversation history is:\nuser: q</s>assistant: Use a.\n Next: caller.</s>\n" in prompt
    assert "The thought of this step is:\nUse a.\n Next: caller.\nBase on the thought" in prompt
    assert "should be exactly in [a],\nAction Input: the api call request. caller: " in prompt


def test_backbone_prompt_has_empty_line_before_cue() -> None:
    prompt = render_prompt("backbone", TOOLS, [Turn(role="user", content="q")], variant="toolalpaca")
    assert prompt.endswith("output conclusion: the final answer of the question.\n assistant: ")


def test_unknown_variant_is_an_error() -> None:
    with pytest.raises(ValueError):
        render_prompt("planner", TOOLS, [], variant="nope")  # type: ignore[arg-type]


def test_backbone_prompt_merges_calls_and_conclusions_into_planner_turns() -> None:
    history = [
        Turn(role="user", content="q"),
        Turn(role="planner", content="Look.\n Next: caller."),
        Turn(role="caller", content='Action: a\nAction Input: {"x": "1"}'),
        Turn(role="observation", content="42"),
        Turn(role="planner", content="Still thinking"),
    ]
    prompt = render_prompt("backbone", TOOLS, history, system_prefix="")
    assert (
        "The conversation history is:\nuser: q</s>"
        'assistant: Look.\nAction: a\nAction Input: {"x": "1"}</s>'
        "observation: 42assistant: Still thinking</s>\nYou should answer" in prompt
    )
    # the three-model prompts keep the turns apart
    assert "</s>caller: Action: a" in render_prompt("planner", TOOLS, history)
