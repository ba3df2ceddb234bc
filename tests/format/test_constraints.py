"""The constraint builder (umi.format.constraints): each grammar accepts exactly the valid turns,
checked with llguidance's own matcher on the demo tokenizer."""

from __future__ import annotations

from pathlib import Path

import llguidance
import llguidance.hf
import pytest
from transformers import AutoTokenizer

from umi.format.constraints import caller_grammar, planner_grammar, role_grammar
from umi.format.tools import ToolDoc, to_tooldocs

TOKENIZER = Path(__file__).resolve().parents[2] / "models" / "demo" / "tokenizer"
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
CONVERT = {"type": "function", "function": {"name": "convert_currency", "description": "Money", "parameters": {
    "type": "object", "properties": {"amount": {"type": "number"}, "from_currency": {"type": "string", "enum": ["EUR", "USD"]}},
    "required": ["amount", "from_currency"]}}}


@pytest.fixture(scope="module")
def tokenizer() -> llguidance.LLTokenizer:
    return llguidance.hf.from_tokenizer(AutoTokenizer.from_pretrained(TOKENIZER))


def accepts(tokenizer: llguidance.LLTokenizer, grammar: str, text: str) -> bool:
    """The whole of ``text`` is a complete sentence of ``grammar`` (then only the end may follow)."""
    matcher = llguidance.LLMatcher(tokenizer, llguidance.LLMatcher.grammar_from_lark(grammar), log_level=0)
    assert not matcher.is_error(), matcher.get_error()
    tokens = tokenizer.tokenize_str(text)
    return matcher.validate_tokens(tokens) == len(tokens) and matcher.consume_tokens(tokens) and matcher.is_accepting()


TOOLS = to_tooldocs([WEATHER, CONVERT, {"Name": "plain_doc", "function": "a ToolDoc without a schema", "input": {"q": "string, q"}}])


@pytest.mark.parametrize(("text", "names", "schema"), [
    ('Action: get_weather\nAction Input: {"city": "Cairo"}', True, True),
    ('Action: get_weather\nAction Input: {"city": "Kraków"}', True, True),  # non-ASCII as the models write it
    ('Action: get_weather\nAction Input: {"city": "Krak\\u00f3w"}', True, True),  # and as json.dumps escapes it
    ('Action: get_weather\nAction Input: {"city":"São Paulo"}', True, True),  # any whitespace
    ('Action: get_weather\nAction Input: {"town": "Cairo"}', True, False),  # another key
    ('Action: get_weather\nAction Input: {}', True, False),  # a required key missing
    ('Action: get_weather\nAction Input: {"city": 3}', True, False),  # a wrong type
    ('Action: convert_currency\nAction Input: {"amount": 12.5, "from_currency": "EUR"}', True, True),
    ('Action: convert_currency\nAction Input: {"amount": "12", "from_currency": "EUR"}', True, False),
    ('Action: convert_currency\nAction Input: {"amount": 12, "from_currency": "GBP"}', True, False),  # not in the enum
    ('Action: plain_doc\nAction Input: {"anything": [1, {"x": null}]}', True, True),  # no schema: any object
    ('Action: get_wether\nAction Input: {"city": "Cairo"}', False, False),  # not a listed name
    ('Action: get_weather_now\nAction Input: {"city": "Cairo"}', False, False),
    ('Action: get_weather\nAction Input: ["Cairo"]', False, False),  # not an object
    ('Action: get_weather\nAction Input: {"city": "Cairo"', False, False),  # unfinished
    ('Action: get_weather\nAction Input: {"city": "Cairo"} and more', False, False),  # text after the call
    ('I will call it. Action: get_weather\nAction Input: {"city": "Cairo"}', False, False),
])
def test_the_caller_grammar_accepts_a_listed_name_and_an_object_valid_for_the_mode(
    tokenizer: llguidance.LLTokenizer, text: str, names: bool, schema: bool,
) -> None:
    assert accepts(tokenizer, caller_grammar(TOOLS, "names"), text) is names
    assert accepts(tokenizer, caller_grammar(TOOLS, "schema"), text) is schema


@pytest.mark.parametrize("name", ['say "hi" \\ now', "météo/ville", "a.*b+(c)", "tab\there\x7f\x9b\x10", "emoji \U0001f600 \U000aabdc"])
def test_any_name_is_matched_exactly(tokenizer: llguidance.LLTokenizer, name: str) -> None:
    grammar = caller_grammar([ToolDoc(Name=name), ToolDoc(Name="other")], "schema")
    assert accepts(tokenizer, grammar, f"Action: {name}\nAction Input: {{}}")
    assert not accepts(tokenizer, grammar, f"Action: {name[:-1]}\nAction Input: {{}}")
    assert not accepts(tokenizer, grammar, f"Action: {name}x\nAction Input: {{}}")


def test_a_schema_without_a_type_still_takes_only_an_object(tokenizer: llguidance.LLTokenizer) -> None:
    loose = to_tooldocs([{"type": "function", "function": {"name": "loose", "parameters": {"$": {"s": True}, "": []}}}])
    grammar = caller_grammar(loose, "schema")
    assert accepts(tokenizer, grammar, 'Action: loose\nAction Input: {"a": [1]}')
    assert not accepts(tokenizer, grammar, "Action: loose\nAction Input: 3")


def test_a_schema_llguidance_cannot_compile_holds_the_arguments_to_an_object(tokenizer: llguidance.LLTokenizer) -> None:
    odd = to_tooldocs([{"type": "function", "function": {"name": "odd", "parameters": {
        "type": "object", "patternProperties": {"^x": {"type": "string"}}}}}])
    grammar = caller_grammar(odd, "schema")
    assert accepts(tokenizer, grammar, 'Action: odd\nAction Input: {"y": 1}')
    assert not accepts(tokenizer, grammar, "Action: odd\nAction Input: 1")


@pytest.mark.parametrize(("text", "toolbench", "toolalpaca"), [
    ("I should look up the weather.\n Next: caller.", True, True),
    ("I know the answer.\n Next: conclusion.", True, True),
    ("Nothing can answer this.\n Next: give up.", True, False),  # the toolalpaca template has no give up
    ("Kraków: 12 °C, ça va.\n Next: conclusion.", True, True),
    (" Next: caller.", True, True),  # an empty thought
    ("I should look it up.\n Next: caller", False, False),  # no period
    ("I should look it up.\nNext: caller.", False, False),  # no space before Next
    ("Next: caller. Then again Next: conclusion.", False, False),  # a control phrase inside the thought
    ("I should look it up.\n Next: caller. And then some.", False, False),  # text after the decision
    ("I should look it up.\n Next: later.", False, False),
])
def test_the_planner_grammar_accepts_a_thought_and_one_allowed_decision(
    tokenizer: llguidance.LLTokenizer, text: str, toolbench: bool, toolalpaca: bool,
) -> None:
    assert accepts(tokenizer, role_grammar("planner", [], "names", "toolbench"), text) is toolbench
    assert accepts(tokenizer, role_grammar("planner", [], "schema", "toolalpaca"), text) is toolalpaca


def test_off_and_the_unconstrained_roles_have_no_grammar() -> None:
    assert caller_grammar(TOOLS, "off") is None and planner_grammar(["caller"], "off") is None
    assert caller_grammar([], "schema") is None  # no tool could be valid
    assert role_grammar("summarizer", TOOLS, "schema") is None and role_grammar("backbone", TOOLS, "schema") is None
    with pytest.raises(ValueError, match="decisions"):
        planner_grammar([], "names")


def test_the_parameters_schema_survives_renaming_and_is_not_rendered() -> None:
    docs = to_tooldocs([WEATHER, WEATHER | {"function": {**WEATHER["function"], "description": "other"}}])
    assert [d.Name for d in docs] == ["get_weather", "get_weather_2"]
    assert docs[1].parameters == WEATHER["function"]["parameters"]
    assert "properties" not in docs[0].render()
